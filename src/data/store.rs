//! The bar store: one parquet file per (symbol, timeframe) written through polars, plus a small
//! JSON sidecar saying where the bars came from. Writes are atomic (temp file + rename).

use crate::market::{AssetClass, Bar, Symbol, Timeframe};
use crate::paths::{tmp_path, write_atomic};
use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What the store knows about one series without reading its bars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesInfo {
    pub symbol: String,
    pub class: AssetClass,
    pub timeframe: Timeframe,
    /// `synthetic`, `alpaca` or `import`.
    pub source: String,
    pub bars: usize,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    pub sha256: String,
    pub updated: DateTime<Utc>,
    /// Share of calendar bars present between the first and last bar.
    #[serde(default)]
    pub coverage: f64,
    /// Quality flags found when the series was written (see `quality::check`).
    #[serde(default)]
    pub flags: Vec<String>,
}

impl SeriesInfo {
    pub fn symbol(&self) -> Symbol {
        Symbol {
            name: self.symbol.clone(),
            class: self.class,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// A store rooted at `<data>/bars`.
    pub fn new(data_dir: &Path) -> Self {
        Store {
            root: data_dir.join("bars"),
        }
    }

    pub fn parquet_path(&self, symbol: &Symbol, tf: Timeframe) -> PathBuf {
        self.root
            .join(tf.to_string())
            .join(format!("{}.parquet", symbol.file_stem()))
    }

    fn info_path(&self, symbol: &Symbol, tf: Timeframe) -> PathBuf {
        self.parquet_path(symbol, tf).with_extension("json")
    }

    /// Replaces the series with `bars` (sorted, de-duplicated by timestamp here).
    pub fn write(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        bars: &[Bar],
        source: &str,
    ) -> Result<SeriesInfo> {
        let mut bars = bars.to_vec();
        bars.sort_by_key(|b| b.ts);
        bars.dedup_by_key(|b| b.ts);
        let path = self.parquet_path(symbol, tf);
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;

        let mut df = bars_to_frame(&bars)?;
        let tmp = tmp_path(&path);
        let res = (|| -> Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            ParquetWriter::new(&mut f).finish(&mut df)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            Ok(())
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.context(format!("cannot write {}", path.display())));
        }
        let info = SeriesInfo {
            symbol: symbol.name.clone(),
            class: symbol.class,
            timeframe: tf,
            source: source.to_string(),
            bars: bars.len(),
            first: bars.first().map(|b| b.ts),
            last: bars.last().map(|b| b.ts),
            sha256: hash_bars(&bars),
            updated: Utc::now(),
            coverage: 0.0,
            flags: Vec::new(),
        };
        // Staleness is judged when shown, not here: "now" is the last bar.
        let q = super::quality::check(
            &bars,
            symbol.class,
            tf,
            None,
            info.last.unwrap_or_else(Utc::now),
        );
        let info = SeriesInfo {
            coverage: q.coverage,
            flags: q.flags,
            ..info
        };
        write_atomic(
            &self.info_path(symbol, tf),
            &serde_json::to_vec_pretty(&info)?,
        )?;
        Ok(info)
    }

    /// Reads a series. A missing file says how to get one; a corrupt one names the file.
    pub fn read(&self, symbol: &Symbol, tf: Timeframe) -> Result<Vec<Bar>> {
        let path = self.parquet_path(symbol, tf);
        if !path.exists() {
            bail!(
                "no {tf} bars for {symbol} in the store ({}): run `quantdeck fetch {symbol}` first",
                path.display()
            );
        }
        read_parquet(&path)
    }

    /// Merges `new` into the stored series (new bars replace stored ones at the same time) and
    /// writes the result atomically: a failure midway leaves the old file as it was.
    pub fn merge(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        new: &[Bar],
        source: &str,
    ) -> Result<SeriesInfo> {
        let path = self.parquet_path(symbol, tf);
        let mut bars = if path.exists() {
            read_parquet(&path)?
        } else {
            Vec::new()
        };
        if new.is_empty() && !bars.is_empty() {
            if let Some(info) = self.info(symbol, tf) {
                return Ok(info);
            }
        }
        // Later entries win in dedup below: put the new bars first after a stable sort.
        bars.extend_from_slice(new);
        bars.reverse();
        bars.sort_by_key(|b| b.ts);
        bars.dedup_by_key(|b| b.ts);
        self.write(symbol, tf, &bars, source)
    }

    /// Reads a series; a file that cannot be read is moved aside (`*.corrupt-<time>`) so it is
    /// never silently reused, and the error says where it went.
    pub fn read_or_quarantine(&self, symbol: &Symbol, tf: Timeframe) -> Result<Option<Vec<Bar>>> {
        let path = self.parquet_path(symbol, tf);
        if !path.exists() {
            return Ok(None);
        }
        match read_parquet(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) => {
                let aside = path.with_extension(format!(
                    "parquet.corrupt-{}",
                    Utc::now().format("%Y%m%dT%H%M%S")
                ));
                std::fs::rename(&path, &aside)
                    .with_context(|| format!("cannot move corrupt {} aside", path.display()))?;
                let _ = std::fs::remove_file(self.info_path(symbol, tf));
                Err(e.context(format!("moved the corrupt file to {}", aside.display())))
            }
        }
    }

