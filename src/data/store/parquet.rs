//! Bar files: OHLCV with a UTC millisecond `ts`, plus file-level key-value metadata naming the
//! symbol, class, timeframe and source, so that a bar file describes itself even without its
//! sidecar.

use crate::market::{AssetClass, Bar, Symbol, Timeframe};
use crate::paths::tmp_path;
use anyhow::{anyhow, bail, Context, Result};
use chrono::DateTime;
use polars::prelude::*;
use sha2::{Digest, Sha256};
use std::path::Path;

const KEY_SYMBOL: &str = "quantdeck.symbol";
const KEY_CLASS: &str = "quantdeck.class";
const KEY_TIMEFRAME: &str = "quantdeck.timeframe";
const KEY_SOURCE: &str = "quantdeck.source";

/// What a bar file says about itself (absent in files written before it was recorded).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileMeta {
    pub symbol: Option<String>,
    pub class: Option<AssetClass>,
    pub timeframe: Option<Timeframe>,
    pub source: Option<String>,
}

/// Writes `bars` to `path` atomically (temp file, fsync, rename).
pub(super) fn write_bars(
    path: &Path,
    bars: &[Bar],
    symbol: &Symbol,
    tf: Timeframe,
    source: &str,
) -> Result<()> {
    let mut df = bars_to_frame(bars)?;
    let meta = KeyValueMetadata::from_static(vec![
        (KEY_SYMBOL.into(), symbol.name.clone()),
        (KEY_CLASS.into(), symbol.class.as_str().into()),
        (KEY_TIMEFRAME.into(), tf.to_string()),
        (KEY_SOURCE.into(), source.into()),
    ]);
    let tmp = tmp_path(path);
    let res = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        ParquetWriter::new(&mut f)
            .with_key_value_metadata(Some(meta))
            .finish(&mut df)?;
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

fn bars_to_frame(bars: &[Bar]) -> Result<DataFrame> {
    let ts: Vec<i64> = bars.iter().map(|b| b.ts.timestamp_millis()).collect();
    let col = |name: &str, f: fn(&Bar) -> f64| {
        Column::new(name.into(), bars.iter().map(f).collect::<Vec<f64>>())
    };
    let ts = Column::new("ts".into(), ts).cast(&DataType::Datetime(
        TimeUnit::Milliseconds,
        Some(TimeZone::UTC),
    ))?;
    let df = DataFrame::new(
        bars.len(),
        vec![
            ts,
            col("open", |b| b.open),
            col("high", |b| b.high),
            col("low", |b| b.low),
            col("close", |b| b.close),
            col("volume", |b| b.volume),
        ],
    )?;
    Ok(df)
}

/// Reads and validates a bar file written by the store.
pub fn read_parquet(path: &Path) -> Result<Vec<Bar>> {
    read_with_meta(path).map(|(bars, _)| bars)
}

/// Reads a bar file and what it says about itself.
pub(super) fn read_with_meta(path: &Path) -> Result<(Vec<Bar>, FileMeta)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let unreadable = |e: PolarsError| {
        anyhow!(
            "{} is not a readable parquet bar file (corrupt or truncated?): {e}",
            path.display()
        )
    };
    let mut reader = ParquetReader::new(file);
    let mut meta = FileMeta::default();
    if let Some(kv) = reader
        .get_metadata()
        .map_err(unreadable)?
        .key_value_metadata()
    {
        for item in kv {
            let Some(v) = item.value.clone() else {
                continue;
            };
            match item.key.as_str() {
                KEY_SYMBOL => meta.symbol = Some(v),
                KEY_CLASS => meta.class = AssetClass::from_name(&v),
                KEY_TIMEFRAME => meta.timeframe = v.parse().ok(),
                KEY_SOURCE => meta.source = Some(v),
                _ => {}
            }
        }
    }
    let df = reader.finish().map_err(unreadable)?;
    let bars = frame_to_bars(&df).with_context(|| format!("bad bar data in {}", path.display()))?;
    Ok((bars, meta))
}

fn frame_to_bars(df: &DataFrame) -> Result<Vec<Bar>> {
    let ts_col = df
        .column("ts")
        .map_err(|_| anyhow!("missing column `ts`"))?;
    let ts = ts_col
        .cast(&DataType::Datetime(
            TimeUnit::Milliseconds,
            Some(TimeZone::UTC),
        ))
        .map_err(|e| anyhow!("column `ts` is not a timestamp: {e}"))?;
    let ts = ts.datetime()?.physical().clone();
    let f = |name: &str| -> Result<Float64Chunked> {
        let c = df
            .column(name)
            .map_err(|_| anyhow!("missing column `{name}`"))?;
        Ok(c.cast(&DataType::Float64)?.f64()?.clone())
    };
    let (o, h, l, c, v) = (f("open")?, f("high")?, f("low")?, f("close")?, f("volume")?);
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let row = |ch: &Float64Chunked, name: &str| {
            ch.get(i).ok_or_else(|| anyhow!("row {i}: null {name}"))
        };
        let ms = ts.get(i).ok_or_else(|| anyhow!("row {i}: null ts"))?;
        let bar = Bar {
            ts: DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| anyhow!("row {i}: timestamp out of range"))?,
            open: row(&o, "open")?,
            high: row(&h, "high")?,
            low: row(&l, "low")?,
            close: row(&c, "close")?,
            volume: row(&v, "volume")?,
        };
        if let Some(prev) = out.last().map(|b: &Bar| b.ts) {
            if bar.ts <= prev {
                bail!(
                    "row {i}: timestamps not strictly increasing ({prev} then {})",
                    bar.ts
                );
            }
        }
        out.push(bar);
    }
    Ok(out)
}

/// SHA-256 over the bars' canonical bytes: identical data gives an identical hash anywhere.
pub fn hash_bars(bars: &[Bar]) -> String {
    let mut h = Sha256::new();
    for b in bars {
        h.update(b.ts.timestamp_millis().to_le_bytes());
        for x in [b.open, b.high, b.low, b.close, b.volume] {
            h.update(x.to_le_bytes());
        }
    }
    format!("{:x}", h.finalize())
}
