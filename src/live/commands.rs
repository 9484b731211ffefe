//! Commands to a running daemon travel through its run directory: `commands/<time>-<n>.json`,
//! written atomically by the TUI or `quantdeck paper <command> RUN`, read and removed by the
//! daemon in name order. A directory works across SSH sessions, terminals and machines that share
//! the disk, and a command sent while the daemon is down waits for its next start.

use super::view::Command;
use crate::paths::write_atomic;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const DIR: &str = "commands";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub command: Command,
    pub at: DateTime<Utc>,
    /// `tui`, `cli`, …
    pub from: String,
}

/// Queues a command for the daemon of the paper run in `run_dir`; returns the file written.
pub fn send(run_dir: &Path, command: Command, from: &str) -> Result<PathBuf> {
    let dir = run_dir.join(DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let now = Utc::now();
    // Nanoseconds and the pid keep names unique and ordered.
    let name = format!(
        "{}-{:010}-{}.json",
        now.format("%Y%m%dT%H%M%S"),
        now.timestamp_subsec_nanos(),
        std::process::id()
    );
    let path = dir.join(name);
    let env = Envelope {
        command,
        at: now,
        from: from.to_string(),
    };
    write_atomic(&path, &serde_json::to_vec(&env)?)?;
    Ok(path)
}

/// Takes the queued commands, oldest first, removing their files. A file that is not a command
/// is moved aside (`*.bad`) and reported, never retried forever.
pub fn take(run_dir: &Path) -> (Vec<Envelope>, Vec<String>) {
    let dir = run_dir.join(DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return (Vec::new(), Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    for p in files {
        match std::fs::read_to_string(&p)
            .ok()
            .and_then(|t| serde_json::from_str::<Envelope>(&t).ok())
        {
            Some(env) => {
                let _ = std::fs::remove_file(&p);
                out.push(env);
            }
            None => {
                let _ = std::fs::rename(&p, p.with_extension("bad"));
                bad.push(format!("{} is not a command (moved aside)", p.display()));
            }
        }
    }
    (out, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_arrive_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        send(dir.path(), Command::Pause, "cli").unwrap();
        send(dir.path(), Command::Flatten, "tui").unwrap();
        std::fs::write(dir.path().join(DIR).join("zz.json"), "garbage").unwrap();
        let (got, bad) = take(dir.path());
        assert_eq!(
            got.iter().map(|e| e.command).collect::<Vec<_>>(),
            [Command::Pause, Command::Flatten]
        );
        assert_eq!(bad.len(), 1);
        assert!(take(dir.path()).0.is_empty());
    }
}
