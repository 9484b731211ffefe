//! `quantdeck import` and `quantdeck data check|resample`: bringing bars in, and checking them.

use crate::config::Config;
use crate::data::alpaca::{load_credentials, ClientSettings, DataClient};
use crate::data::quality::{self, QualityReport};
use crate::data::{import, resample, SeriesInfo, Store};
use crate::market::calendar::Session;
use crate::market::{AssetClass, Timeframe};
use crate::paths::Paths;
use anyhow::{anyhow, Context, Result};
use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A CSV or parquet file with a timestamp column and open/high/low/close[/volume].
    pub file: PathBuf,
    /// The symbol the bars belong to (`BTC/USD` style for crypto).
    pub symbol: String,
    /// Timeframe of the bars (default: data.timeframe).
    #[arg(long)]
    pub timeframe: Option<String>,
    /// Zone of naive timestamps (no offset or zone), in CSV and parquet alike (default:
    /// America/New_York for equities, UTC for crypto).
    #[arg(long)]
    pub tz: Option<String>,
    /// Replace the stored series instead of merging into it.
    #[arg(long)]
    pub replace: bool,
}

#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub action: DataAction,
}

#[derive(Debug, Subcommand)]
pub enum DataAction {
    /// Quality report per stored series: coverage, missing bars, zero volume, duplicates, OHLC
    /// inconsistencies, outlier returns, staleness.
    Check {
        /// Symbols to check (default: every stored series).
        symbols: Vec<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Resample a stored series to a longer timeframe (equities by session, crypto by UTC).
    Resample {
        symbol: String,
        /// Target timeframe, e.g. 1Hour or 1Day.
        #[arg(long)]
        to: String,
        /// Source timeframe (default: data.timeframe).
        #[arg(long)]
        from: Option<String>,
    },
}

pub fn import(paths: &Paths, cfg: &Config, a: ImportArgs) -> Result<i32> {
    let sym = cfg.universe.resolve(&a.symbol)?;
    let tf: Timeframe = match &a.timeframe {
        Some(t) => t.parse()?,
        None => cfg.data.timeframe,
    };
    let tz = import::tz_for(a.tz.as_deref(), sym.class)?;
    let bars = import::read_file(&a.file, tz)?;
    let store = Store::new(&paths.data);
    let info = if a.replace {
        store.write(&sym, tf, &bars, "import")?
    } else {
        store.merge(&sym, tf, &bars, "import")?
    };
    println!(
        "imported {} bars of {sym} {tf} from {} (naive timestamps read as {tz} time); the store now holds {} bars {} → {}",
        bars.len(),
        a.file.display(),
        info.bars,
        info.first.map(|t| t.to_rfc3339()).unwrap_or_default(),
        info.last.map(|t| t.to_rfc3339()).unwrap_or_default()
    );
    if !info.flags.is_empty() {
        println!(
            "quality flags: {} (see `quantdeck data check {}`)",
            info.flags.join(", "),
            sym.name
        );
    }
    Ok(0)
}

pub fn run(paths: &Paths, cfg: &Config, a: DataArgs) -> Result<i32> {
    match a.action {
        DataAction::Check { symbols, json } => check(paths, cfg, &symbols, json),
        DataAction::Resample { symbol, to, from } => {
            let sym = cfg.universe.resolve(&symbol)?;
            let from: Timeframe = match from {
                Some(f) => f.parse()?,
                None => cfg.data.timeframe,
            };
            let to: Timeframe = to.parse()?;
            let store = Store::new(&paths.data);
            let bars = store.read(&sym, from)?;
            let source = store
                .info(&sym, from)
                .map(|i| i.source)
                .unwrap_or_else(|| "unknown".into());
            let (out, outside) = resample::resample(&bars, sym.class, from, to)?;
            let info = store.write(&sym, to, &out, &format!("{source}+resampled"))?;
            println!(
                "{sym}: {} {from} bars → {} {to} bars ({} outside regular sessions left out)",
                bars.len(),
                info.bars,
                outside
            );
            Ok(0)
        }
    }
}

/// Sessions from Alpaca's calendar when keys exist (holidays and half days as the exchange
/// publishes them), else None (the embedded rules are used).
fn alpaca_sessions(
    cfg: &Config,
    from: NaiveDate,
    to: NaiveDate,
) -> Option<BTreeMap<NaiveDate, Session>> {
    let (creds, _) = load_credentials().ok()?;
    let client = DataClient::new(ClientSettings::from_config(&cfg.data), creds?).ok()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let days = match rt.block_on(client.calendar(from, to)) {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "warning: Alpaca calendar unavailable ({e:#}); using the embedded NYSE calendar"
            );
            return None;
        }
    };
    let ny = chrono_tz::America::New_York;
    let at = |d: NaiveDate, hm: &str| {
        let t = NaiveTime::parse_from_str(hm, "%H:%M").ok()?;
        ny.from_local_datetime(&d.and_time(t))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    Some(
        days.into_iter()
            .filter_map(|d| {
                let (open, close) = (at(d.date, &d.open)?, at(d.date, &d.close)?);
                Some((
                    d.date,
                    Session {
                        date: d.date,
                        open,
                        close,
                        early_close: close - open < chrono::Duration::hours(6),
                    },
                ))
            })
            .collect(),
    )
}

