//! Checkpoint pruning: a run writes a model checkpoint (`checkpoints/update_N.safetensors`) and a
//! training state (`state/update_N.safetensors`) at every validation; only these are kept:
//! - every `keep_every`-th validation's (updates that are multiples of interval × keep_every);
//! - the best validation's (a resume from an earlier checkpoint restores `best.safetensors` from
//!   it);
//! - the newest (what `--resume` continues after a kill);
//! - and, never touched because they live outside these folders, `best.safetensors` and
//!   `model.safetensors` — the files the run's events and manifest name as best and final.

use super::state::{update_of, STATE_DIR};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub const CHECKPOINT_DIR: &str = "checkpoints";

/// `checkpoints/update_00010.safetensors`.
pub fn checkpoint_path(out_dir: &Path, update: usize) -> PathBuf {
    out_dir
        .join(CHECKPOINT_DIR)
        .join(format!("update_{update:05}.safetensors"))
}

/// What a run's pruning must keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeepRule {
    pub validation_interval: usize,
    pub keep_every: usize,
    /// The newest checkpoint's update.
    pub newest: usize,
    pub best: Option<usize>,
}

impl KeepRule {
    pub fn keeps(&self, update: usize) -> bool {
        let period = self
            .validation_interval
            .max(1)
            .saturating_mul(self.keep_every.max(1));
        update == self.newest || Some(update) == self.best || update.is_multiple_of(period)
    }
}

/// Removes the periodic checkpoints and states the rule does not keep; returns what it removed.
pub fn prune(out_dir: &Path, rule: &KeepRule) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for dir in [CHECKPOINT_DIR, STATE_DIR] {
        let Ok(entries) = std::fs::read_dir(out_dir.join(dir)) else {
            continue;
        };
        let mut doomed: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| update_of(p).is_some_and(|u| !rule.keeps(u)))
            .collect();
        doomed.sort();
        for p in doomed {
            std::fs::remove_file(&p).with_context(|| format!("cannot prune {}", p.display()))?;
            removed.push(p);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_nth_the_best_and_the_newest() {
        let rule = KeepRule {
            validation_interval: 5,
            keep_every: 3,
            newest: 40,
            best: Some(20),
        };
        let kept: Vec<usize> = (1..=8).map(|k| k * 5).filter(|u| rule.keeps(*u)).collect();
        // Every 3rd validation (15, 30), the best (20), the newest (40).
        assert_eq!(kept, vec![15, 20, 30, 40]);
        let all = KeepRule {
            keep_every: 1,
            ..rule
        };
        assert!((1..=8).all(|k| all.keeps(k * 5)));
    }

    #[test]
    fn prune_removes_files_of_both_folders_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        for sub in [CHECKPOINT_DIR, STATE_DIR] {
            std::fs::create_dir_all(out.join(sub)).unwrap();
            for u in [2, 4, 6, 8, 10] {
                std::fs::write(
                    out.join(sub).join(format!("update_{u:05}.safetensors")),
                    b"x",
                )
                .unwrap();
            }
            std::fs::write(out.join(sub).join("notes.txt"), b"mine").unwrap();
        }
        std::fs::write(out.join("best.safetensors"), b"b").unwrap();
        std::fs::write(out.join("model.safetensors"), b"m").unwrap();
        let rule = KeepRule {
            validation_interval: 2,
            keep_every: 2,
            newest: 10,
            best: Some(6),
        };
        let removed = prune(out, &rule).unwrap();
        assert_eq!(removed.len(), 2, "update 2 in both folders: {removed:?}");
        for sub in [CHECKPOINT_DIR, STATE_DIR] {
            let mut left: Vec<String> = std::fs::read_dir(out.join(sub))
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            left.sort();
            assert_eq!(
                left,
                [
                    "notes.txt",
                    "update_00004.safetensors",
                    "update_00006.safetensors",
                    "update_00008.safetensors",
                    "update_00010.safetensors"
                ]
            );
        }
        assert!(out.join("best.safetensors").exists() && out.join("model.safetensors").exists());
    }
}
