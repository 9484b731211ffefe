//! The bar store: one parquet file per series (timeframe, class, symbol), a JSON sidecar caching
//! what it holds, and a lock file that makes writers of one series take turns.
//!
//! Layout: `<data>/bars/<timeframe>/<class>/<stem>.parquet`, its `<stem>.json` sidecar and a
//! `.<stem>.lock`, where the stem is the symbol's escaped name ([`Symbol::file_stem`]): `BTC/USD`
//! as crypto is `bars/15Min/crypto/BTC%2FUSD.parquet`, `BTC-USD` as an equity
//! `bars/15Min/equity/BTC-USD.parquet`. Stores of earlier releases (`bars/<timeframe>/<stem>`
//! with `/` and every other character replaced by `-`) are moved into this layout when first
//! seen.
//!
//! Every write holds the series lock across its whole read-merge-write and replaces files
//! atomically (temp file + rename), so readers, which take no lock, never see half a file.

mod legacy;
mod lock;
mod parquet;
mod sidecar;
mod tidy;

pub use lock::SeriesLock;
pub use parquet::{hash_bars, read_parquet, FileMeta};
pub use sidecar::UNREADABLE;

use crate::market::{AssetClass, Bar, Symbol, Timeframe};
use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sidecar::FileStamp;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Every series of a store, and what listing it did and found on the way.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub series: Vec<SeriesInfo>,
    /// Repairs made (legacy files moved, sidecars rebuilt, orphan temp files removed): each is
    /// reported once.
    pub notes: Vec<String>,
    /// Problems left as they are (unreadable files, unknown file names): reported every time.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    lock_timeout: Duration,
}

impl Store {
    /// A store rooted at `<data>/bars`.
    pub fn new(data_dir: &Path) -> Self {
        Store {
            root: data_dir.join("bars"),
            lock_timeout: lock::DEFAULT_TIMEOUT,
        }
    }