    pub fn info(&self, symbol: &Symbol, tf: Timeframe) -> Option<SeriesInfo> {
        let text = std::fs::read_to_string(self.info_path(symbol, tf)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Every stored series, by timeframe then symbol.
    pub fn list(&self) -> Vec<SeriesInfo> {
        let mut out = Vec::new();
        let Ok(tfs) = std::fs::read_dir(&self.root) else {
            return out;
        };
        for tf_dir in tfs.flatten() {
            let Ok(files) = std::fs::read_dir(tf_dir.path()) else {
                continue;
            };
            for f in files.flatten() {
                let p = f.path();
                if p.extension().is_some_and(|e| e == "json") {
                    if let Some(info) = std::fs::read_to_string(&p)
                        .ok()
                        .and_then(|t| serde_json::from_str::<SeriesInfo>(&t).ok())
                    {
                        out.push(info);
                    }
                }
            }
        }
        out.sort_by(|a, b| (a.timeframe, &a.symbol).cmp(&(b.timeframe, &b.symbol)));
        out
    }
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

/// Reads and validates a bar file written by [`Store::write`].
pub fn read_parquet(path: &Path) -> Result<Vec<Bar>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let df = ParquetReader::new(file).finish().map_err(|e| {
        anyhow!(
            "{} is not a readable parquet bar file (corrupt or truncated?): {e}",
            path.display()
        )
    })?;
    frame_to_bars(&df).with_context(|| format!("bad bar data in {}", path.display()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn bar(min: i64, c: f64) -> Bar {
        Bar {
            ts: Utc.with_ymd_and_hms(2024, 3, 1, 14, 30, 0).unwrap()
                + chrono::Duration::minutes(min),
            open: c,
            high: c + 1.0,
            low: c - 1.0,
            close: c,
            volume: 10.0,
        }
    }

    #[test]
    fn round_trip_sorts_and_dedups() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let sym = Symbol::crypto("BTC/USD");
        let tf = Timeframe::Minute(15);
        let info = store
            .write(
                &sym,
                tf,
                &[bar(30, 3.0), bar(0, 1.0), bar(15, 2.0), bar(15, 2.0)],
                "test",
            )
            .unwrap();
        assert_eq!(info.bars, 3);
        assert!(store
            .parquet_path(&sym, tf)
            .ends_with("15Min/BTC-USD.parquet"));
        let back = store.read(&sym, tf).unwrap();
        assert_eq!(back, vec![bar(0, 1.0), bar(15, 2.0), bar(30, 3.0)]);
        assert_eq!(store.list(), vec![store.info(&sym, tf).unwrap()]);
        assert_eq!(hash_bars(&back), info.sha256);
    }

    #[test]
    fn corrupt_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let sym = Symbol::equity("AAA");
        let tf = Timeframe::Minute(15);
        store
            .write(&sym, tf, &[bar(0, 1.0), bar(15, 2.0)], "test")
            .unwrap();
        let p = store.parquet_path(&sym, tf);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let err = format!("{:#}", store.read(&sym, tf).unwrap_err());
        assert!(err.contains("AAA.parquet"), "{err}");
        let missing = format!("{:#}", store.read(&Symbol::equity("ZZZ"), tf).unwrap_err());
        assert!(missing.contains("quantdeck fetch ZZZ"), "{missing}");
    }
}
