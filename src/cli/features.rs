//! `quantdeck features`: the feature layout (`--spec`), or a symbol's (or a CSV's) feature matrix
//! and raw indicators written to CSV or parquet, with timestamps, for checking in pandas.

use crate::config::{Config, DataSource};
use crate::data::{import, load, Store};
use crate::features::{self, events, export, lookahead, FeatureSpec};
use crate::market::{AssetClass, Bar, Symbol, Timeframe};
use crate::paths::Paths;
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

/// Accepted observation windows: the range `features.window` accepts in a config file.
const WINDOW: std::ops::RangeInclusive<usize> = 2..=1000;

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Symbol from the store (e.g. SYNA, BTC/USD). Not needed with --csv or --spec.
    pub symbol: Option<String>,
    /// Print the layout: version, window, warm-up, every feature in order, the event table.
    #[arg(long)]
    pub spec: bool,
    /// Compute from a CSV or parquet file of bars (read as `quantdeck import` reads it)
    /// instead of the store.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Treat the --csv series as crypto (24/7 UTC hours) rather than equity (NYSE sessions).
    #[arg(long)]
    pub crypto: bool,
    /// Zone of naive timestamps in the --csv file (default: America/New_York for equities, UTC
    /// for crypto).
    #[arg(long)]
    pub tz: Option<String>,
    /// Timeframe of the stored series (default: data.timeframe).
    #[arg(long)]
    pub timeframe: Option<String>,
    /// Output file: `.csv` or `.parquet` (default: <SYMBOL>_features.csv in this directory).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Observation window, 2–1000 bars (default: features.window from the config).
    #[arg(long)]
    pub window: Option<usize>,
    /// Look-ahead check instead of an export: recompute the features on histories cut at
    /// random bars and compare each cut's last row with the whole history's row at that bar,
    /// and with a recomputation from only the trailing warm-up (what paper trading keeps).
    /// Exits 1 naming every feature that differs, with the first bar it differs at.
    #[arg(long)]
    pub check: bool,
    /// Cut points for --check (the first usable bar and the last are always among them).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub cuts: u32,
    /// Seed choosing the --check cut points.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn run(paths: &Paths, cfg: &Config, a: FeaturesArgs) -> Result<i32> {
    let window = a.window.unwrap_or(cfg.features.window);
    if !WINDOW.contains(&window) {
        bail!(
            "--window {window} is out of range: it must be between {} and {} bars (as features.window)",
            WINDOW.start(),
            WINDOW.end()
        );
    }
    if let Some(out) = &a.out {
        export::format_of(out)?;
    }
    let tf: Timeframe = match &a.timeframe {
        Some(t) => t.parse()?,
        None => cfg.data.timeframe,
    };
    let table = events::EventTable::load(&paths.home);
    let spec = FeatureSpec::current(window, &table);
    if a.spec {
        print_spec(&spec, &table, &paths.home);
        if a.symbol.is_none() && a.csv.is_none() {
            return Ok(0);
        }
    }
    let (symbol, bars, label) = match (&a.csv, &a.symbol) {
        (Some(path), _) => {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "CSV".into());
            let class = if a.crypto {
                AssetClass::Crypto
            } else {
                AssetClass::Equity
            };
            // The file's name only labels the output; an odd one falls back to "CSV".
            let sym = Symbol::new(&stem, class).or_else(|_| Symbol::new("CSV", class))?;
            let tz = import::tz_for(a.tz.as_deref(), class)?;
            (
                sym,
                import::read_file(path, tz)?,
                path.display().to_string(),
            )
        }
        (None, Some(name)) => {
            let sym = cfg.universe.resolve(name)?;
            let bars = load_stored(paths, cfg, &sym, tf)?;
            let label = format!("{sym} {tf}");
            (sym, bars, label)
        }
        (None, None) => {
            bail!("give a SYMBOL, --csv FILE, or --spec (see `quantdeck features --help`)")
        }
    };
    if bars.len() <= spec.warmup {
        bail!(
            "{label}: {} bars, but the layout needs more than {} (its warm-up) for one usable row",
            bars.len(),
            spec.warmup
        );
    }
    if a.check {
        return check(&spec, &symbol, &bars, &table, &label, &a);
    }
    let fm = features::compute(&spec, &symbol, &bars, &table);
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}_features.csv", symbol.file_stem())));
    export::write(&out, &spec, &bars, &fm)?;
    println!(
        "{label}: {} bars ({} usable from {}), {} features + {} raw indicators → {}",
        bars.len(),
        bars.len() - fm.first_valid,
        fm.ts[fm.first_valid],
        spec.n_features(),
        features::ta::RAW_NAMES.len(),
        out.display()
    );
    Ok(0)
}