    /// How long a writer waits for another writer of the same series before failing.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    fn series_dir(&self, class: AssetClass, tf: Timeframe) -> PathBuf {
        self.root.join(tf.to_string()).join(class.as_str())
    }

    pub fn parquet_path(&self, symbol: &Symbol, tf: Timeframe) -> PathBuf {
        self.series_dir(symbol.class, tf)
            .join(format!("{}.parquet", symbol.file_stem()))
    }

    fn info_path(&self, symbol: &Symbol, tf: Timeframe) -> PathBuf {
        self.series_dir(symbol.class, tf)
            .join(format!("{}.json", symbol.file_stem()))
    }

    pub fn lock_path(&self, symbol: &Symbol, tf: Timeframe) -> PathBuf {
        self.series_dir(symbol.class, tf)
            .join(format!(".{}.lock", symbol.file_stem()))
    }

    /// Waits for the series' writer lock (see [`SeriesLock::acquire`]).
    pub fn lock(&self, symbol: &Symbol, tf: Timeframe) -> Result<SeriesLock> {
        SeriesLock::acquire(&self.lock_path(symbol, tf), self.lock_timeout)
    }

    /// Whether the store holds a bar file for the series.
    pub fn contains(&self, symbol: &Symbol, tf: Timeframe) -> Result<bool> {
        self.adopt_legacy(symbol, tf)?;
        Ok(self.parquet_path(symbol, tf).exists())
    }

    /// Replaces the series with `bars` (sorted, de-duplicated by timestamp here).
    pub fn write(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        bars: &[Bar],
        source: &str,
    ) -> Result<SeriesInfo> {
        let _lock = self.lock(symbol, tf)?;
        self.adopt_legacy_locked(symbol, tf)?;
        // Another source's bars are kept, never overwritten.
        if let Some(note) = self.set_aside_locked(symbol, tf, source)? {
            tracing::warn!("{note}");
        }
        self.write_locked(symbol, tf, bars.to_vec(), source)
    }

    /// The source of the stored series (`None` when there is none, or it does not say); the
    /// caller holds its lock.
    fn stored_source(&self, symbol: &Symbol, tf: Timeframe) -> Result<Option<String>> {
        Ok(self
            .describe_series(symbol, tf, true)?
            .map(|(i, _)| i.source)
            .filter(|s| s != "unknown"))
    }

    /// Moves the stored series aside when it comes from another source than `source` (renamed
    /// to `<name>.parquet.<its source>-<time>`, nothing deleted) and says where it went. A
    /// series has one source: bars of another are never merged into it, and an Alpaca fetch is
    /// never answered by synthetic bars. `None` when the store holds no other source's bars.
    pub fn set_aside_other_source(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        source: &str,
    ) -> Result<Option<String>> {
        let _lock = self.lock(symbol, tf)?;
        self.adopt_legacy_locked(symbol, tf)?;
        self.set_aside_locked(symbol, tf, source)
    }

    fn set_aside_locked(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        source: &str,
    ) -> Result<Option<String>> {
        let Some(old) = self.stored_source(symbol, tf)? else {
            return Ok(None);
        };
        if old == source {
            return Ok(None);
        }
        let path = self.parquet_path(symbol, tf);
        let safe: String = old
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let aside = path.with_file_name(format!(
            "{}.{safe}-{}",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Utc::now().format("%Y%m%dT%H%M%S%.3f")
        ));
        std::fs::rename(&path, &aside)
            .with_context(|| format!("cannot move {} aside", path.display()))?;
        let _ = std::fs::remove_file(self.info_path(symbol, tf));
        Ok(Some(format!(
            "{symbol} {tf}: the store held {old} bars; they are not {source} bars, so they were moved aside to {} and the series starts again from {source}",
            aside.display()
        )))
    }

    /// Writes the series; the caller holds its lock.
    fn write_locked(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        mut bars: Vec<Bar>,
        source: &str,
    ) -> Result<SeriesInfo> {
        bars.sort_by_key(|b| b.ts);
        bars.dedup_by_key(|b| b.ts);
        let path = self.parquet_path(symbol, tf);
        let dir = self.series_dir(symbol.class, tf);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        parquet::write_bars(&path, &bars, symbol, tf, source)?;
        let stamp = FileStamp::of(&path)?;
        let info = sidecar::describe(symbol, tf, &bars, source, Utc::now());
        sidecar::write(&self.info_path(symbol, tf), &info, stamp)?;
        Ok(info)
    }

    /// Reads a series. A missing file says how to get one; a corrupt one names the file.
    pub fn read(&self, symbol: &Symbol, tf: Timeframe) -> Result<Vec<Bar>> {
        self.adopt_legacy(symbol, tf)?;
        let path = self.parquet_path(symbol, tf);
        if !path.exists() {
            bail!(
                "no {tf} bars for {symbol} ({}) in the store ({}): run `quantdeck fetch {symbol}` first",
                symbol.class.as_str(),
                path.display()
            );
        }
        read_parquet(&path)
    }

    /// Merges `new` into the stored series (new bars replace stored ones at the same time) and
    /// writes the result atomically: a failure midway leaves the old file as it was. Holds the
    /// series lock throughout, so concurrent merges all land.
    pub fn merge(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        new: &[Bar],
        source: &str,
    ) -> Result<SeriesInfo> {
        let _lock = self.lock(symbol, tf)?;
        self.adopt_legacy_locked(symbol, tf)?;
        let path = self.parquet_path(symbol, tf);
        if let Some(old) = self.stored_source(symbol, tf)?.filter(|o| o != source) {
            bail!(
                "{symbol} {tf}: the store holds {old} bars ({}); {source} bars are never merged into them (a series has one source): replace them (`import --replace`), or move the file aside",
                path.display()
            );
        }
        let mut bars = if path.exists() {
            read_parquet(&path)?
        } else {
            Vec::new()
        };
        if new.is_empty() && !bars.is_empty() {
            if let Some((info, _)) = self.describe_series(symbol, tf, true)? {
                return Ok(info);
            }
        }
        // Later entries win in dedup below: put the new bars first after a stable sort.
        bars.extend_from_slice(new);
        bars.reverse();
        bars.sort_by_key(|b| b.ts);
        bars.dedup_by_key(|b| b.ts);
        self.write_locked(symbol, tf, bars, source)
    }

    /// Reads a series; a file that cannot be read is moved aside (`*.corrupt-<time>`) so it is
    /// never silently reused, and the error says where it went.
    pub fn read_or_quarantine(&self, symbol: &Symbol, tf: Timeframe) -> Result<Option<Vec<Bar>>> {
        self.adopt_legacy(symbol, tf)?;
        let path = self.parquet_path(symbol, tf);
        if !path.exists() {
            return Ok(None);
        }
        if let Ok(b) = read_parquet(&path) {
            return Ok(Some(b));
        }
        // Judge again under the lock: a writer may have replaced the file meanwhile.
        let _lock = self.lock(symbol, tf)?;
        if !path.exists() {
            return Ok(None);
        }
        match read_parquet(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) => {
                let aside = quarantine(&path)?;
                let _ = std::fs::remove_file(self.info_path(symbol, tf));
                Err(e.context(format!("moved the corrupt file to {}", aside.display())))
            }
        }
    }

    /// What the series holds, from its sidecar when that is current, else from the bar file
    /// (rebuilding the sidecar). `None` when the store has no such series.
    pub fn info(&self, symbol: &Symbol, tf: Timeframe) -> Option<SeriesInfo> {
        if let Err(e) = self.adopt_legacy(symbol, tf) {
            tracing::warn!("{e:#}");
        }
        match self.describe_series(symbol, tf, false) {
            Ok(Some((info, note))) => {
                if let Some(n) = note {
                    tracing::info!("{n}");
                }
                Some(info)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("{e:#}");
                None
            }
        }
    }

    /// The series' description and, when its sidecar had to be rebuilt, a note saying why.
    /// `held`: the caller holds the series lock.
    fn describe_series(
        &self,
        symbol: &Symbol,
        tf: Timeframe,
        held: bool,
    ) -> Result<Option<(SeriesInfo, Option<String>)>> {
        let path = self.parquet_path(symbol, tf);
        let info_path = self.info_path(symbol, tf);
        let Some(stamp) = FileStamp::of(&path)? else {
            return Ok(None);
        };
        let side = sidecar::read(&info_path);
        if let Some(info) = sidecar::current(&side, symbol, tf, stamp) {
            return Ok(Some((info, None)));
        }
        // Repair under the lock when it is free; a writer that holds it writes a fresh sidecar
        // itself, so meanwhile (or on a read-only store) the description is computed without
        // saving it.
        let lock = if held {
            None
        } else {
            SeriesLock::try_acquire(&self.lock_path(symbol, tf))
                .ok()
                .flatten()
        };
        let may_write = held || lock.is_some();
        let (side, stamp) = if lock.is_some() {
            let Some(stamp) = FileStamp::of(&path)? else {
                return Ok(None);
            };
            let side = sidecar::read(&info_path);
            if let Some(info) = sidecar::current(&side, symbol, tf, stamp) {
                return Ok(Some((info, None)));
            }
            (side, stamp)
        } else {
            (side, stamp)
        };
        let (info, note) = sidecar::rebuild(&path, &info_path, side, symbol, tf, stamp, may_write);
        Ok(Some((info, Some(note))))
    }

    /// Every series the store holds, found from the bar files themselves; on the way, moves
    /// legacy files into place, rebuilds missing, unreadable or stale sidecars and removes temp
    /// files left by killed writers.
    pub fn scan(&self) -> Scan {
        let mut scan = Scan::default();
        let Ok(tfs) = std::fs::read_dir(&self.root) else {
            return scan;
        };
        for tf_dir in tfs.flatten() {
            let Some(tf) = tf_dir
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Timeframe>().ok())
            else {
                continue;
            };
            let dir = tf_dir.path();
            self.migrate_legacy_dir(tf, &dir, &mut scan);
            tidy::remove_orphans(&dir, &mut scan);
            for class in AssetClass::ALL {
                let dir = self.series_dir(class, tf);
                let Ok(files) = std::fs::read_dir(&dir) else {
                    continue;
                };
                tidy::remove_orphans(&dir, &mut scan);
                for f in files.flatten() {
                    let name = f.file_name().to_string_lossy().to_string();
                    let Some(stem) = name.strip_suffix(".parquet") else {
                        continue;
                    };
                    let Some(sym) = Symbol::from_file_stem(stem, class) else {
                        scan.problems.push(format!(
                            "{}: not a series file name, left alone",
                            f.path().display()
                        ));
                        continue;
                    };
                    match self.describe_series(&sym, tf, false) {
                        Ok(Some((info, note))) => {
                            if info.flags.iter().any(|f| f == UNREADABLE) {
                                scan.problems.extend(note);
                            } else {
                                scan.notes.extend(note);
                            }
                            scan.series.push(info);
                        }
                        Ok(None) => {}
                        Err(e) => scan.problems.push(format!("{sym} {tf}: {e:#}")),
                    }
                }
            }
        }
        scan.series.sort_by(|a, b| {
            (a.timeframe, &a.symbol, a.class).cmp(&(b.timeframe, &b.symbol, b.class))
        });
        scan
    }

    /// Every stored series, by timeframe then symbol (see [`Store::scan`]; its notes go to the
    /// log, its problems to the debug log, since a listing repeats often).
    pub fn list(&self) -> Vec<SeriesInfo> {
        let scan = self.scan();
        for n in &scan.notes {
            tracing::info!("store: {n}");
        }
        for n in &scan.problems {
            tracing::debug!("store: {n}");
        }
        scan.series
    }
}

/// Moves an unreadable file aside, to `<name>.corrupt-<time>`, and returns where it went.
fn quarantine(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let aside = path.with_file_name(format!(
        "{name}.corrupt-{}",
        Utc::now().format("%Y%m%dT%H%M%S%.3f")
    ));
    std::fs::rename(path, &aside)
        .with_context(|| format!("cannot move corrupt {} aside", path.display()))?;
    Ok(aside)
}

#[cfg(test)]
mod tests;