/// One stored series' check: symbol, timeframe, source, and its report or why it is unreadable.
type SeriesReport = (String, String, String, Result<QualityReport, String>);

fn check(paths: &Paths, cfg: &Config, symbols: &[String], json: bool) -> Result<i32> {
    let store = Store::new(&paths.data);
    let series = stored_series(&store, symbols)?;
    let table = session_table(cfg, &series);
    let reports = quality_reports(&store, &series, table.as_ref());
    if json {
        let v: Vec<_> = reports
            .iter()
            .map(|(sym, tf, src, r)| match r {
                Ok(q) => serde_json::json!({ "symbol": sym, "timeframe": tf, "source": src, "report": q }),
                Err(e) => serde_json::json!({ "symbol": sym, "timeframe": tf, "source": src, "error": e }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(exit_code(&unreadable(&reports)));
    }
    println!(
        "calendar: {}",
        if table.is_some() {
            "Alpaca /v2/calendar"
        } else {
            "embedded NYSE rules (America/New_York)"
        }
    );
    let bad = unreadable(&reports);
    for (sym, tf, src, r) in reports {
        match r {
            Err(e) => println!("{sym:<10} {tf:<6} {src:<10} ERROR {e}"),
            Ok(q) => print_report(&sym, &tf, &src, &q),
        }
    }
    Ok(exit_code(&bad))
}

/// The stored series (those named, or all), after printing the store scan's notes; an error
/// when none match.
fn stored_series(store: &Store, symbols: &[String]) -> Result<Vec<SeriesInfo>> {
    let scan = store.scan();
    for n in scan.notes.iter().chain(&scan.problems) {
        eprintln!("store: {n}");
    }
    let series: Vec<_> = scan
        .series
        .into_iter()
        .filter(|s| symbols.is_empty() || symbols.iter().any(|n| n.eq_ignore_ascii_case(&s.symbol)))
        .collect();
    if series.is_empty() {
        anyhow::bail!(
            "no stored series{}: fetch or import first",
            if symbols.is_empty() {
                String::new()
            } else {
                format!(" for {}", symbols.join(", "))
            }
        );
    }
    Ok(series)
}

/// Alpaca's sessions over the equities' span (through today), when keys exist.
fn session_table(cfg: &Config, series: &[SeriesInfo]) -> Option<BTreeMap<NaiveDate, Session>> {
    let equities: Vec<_> = series
        .iter()
        .filter(|s| s.class == AssetClass::Equity)
        .collect();
    match (
        equities.iter().filter_map(|s| s.first).min(),
        equities.iter().filter_map(|s| s.last).max(),
    ) {
        (Some(a), Some(b)) => {
            alpaca_sessions(cfg, a.date_naive(), (b.max(Utc::now())).date_naive())
        }
        _ => None,
    }
}

/// Each series read (or quarantined) and checked, equities against the session table if any.
fn quality_reports(
    store: &Store,
    series: &[SeriesInfo],
    table: Option<&BTreeMap<NaiveDate, Session>>,
) -> Vec<SeriesReport> {
    let lookup = |d: NaiveDate| table.and_then(|t| t.get(&d).copied());
    let mut reports: Vec<SeriesReport> = Vec::new();
    for s in series {
        let sym = s.symbol();
        let r = store
            .read_or_quarantine(&sym, s.timeframe)
            .context("unreadable")
            .and_then(|b| b.ok_or_else(|| anyhow!("missing")))
            .map(|bars| {
                let sessions: Option<quality::SessionFn> =
                    if table.is_some() && sym.class == AssetClass::Equity {
                        Some(&lookup)
                    } else {
                        None
                    };
                quality::check(&bars, sym.class, s.timeframe, sessions, Utc::now())
            })
            .map_err(|e| format!("{e:#}"));
        reports.push((
            s.symbol.clone(),
            s.timeframe.to_string(),
            s.source.clone(),
            r,
        ));
    }
    reports
}

/// One readable series' line, and its first missing bars when any.
fn print_report(sym: &str, tf: &str, src: &str, q: &QualityReport) {
    println!(
        "{sym:<10} {tf:<6} {src:<10} {:>7} bars {} → {}  coverage {:.2}% ({} missing)  zero-volume {}  duplicates {}  bad OHLC {}  outliers {}  stale {} sessions  [{}]",
        q.bars,
        q.first.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default(),
        q.last.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default(),
        q.coverage * 100.0,
        q.missing,
        q.zero_volume,
        q.duplicates,
        q.ohlc_inconsistent,
        q.outlier_returns,
        q.stale_sessions,
        if q.flags.is_empty() { "ok".to_string() } else { q.flags.join(", ") }
    );
    if !q.missing_examples.is_empty() {
        let ex: Vec<_> = q
            .missing_examples
            .iter()
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .collect();
        println!("{:29}first missing (UTC): {}", "", ex.join(", "));
    }
}

/// The series that could not be read (and were moved aside).
fn unreadable(reports: &[SeriesReport]) -> Vec<String> {
    reports
        .iter()
        .filter(|r| r.3.is_err())
        .map(|r| format!("{} {}", r.0, r.1))
        .collect()
}

/// Non-zero when any series could not be read, so scripts notice.
fn exit_code(bad: &[String]) -> i32 {
    if bad.is_empty() {
        return 0;
    }
    eprintln!(
        "error: {} series could not be read and were moved aside: {}",
        bad.len(),
        bad.join(", ")
    );
    1
}
