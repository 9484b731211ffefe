//! `quantdeck features`: the feature layout (`--spec`), or a symbol's (or a CSV's) feature matrix
//! and raw indicators written to CSV or parquet, with timestamps, for checking in pandas.

use crate::config::{Config, DataSource};
use crate::data::{synthetic, Store};
use crate::features::{self, events, export, FeatureSpec};
use crate::market::{Bar, Symbol};
use crate::paths::Paths;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Symbol from the store (e.g. SYNA, BTC/USD). Not needed with --csv or --spec.
    pub symbol: Option<String>,
    /// Print the layout: version, window, warm-up, every feature in order, the event table.
    #[arg(long)]
    pub spec: bool,
    /// Compute from a CSV of bars (ts, open, high, low, close[, volume]) instead of the store.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Treat the --csv series as crypto (24/7 UTC hours) rather than equity (NYSE sessions).
    #[arg(long)]
    pub crypto: bool,
    /// Output file: `.csv` or `.parquet` (default: <SYMBOL>_features.csv in this directory).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Observation window (default: features.window from the config).
    #[arg(long)]
    pub window: Option<usize>,
}

pub fn run(paths: &Paths, cfg: &Config, a: FeaturesArgs) -> Result<i32> {
    let table = events::EventTable::load(&paths.home);
    let spec = FeatureSpec::current(a.window.unwrap_or(cfg.features.window), &table);
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
            let sym = if a.crypto {
                Symbol::crypto(&stem)
            } else {
                Symbol::equity(&stem)
            };
            (
                sym,
                export::read_bars_csv(path)?,
                path.display().to_string(),
            )
        }
        (None, Some(name)) => {
            let sym = cfg.universe.resolve(name);
            let bars = load(paths, cfg, &sym)?;
            let label = format!("{sym} {}", cfg.data.timeframe);
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

/// Stored bars; for the synthetic source a missing series is generated in memory (not stored).
fn load(paths: &Paths, cfg: &Config, sym: &Symbol) -> Result<Vec<Bar>> {
    let store = Store::new(&paths.data);
    let tf = cfg.data.timeframe;
    if store.parquet_path(sym, tf).exists() || cfg.data.source != DataSource::Synthetic {
        return store.read(sym, tf);
    }
    let date = |s: &str| {
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .with_context(|| format!("data date {s:?} is not YYYY-MM-DD"))
    };
    eprintln!("no stored {tf} bars for {sym}: using the synthetic market (not stored)");
    synthetic::generate(
        &cfg.synthetic,
        sym,
        tf,
        date(&cfg.data.start)?,
        date(&cfg.data.end)?,
    )
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
