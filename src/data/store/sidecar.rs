//! The JSON sidecar beside each bar file: a cache of what the parquet holds (counts, range,
//! hash, quality), so that listing a store does not read every bar. The parquet is the truth: a
//! sidecar that is missing, unreadable, about another series, or stamped for another version of
//! the file (a write killed between the parquet and its sidecar) is rebuilt from the parquet.

use super::parquet::{hash_bars, read_with_meta};
use super::SeriesInfo;
use crate::market::{Bar, Symbol, Timeframe};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::UNIX_EPOCH;

/// Size and modification time of the bar file a sidecar describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct FileStamp {
    bytes: u64,
    modified_ns: u64,
}

impl FileStamp {
    /// `None` when the file does not exist.
    pub(super) fn of(path: &Path) -> Result<Option<FileStamp>> {
        let m = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot stat {}", path.display())),
        };
        let modified_ns = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Ok(Some(FileStamp {
            bytes: m.len(),
            modified_ns,
        }))
    }

    fn modified(self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(i64::try_from(self.modified_ns).unwrap_or(i64::MAX))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Sidecar {
    #[serde(flatten)]
    pub info: SeriesInfo,
    /// The bar file this sidecar was written for (absent in sidecars of older releases).
    #[serde(default)]
    pub file: Option<FileStamp>,
}

/// What the sidecar at `path` says, if it is readable JSON.
pub(super) fn read(path: &Path) -> Option<Sidecar> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

pub(super) fn write(path: &Path, info: &SeriesInfo, stamp: Option<FileStamp>) -> Result<()> {
    let side = Sidecar {
        info: info.clone(),
        file: stamp,
    };
    crate::paths::write_atomic(path, &serde_json::to_vec_pretty(&side)?)
}

/// The sidecar's description of `symbol`'s series, if it is current for the bar file `stamp`.
pub(super) fn current(
    side: &Option<Sidecar>,
    symbol: &Symbol,
    tf: Timeframe,
    stamp: FileStamp,
) -> Option<SeriesInfo> {
    let s = side.as_ref()?;
    (s.file == Some(stamp)
        && s.info.symbol == symbol.name
        && s.info.class == symbol.class
        && s.info.timeframe == tf)
        .then(|| s.info.clone())
}

/// Describes `bars` (sorted, unique) as the series `symbol`/`tf` from `source`.
pub(super) fn describe(
    symbol: &Symbol,
    tf: Timeframe,
    bars: &[Bar],
    source: &str,
    updated: DateTime<Utc>,
) -> SeriesInfo {
    let last = bars.last().map(|b| b.ts);
    // Staleness is judged when shown, not here: "now" is the last bar.
    let q = crate::data::quality::check(bars, symbol.class, tf, None, last.unwrap_or(updated));
    SeriesInfo {
        symbol: symbol.name.clone(),
        class: symbol.class,
        timeframe: tf,
        source: source.to_string(),
        bars: bars.len(),
        first: bars.first().map(|b| b.ts),
        last,
        sha256: hash_bars(bars),
        updated,
        coverage: q.coverage,
        flags: q.flags,
    }
}

/// Flag of a series whose bar file cannot be read; `data check` moves such a file aside.
pub const UNREADABLE: &str = "UNREADABLE";

/// Rebuilds the description of a series from its bar file. Writes the new sidecar only when
/// `may_write` (the caller holds the series lock). Returns the description and a note saying what
/// was wrong.
pub(super) fn rebuild(
    parquet: &Path,
    sidecar_path: &Path,
    old: Option<Sidecar>,
    symbol: &Symbol,
    tf: Timeframe,
    stamp: FileStamp,
    may_write: bool,
) -> (SeriesInfo, String) {
    let what = match &old {
        None if sidecar_path.exists() => "was unreadable",
        None => "was missing",
        Some(s) if s.info.symbol != symbol.name || s.info.class != symbol.class => {
            "named another series"
        }
        Some(_) => "was stale",
    };
    let old_source = old.as_ref().map(|s| s.info.source.clone());
    match read_with_meta(parquet) {
        Ok((bars, meta)) => {
            let source = meta
                .source
                .or(old_source)
                .unwrap_or_else(|| "unknown".into());
            let info = describe(symbol, tf, &bars, &source, stamp.modified());
            let mut note = format!(
                "{symbol} {tf}: the sidecar {what}; rebuilt from {} ({} bars)",
                parquet.display(),
                info.bars
            );
            if let Some(o) = old.filter(|o| o.info.bars != info.bars) {
                note.push_str(&format!(", it said {}", o.info.bars));
            }
            if may_write {
                if let Err(e) = write(sidecar_path, &info, Some(stamp)) {
                    note.push_str(&format!(" (not saved: {e:#})"));
                }
            }
            (info, note)
        }
        Err(e) => {
            let info = SeriesInfo {
                symbol: symbol.name.clone(),
                class: symbol.class,
                timeframe: tf,
                source: old_source.unwrap_or_else(|| "unknown".into()),
                bars: 0,
                first: None,
                last: None,
                sha256: String::new(),
                updated: stamp.modified(),
                coverage: 0.0,
                flags: vec![UNREADABLE.into()],
            };
            (info, format!("{symbol} {tf}: {e:#}"))
        }
    }
}
