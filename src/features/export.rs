//! Feature matrices out to CSV or parquet (for checking in pandas), and bars in from a CSV file.
//! Columns: `ts` (UTC), the bar's OHLCV, the raw indicators (TA-Lib's units, empty/NaN before
//! their lookback), `usable` (1 from the first usable bar on), then the features by spec name.

use super::{ta, FeatureMatrix, FeatureSpec};
use crate::market::Bar;
use crate::paths::{tmp_path, write_atomic};
use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use polars::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// Writes `fm` (computed from `bars` with `spec`) and the raw indicators to `path`; the format
/// follows the extension (`.parquet`, else CSV).
pub fn write(path: &Path, spec: &FeatureSpec, bars: &[Bar], fm: &FeatureMatrix) -> Result<()> {
    if fm.len() != bars.len() {
        bail!(
            "feature matrix has {} rows for {} bars",
            fm.len(),
            bars.len()
        );
    }
    let raw = ta::compute(bars);
    let is_parquet = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    if is_parquet {
        write_parquet(path, spec, bars, fm, &raw)
    } else {
        write_atomic(path, csv_text(spec, bars, fm, &raw).as_bytes())
    }
}

fn csv_text(spec: &FeatureSpec, bars: &[Bar], fm: &FeatureMatrix, raw: &ta::Raw) -> String {
    let cols = raw.columns();
    let mut s = String::with_capacity(bars.len() * 900);
    s.push_str("ts,open,high,low,close,volume");
    for (name, _) in &cols {
        s.push(',');
        s.push_str(name);
    }
    s.push_str(",usable");
    for name in &spec.names {
        s.push(',');
        s.push_str(name);
    }
    s.push('\n');
    for (t, b) in bars.iter().enumerate() {
        let _ = write!(
            s,
            "{},{},{},{},{},{}",
            b.ts.to_rfc3339_opts(SecondsFormat::Secs, true),
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume
        );
        for (_, c) in &cols {
            if c[t].is_finite() {
                let _ = write!(s, ",{}", c[t]);
            } else {
                s.push(',');
            }
        }
        let _ = write!(s, ",{}", u8::from(t >= fm.first_valid));
        for v in fm.row(t) {
            let _ = write!(s, ",{v}");
        }
        s.push('\n');
    }
    s
}

fn write_parquet(
    path: &Path,
    spec: &FeatureSpec,
    bars: &[Bar],
    fm: &FeatureMatrix,
    raw: &ta::Raw,
) -> Result<()> {
    let n = bars.len();
    let ts: Vec<i64> = bars.iter().map(|b| b.ts.timestamp_millis()).collect();
    let mut columns = vec![Column::new("ts".into(), ts).cast(&DataType::Datetime(
        TimeUnit::Milliseconds,
        Some(TimeZone::UTC),
    ))?];
    type Field = fn(&Bar) -> f64;
    let ohlcv: [(&str, Field); 5] = [
        ("open", |b| b.open),
        ("high", |b| b.high),
        ("low", |b| b.low),
        ("close", |b| b.close),
        ("volume", |b| b.volume),
    ];
    for (name, f) in ohlcv {
        columns.push(Column::new(
            name.into(),
            bars.iter().map(f).collect::<Vec<_>>(),
        ));
    }
    for (name, c) in raw.columns() {
        let vals: Vec<Option<f64>> = c.iter().map(|v| v.is_finite().then_some(*v)).collect();
        columns.push(Column::new(name.into(), vals));
    }
    let usable: Vec<bool> = (0..n).map(|t| t >= fm.first_valid).collect();
    columns.push(Column::new("usable".into(), usable));
    for (j, name) in spec.names.iter().enumerate() {
        let vals: Vec<f32> = (0..n).map(|t| fm.values[t * fm.n_features + j]).collect();
        columns.push(Column::new(name.as_str().into(), vals));
    }
    let mut df = DataFrame::new(n, columns)?;
    let tmp = tmp_path(path);
    let res = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        ParquetWriter::new(&mut f).finish(&mut df)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write {}", path.display())));
    }
    Ok(())
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim().trim_matches('"');
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    let n: i64 = s.parse().ok()?;
    // Epoch seconds, or milliseconds when too large to be seconds.
    if n.abs() < 100_000_000_000 {
        DateTime::from_timestamp(n, 0)
    } else {
        DateTime::from_timestamp_millis(n)
    }
}

/// Reads bars from a CSV with a header naming `ts` (or `timestamp`/`time`/`date`), `open`,
/// `high`, `low`, `close` and optionally `volume` (0 when absent). Timestamps are RFC 3339, naive
/// UTC (`2024-03-01 14:30:00`) or epoch seconds/milliseconds, strictly increasing.
pub fn read_bars_csv(path: &Path) -> Result<Vec<Bar>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let where_ = |line: usize| format!("{}:{line}", path.display());
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| anyhow!("{} is empty", path.display()))?;
    let names: Vec<String> = header
        .split(',')
        .map(|h| h.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let find = |alts: &[&str]| names.iter().position(|n| alts.contains(&n.as_str()));
    let need = |alts: &[&str]| {
        find(alts).ok_or_else(|| {
            anyhow!(
                "{}: header has no `{}` column (found: {})",
                where_(1),
                alts[0],
                names.join(", ")
            )
        })
    };
    let its = need(&["ts", "timestamp", "time", "date", "datetime"])?;
    let (io, ih, il, ic) = (
        need(&["open"])?,
        need(&["high"])?,
        need(&["low"])?,
        need(&["close"])?,
    );
    let iv = find(&["volume", "vol"]);
    let mut bars: Vec<Bar> = Vec::new();
    for (i, line) in lines {
        let f: Vec<&str> = line.split(',').collect();
        let field = |k: usize, name: &str| -> Result<f64> {
            let s = f.get(k).map(|s| s.trim()).unwrap_or("");
            s.parse::<f64>()
                .map_err(|_| anyhow!("{}: field `{name}` is not a number: {s:?}", where_(i + 1)))
        };
        let ts_s = f.get(its).copied().unwrap_or("");
        let ts = parse_ts(ts_s)
            .ok_or_else(|| anyhow!("{}: cannot read timestamp {ts_s:?}", where_(i + 1)))?;
        let bar = Bar {
            ts,
            open: field(io, "open")?,
            high: field(ih, "high")?,
            low: field(il, "low")?,
            close: field(ic, "close")?,
            volume: match iv {
                Some(k) if f.get(k).is_some_and(|s| !s.trim().is_empty()) => field(k, "volume")?,
                _ => 0.0,
            },
        };
        if let Some(prev) = bars.last() {
            if bar.ts <= prev.ts {
                bail!(
                    "{}: timestamps must increase ({} then {})",
                    where_(i + 1),
                    prev.ts,
                    bar.ts
                );
            }
        }
        bars.push(bar);
    }
    Ok(bars)
}
