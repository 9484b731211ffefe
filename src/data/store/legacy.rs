//! Stores of earlier releases kept `bars/<timeframe>/<stem>.parquet`, where the stem replaced
//! every character but `A–Z0–9.` with `-`: `BTC/USD` (crypto) and `BTC-USD` (equity) shared one
//! file. Such a file is moved into the current layout when first seen, under the symbol its
//! sidecar names; merged into the current file if both exist (the current one wins where they
//! overlap).

use super::{quarantine, read_parquet, sidecar, Scan, Store};
use crate::market::{Symbol, Timeframe};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

impl Store {
    fn legacy_path(&self, symbol: &Symbol, tf: Timeframe) -> PathBuf {
        self.root
            .join(tf.to_string())
            .join(format!("{}.parquet", symbol.legacy_file_stem()))
    }

    /// Moves this series' legacy file into place, if it has one.
    pub(super) fn adopt_legacy(&self, symbol: &Symbol, tf: Timeframe) -> Result<()> {
        if !self.legacy_path(symbol, tf).exists() {
            return Ok(());
        }
        let _lock = self.lock(symbol, tf)?;
        self.adopt_legacy_locked(symbol, tf)
    }

    /// As [`Store::adopt_legacy`], for a caller that holds the series lock.
    pub(super) fn adopt_legacy_locked(&self, symbol: &Symbol, tf: Timeframe) -> Result<()> {
        let legacy = self.legacy_path(symbol, tf);
        if !legacy.exists() {
            return Ok(());
        }
        let (owner, guess) = identify(&legacy)?;
        if owner == *symbol {
            let note = self.migrate_locked(&legacy, symbol, tf, guess)?;
            tracing::info!("store: {note}");
        }
        Ok(())
    }

    /// Moves every legacy file of one timeframe directory into place.
    pub(super) fn migrate_legacy_dir(&self, tf: Timeframe, dir: &Path, scan: &mut Scan) {
        let Ok(files) = std::fs::read_dir(dir) else {
            return;
        };
        for f in files.flatten() {
            let path = f.path();
            if !(path.is_file() && path.extension().is_some_and(|e| e == "parquet")) {
                continue;
            }
            let res = identify(&path).and_then(|(owner, guess)| {
                let _lock = self.lock(&owner, tf)?;
                // Another process may have moved it while this one waited for the lock.
                if !path.exists() {
                    return Ok(None);
                }
                self.migrate_locked(&path, &owner, tf, guess).map(Some)
            });
            match res {
                Ok(note) => scan.notes.extend(note),
                Err(e) => scan
                    .problems
                    .push(format!("{}: not moved: {e:#}", path.display())),
            }
        }
    }

    fn migrate_locked(
        &self,
        legacy: &Path,
        symbol: &Symbol,
        tf: Timeframe,
        guess: Option<String>,
    ) -> Result<String> {
        let old_side = legacy.with_extension("json");
        let legacy_source = sidecar::read(&old_side)
            .map(|s| s.info.source)
            .unwrap_or_else(|| "unknown".into());
        let old = match read_parquet(legacy) {
            Ok(b) => b,
            Err(e) => {
                let aside = quarantine(legacy)?;
                let _ = std::fs::remove_file(&old_side);
                return Ok(format!(
                    "{}: {e:#}; moved aside to {}",
                    legacy.display(),
                    aside.display()
                ));
            }
        };
        let target = self.parquet_path(symbol, tf);
        let (bars, source, how) = if target.exists() {
            let mut all = read_parquet(&target)?;
            let source = self
                .describe_series(symbol, tf, true)?
                .map(|(i, _)| i.source)
                .unwrap_or(legacy_source);
            let n = all.len();
            // The current file's bars go first, so the stable sort and dedup keep them where
            // both files have a bar.
            all.extend(old);
            all.sort_by_key(|b| b.ts);
            all.dedup_by_key(|b| b.ts);
            let how = format!("merged into {} ({n} bars there)", target.display());
            (all, source, how)
        } else {
            (old, legacy_source, format!("moved to {}", target.display()))
        };
        let info = self.write_locked(symbol, tf, bars, &source)?;
        std::fs::remove_file(legacy)
            .with_context(|| format!("cannot remove {} after moving it", legacy.display()))?;
        let _ = std::fs::remove_file(&old_side);
        let mut note = format!(
            "{}: {how}; {symbol} {tf} ({}) now holds {} bars",
            legacy.display(),
            symbol.class.as_str(),
            info.bars
        );
        if let Some(g) = guess {
            note.push_str("; ");
            note.push_str(&g);
        }
        Ok(note)
    }
}

/// Which symbol a legacy bar file holds: its sidecar says so. Without a readable sidecar, the
/// name is read back the way the old rule wrote it (a single `-` between two parts was a crypto
/// pair's `/`), and the second value says that this was a guess.
fn identify(legacy: &Path) -> Result<(Symbol, Option<String>)> {
    if let Some(s) = sidecar::read(&legacy.with_extension("json")) {
        if let Ok(sym) = Symbol::new(&s.info.symbol, s.info.class) {
            return Ok((sym, None));
        }
    }
    let stem = legacy
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let sym = match stem.split_once('-') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains('-') => {
            Symbol::new(&format!("{a}/{b}"), crate::market::AssetClass::Crypto)?
        }
        _ => Symbol::new(&stem, crate::market::AssetClass::Equity)?,
    };
    let guess = format!(
        "it had no readable sidecar, so it was taken for {sym} ({}); if that is wrong, import it again under its name",
        sym.class.as_str()
    );
    Ok((sym, Some(guess)))
}
