//! Feature matrices out to CSV or parquet (for checking in pandas). Bars come in through
//! `data::import`, the one reader of outside files.
//! Columns: `ts` (UTC), the bar's OHLCV, the raw indicators (TA-Lib's units, empty/NaN before
//! their lookback), `usable` (1 from the first usable bar on), then the features by spec name.

use super::{ta, FeatureMatrix, FeatureSpec};
use crate::market::Bar;
use crate::paths::{tmp_path, write_atomic};
use anyhow::{bail, Result};
use chrono::SecondsFormat;
use polars::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// Output formats, chosen by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

/// The format `path`'s extension asks for; any extension but `.csv` and `.parquet` is refused
/// rather than written as something else.
pub fn format_of(path: &Path) -> Result<Format> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("csv") => Ok(Format::Csv),
        Some("parquet") => Ok(Format::Parquet),
        _ => bail!(
            "cannot write {}: the output must end in .csv or .parquet",
            path.display()
        ),
    }
}

/// Writes `fm` (computed from `bars` with `spec`) and the raw indicators to `path`, as CSV or
/// parquet by its extension (see [`format_of`]).
pub fn write(path: &Path, spec: &FeatureSpec, bars: &[Bar], fm: &FeatureMatrix) -> Result<()> {
    if fm.len() != bars.len() {
        bail!(
            "feature matrix has {} rows for {} bars",
            fm.len(),
            bars.len()
        );
    }
    let format = format_of(path)?;
    let raw = ta::compute(bars);
    if format == Format::Parquet {
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
