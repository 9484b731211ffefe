//! Getting a symbol's bars for the jobs: read them from the store, generating the synthetic
//! market first when that is the configured source and the store has none. Nothing here logs:
//! callers say what happened from the returned values.

use super::{budget, synthetic, SeriesInfo, Store};
use crate::config::{Config, DataSource};
use crate::market::{Bar, Symbol, Timeframe};
use anyhow::{anyhow, Result};
use chrono::NaiveDate;

pub fn parse_day(s: &str, field: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| anyhow!("{field} = {s:?} is not a YYYY-MM-DD date"))
}

/// `data.start ..= data.end` as dates.
pub fn data_days(cfg: &Config) -> Result<(NaiveDate, NaiveDate)> {
    Ok((
        parse_day(&cfg.data.start, "data.start")?,
        parse_day(&cfg.data.end, "data.end")?,
    ))
}

/// Generates `sym`'s synthetic bars of `tf` over the configured days, in memory, after checking
/// that they fit. The second value is a warning when they take a large share of memory.
pub fn synthetic_bars(
    cfg: &Config,
    sym: &Symbol,
    tf: Timeframe,
) -> Result<(Vec<Bar>, Option<String>)> {
    let (start, end) = data_days(cfg)?;
    synthetic_bars_between(cfg, sym, tf, start, end)
}

/// As [`synthetic_bars`] over `start..=end`. Members of `portfolio.synthetic_symbols` share the
/// common market factor (wherever they are generated: fetch, training, the portfolio panel).
pub fn synthetic_bars_between(
    cfg: &Config,
    sym: &Symbol,
    tf: Timeframe,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<(Vec<Bar>, Option<String>)> {
    let warning = budget::check_range(
        &format!("synthetic {sym} {tf} from {start} to {end}"),
        sym.class,
        tf,
        start,
        end,
    )?;
    let bars = if cfg.portfolio.is_synthetic_member(sym) {
        synthetic::generate_correlated(&cfg.synthetic, sym, tf, start, end)?
    } else {
        synthetic::generate(&cfg.synthetic, sym, tf, start, end)?
    };
    Ok((bars, warning))
}

/// Generates a symbol's synthetic bars (of `data.timeframe`) into the store.
pub fn generate_synthetic(cfg: &Config, store: &Store, sym: &Symbol) -> Result<SeriesInfo> {
    generate_synthetic_tf(cfg, store, sym, cfg.data.timeframe).map(|(info, _)| info)
}

fn generate_synthetic_tf(
    cfg: &Config,
    store: &Store,
    sym: &Symbol,
    tf: Timeframe,
) -> Result<(SeriesInfo, Option<String>)> {
    let (bars, warning) = synthetic_bars(cfg, sym, tf)?;
    Ok((store.write(sym, tf, &bars, synthetic::SOURCE)?, warning))
}

/// A symbol's bars as the jobs get them.
#[derive(Debug, Clone)]
pub struct LoadedBars {
    pub bars: Vec<Bar>,
    /// Where the stored series came from (`synthetic`, `alpaca`, `import`, …).
    pub source: String,
    /// The store had none, so the synthetic market was generated (and stored) first.
    pub generated: bool,
    /// A memory warning from generating them.
    pub warning: Option<String>,
}

/// Reads `sym`'s `tf` bars, generating the synthetic market first if the store has none and the
/// configured source is synthetic.
pub fn load_bars(cfg: &Config, store: &Store, sym: &Symbol, tf: Timeframe) -> Result<LoadedBars> {
    let mut generated = false;
    let mut warning = None;
    if !store.contains(sym, tf)? && cfg.data.source == DataSource::Synthetic {
        warning = generate_synthetic_tf(cfg, store, sym, tf)?.1;
        generated = true;
    }
    let bars = store.read(sym, tf)?;
    let source = store
        .info(sym, tf)
        .map(|i| i.source)
        .unwrap_or_else(|| "unknown".into());
    // A series' source is part of what it is: Alpaca is asked for, other bars never answer.
    if cfg.data.source == DataSource::Alpaca && source != "alpaca" {
        anyhow::bail!(
            "data.source = \"alpaca\", but the stored {tf} bars of {sym} come from {source}: fetch them from Alpaca (`quantdeck fetch {sym} --source alpaca`, which moves the {source} bars aside), or set data.source = \"store\" to use what is stored"
        );
    }
    Ok(LoadedBars {
        bars,
        source,
        generated,
        warning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reads_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mut cfg = Config::default();
        cfg.data.start = "2024-03-04".into();
        cfg.data.end = "2024-03-08".into();
        let sym = Symbol::equity("SYNA");
        let first = load_bars(&cfg, &store, &sym, Timeframe::Minute(15)).unwrap();
        assert!(first.generated);
        assert_eq!(
            (first.bars.len(), first.source.as_str()),
            (130, "synthetic")
        );
        let again = load_bars(&cfg, &store, &sym, Timeframe::Minute(15)).unwrap();
        assert!(!again.generated);
        assert_eq!(again.bars, first.bars);
        // Another timeframe is generated for that timeframe.
        let hours = load_bars(&cfg, &store, &sym, Timeframe::Hour(1)).unwrap();
        assert_eq!(hours.bars.len(), 5 * 7);
        // Not the synthetic source: a missing series is an error that says how to get it.
        cfg.data.source = DataSource::Store;
        let e = format!(
            "{:#}",
            load_bars(&cfg, &store, &Symbol::equity("SYNB"), Timeframe::Minute(15)).unwrap_err()
        );
        assert!(e.contains("quantdeck fetch SYNB"), "{e}");
    }

    #[test]
    fn an_absurd_range_is_refused_before_generating() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mut cfg = Config::default();
        cfg.data.start = "1000-01-01".into();
        cfg.data.end = "9000-12-31".into();
        let t0 = std::time::Instant::now();
        let e = generate_synthetic(&cfg, &store, &Symbol::crypto("SYNX/USD")).unwrap_err();
        assert!(format!("{e:#}").contains("will not fit"), "{e:#}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(2));
        assert!(store.list().is_empty());
    }
}
