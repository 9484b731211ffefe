//! The order journal: `journal.jsonl` in the paper run's directory, one JSON object per line,
//! appended and fsynced **before** the broker is asked anything. JSONL rather than SQLite: there is
//! one writer (the daemon holds the session lock), appending a line and fsyncing is all the
//! durability it needs, a torn last line after a crash is detectable (and was never followed by a
//! POST, which waits for the fsync), no C library joins the build, and a user can read it with
//! `tail`. The broker stays the source of truth: the journal says what was *asked*, the broker's
//! orders say what happened.

use super::ids::Intent;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Entry {
    /// About to submit this order (written and fsynced first).
    Intent {
        id: String,
        symbol: String,
        side: String,
        qty: Decimal,
        order_type: String,
        time_in_force: String,
        limit_price: Option<Decimal>,
        intent: Intent,
        /// The bar the decision was made on.
        bar: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// The broker accepted it (or a look-up found it).
    Accepted {
        id: String,
        order_id: String,
        status: String,
        at: DateTime<Utc>,
    },
    /// The broker refused it for good.
    Rejected {
        id: String,
        error: String,
        at: DateTime<Utc>,
    },
    /// The submit's outcome is unknown (timeout, 5xx): it must be looked up.
    Unknown {
        id: String,
        reason: String,
        at: DateTime<Utc>,
    },
    /// A look-up found no such order at the broker: it was never placed.
    NotPlaced { id: String, at: DateTime<Utc> },
    /// The order's fills up to `filled` were reported (as `Fill` events): a restart reports
    /// only what came after, whichever way it learns of them.
    Filled {
        id: String,
        filled: Decimal,
        at: DateTime<Utc>,
    },
}

impl Entry {
    pub fn id(&self) -> &str {
        match self {
            Entry::Intent { id, .. }
            | Entry::Accepted { id, .. }
            | Entry::Rejected { id, .. }
            | Entry::Unknown { id, .. }
            | Entry::NotPlaced { id, .. }
            | Entry::Filled { id, .. } => id,
        }
    }
}

pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
    repaired: Option<crate::jsonl::Repaired>,
}

impl Journal {
    /// Opens the journal for appending. A torn last line — an entry cut by a kill mid-write,
    /// never followed by a send — is cut off and kept aside first (`repaired` says so), so the
    /// next entry never lands glued onto it and the journal stays readable.
    pub fn open(path: &Path) -> Result<Self> {
        let (file, repaired) = crate::jsonl::open_append(path)
            .with_context(|| format!("cannot open the order journal {}", path.display()))?;
        if let Some(r) = &repaired {
            tracing::warn!("{}", r.message());
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            repaired,
        })
    }

    /// The torn tail cut off when the journal was opened, if there was one.
    pub fn repaired(&self) -> Option<&crate::jsonl::Repaired> {
        self.repaired.as_ref()
    }

    /// Appends one entry and waits until it is on disk.
    pub fn append(&mut self, e: &Entry) -> Result<()> {
        let mut line = serde_json::to_vec(e)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("cannot append to {}", self.path.display()))
    }

    /// Appends a record that is not a money decision (a fill report): written, not waited for.
    pub fn note(&mut self, e: &Entry) -> Result<()> {
        let mut line = serde_json::to_vec(e)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .with_context(|| format!("cannot append to {}", self.path.display()))
    }

    /// The journal's length once everything appended is on disk.
    pub fn synced_len(&self) -> Result<u64> {
        self.file
            .sync_data()
            .and_then(|_| self.file.metadata())
            .map(|m| m.len())
            .with_context(|| format!("cannot sync {}", self.path.display()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry, oldest first. A torn last line (a kill mid-write, never followed by a send)
    /// is skipped; damage anywhere else is an error naming the file and line (`jsonl`).
    pub fn read(path: &Path) -> Result<Vec<Entry>> {
        Ok(crate::jsonl::read_records(path, "journal")?
            .map(crate::jsonl::Records::into_values)
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        let mut j = Journal::open(&p).unwrap();
        let at = Utc::now();
        j.append(&Entry::NotPlaced { id: "a".into(), at }).unwrap();
        j.append(&Entry::Rejected {
            id: "b".into(),
            error: "no".into(),
            at,
        })
        .unwrap();
        drop(j);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(br#"{"t":"accepted","id":"c","ord"#).unwrap();
        let e = Journal::read(&p).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].id(), "b");
        // Damage in the middle is not silently skipped.
        std::fs::write(&p, "{\"t\":\"nope\"}\n{\"t\":\"not_placed\",\"id\":\"x\",\"at\":\"2024-01-01T00:00:00Z\"}\n").unwrap();
        let e = Journal::read(&p).unwrap_err().to_string();
        assert!(e.contains("journal.jsonl:1: damaged journal line"), "{e}");
    }
}