/// `--check`: both halves of [`lookahead::check`], reported feature by feature.
fn check(
    spec: &FeatureSpec,
    symbol: &Symbol,
    bars: &[Bar],
    table: &events::EventTable,
    label: &str,
    a: &FeaturesArgs,
) -> Result<i32> {
    let mut rng = crate::rng::Rng::new(a.seed);
    let cuts = lookahead::cut_points(bars.len(), spec.warmup, a.cuts as usize, &mut rng);
    let history = spec.warmup + 1;
    let r = lookahead::check(&spec.names, bars, history, &cuts, |b| {
        features::compute(spec, symbol, b, table)
    });
    let (first, last) = (bars[cuts[0]].ts, bars[cuts[cuts.len() - 1]].ts);
    println!(
        "{label}: {} bars; {} cut points from {first} to {last} (seed {}); {} features; tolerance {:e}",
        r.bars,
        r.cuts.len(),
        a.seed,
        spec.n_features(),
        lookahead::TOLERANCE
    );
    report_half(
        "look-ahead   (history cut at the bar vs the whole history)",
        "LOOKS AHEAD",
        &r.looks_ahead,
        r.worst_look_ahead,
        r.cuts.len(),
    );
    report_half(
        &format!("bounded      (only the trailing {history} bars vs the whole history)"),
        "OLDER THAN ITS WARM-UP",
        &r.outgrows_window,
        r.worst_window,
        r.cuts.len(),
    );
    Ok(if r.clean() { 0 } else { 1 })
}

fn report_half(title: &str, verdict: &str, found: &[lookahead::Finding], worst: f32, cuts: usize) {
    if found.is_empty() {
        println!("{title}: every feature equal at every cut (largest difference {worst:e})");
        return;
    }
    println!("{title}: {} feature(s) differ", found.len());
    for f in found {
        println!(
            "  {verdict}  {}  first at {}  ({} of {cuts} cuts; there whole {} vs cut {}; worst |Δ| {:e})",
            f.feature, f.first_bad, f.bad_cuts, f.whole, f.cut, f.worst
        );
    }
}

/// Stored bars; for the synthetic source a missing series is generated in memory (not stored).
fn load_stored(paths: &Paths, cfg: &Config, sym: &Symbol, tf: Timeframe) -> Result<Vec<Bar>> {
    let store = Store::new(&paths.data);
    if store.contains(sym, tf)? || cfg.data.source != DataSource::Synthetic {
        return store.read(sym, tf);
    }
    eprintln!("no stored {tf} bars for {sym}: using the synthetic market (not stored)");
    let (bars, warning) = load::synthetic_bars(cfg, sym, tf)?;
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    Ok(bars)
}

fn print_spec(spec: &FeatureSpec, t: &events::EventTable, home: &std::path::Path) {
    println!("layout   {}", spec.describe());
    println!(
        "window   {} bars; warm-up {} bars (first usable bar; the paper trader keeps {})",
        spec.window,
        spec.warmup,
        spec.warmup + spec.window
    );
    let mut col = 0;
    for (block, names) in features::BLOCKS {
        println!("{block} ({})", names.len());
        for n in names {
            println!("  {col:>2}  {n}");
            col += 1;
        }
    }
    println!(
        "account ({}), appended after the window",
        spec.account.len()
    );
    for n in &spec.account {
        println!("      {n}");
    }
    println!("events   {}", t.sources.join(" + "));
    println!(
        "         your additions: {} (date,kind[,note]; -KIND removes)",
        events::user_file(home).display()
    );
    println!("         table hash {}", t.sha256());
    for w in &t.warnings {
        println!("         warning: {w}");
    }
}
