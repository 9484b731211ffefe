//! Claiming a paper session: the run directory of the same models on the same broker account
//! (continued after a crash, a kill -9, a reboot) or a new one. The claim is atomic — a lock
//! keyed by the session is taken before anything is looked at, so two daemons started at the
//! same instant cannot both create a session — and it fails loudly: a damaged `session.json`
//! or manifest is named, never silently replaced by a new session that would abandon the old
//! book. Lock files keep a second daemon out of a session and out of an Alpaca account (Alpaca
//! allows one trade-updates connection per account).

use super::rundir::{hostname, read_manifest, Manifest};
use super::{resolve_train_run, JobKind, JobStatus, RunDir};
use crate::broker::alpaca::TradingSettings;
use crate::broker::BrokerKind;
use crate::config::{BrokerChoice, Config};
use crate::data::alpaca::load_credentials;
use crate::paths::{write_atomic, Paths};
use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::path::{Path, PathBuf};

pub(super) const SESSION_FILE: &str = "session.json";
pub(super) const LOCK_FILE: &str = "daemon.lock";

/// What makes two starts the same session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SessionInfo {
    pub key: String,
    pub train_runs: Vec<String>,
    pub broker: BrokerKind,
    /// `sim`, or a hash of the Alpaca key id (as the account lock's name): never the key id.
    pub account: String,
}

/// A paper session's run directory, claimed by this process.
pub(super) struct Claimed {
    pub dir: RunDir,
    pub manifest: Manifest,
    pub resumed: bool,
    pub train_runs: Vec<String>,
    /// Held while the daemon runs (dropping a `File` releases its lock).
    _locks: Vec<File>,
}

pub(super) fn broker_kind(cfg: &Config) -> BrokerKind {
    match cfg.live.broker {
        BrokerChoice::Sim => BrokerKind::Sim,
        BrokerChoice::Alpaca => {
            let s = TradingSettings::from_env(cfg.live.allow_live);
            if s.base_url.contains("://api.alpaca.markets") {
                BrokerKind::AlpacaLive
            } else {
                BrokerKind::AlpacaPaper
            }
        }
    }
}

fn hex(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

/// A short hash of an Alpaca key id: what names the account in lock files and sessions.
pub(super) fn account_tag(key_id: &str) -> String {
    hex(&Sha256::digest(key_id.as_bytes()), 6)
}

/// Takes `path`'s lock or says who holds it (`what`).
pub(super) fn lock(path: &Path, what: &str) -> Result<File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(path).unwrap_or_default();
            bail!("{what} ({})", holder.trim())
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

fn stamp(f: &mut File) {
    use std::io::Write;
    let _ = f.set_len(0);
    let _ = writeln!(f, "pid {} on {}", std::process::id(), hostname());
}

fn locked(paths: &Paths, name: &str, what: &str) -> Result<File> {
    let dir = paths.home.join("locks");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut f = lock(&dir.join(name), what)?;
    stamp(&mut f);
    Ok(f)
}

/// The session key of these training runs on this broker account (`account`: `sim`, or the
/// raw key id, which only enters the hash).
fn session_key(kind: BrokerKind, account: &str, train_runs: &[String]) -> String {
    let text = format!("{kind:?}|{account}|{}", train_runs.join(","));
    hex(&Sha256::digest(text.as_bytes()), 8)
}

/// Finds this session's run directory (or makes one) and locks it.
pub(super) fn claim(
    paths: &Paths,
    cfg: &Config,
    runs: &[String],
    new_session: bool,
) -> Result<Claimed> {
    if runs.is_empty() {
        bail!("name at least one training run to trade (or `latest`)");
    }
    let mut train_runs = Vec::new();
    for r in runs {
        let id = resolve_train_run(paths, r)?;
        if !train_runs.contains(&id) {
            train_runs.push(id);
        }
    }
    train_runs.sort();
    let kind = broker_kind(cfg);
    let key_id = match kind {
        BrokerKind::Sim => None,
        _ => Some(
            load_credentials()?
                .0
                .map(|c| c.key_id)
                .ok_or_else(|| anyhow!(super::paper::NO_TRADING_KEYS))?,
        ),
    };
    let key = session_key(kind, key_id.as_deref().unwrap_or("sim"), &train_runs);
    let info = SessionInfo {
        key: key.clone(),
        train_runs: train_runs.clone(),
        broker: kind,
        account: key_id.as_deref().map_or("sim".into(), account_tag),
    };
    let mut locks = Vec::new();
    if let Some(id) = &key_id {
        locks.push(locked(
            paths,
            &format!("alpaca-{}.lock", account_tag(id)),
            "another paper daemon is already trading this Alpaca account (Alpaca allows one trade-updates connection per account); stop it first (`quantdeck paper stop RUN`)",
        )?);
    }
    // Before looking for the session: two starts at the same instant must not both create it.
    locks.push(locked(
        paths,
        &format!("paper-{key}.lock"),
        "another paper daemon is starting or running this session (same models, same broker account)",
    )?);
    let existing = if new_session {
        None
    } else {
        find_session(paths, &key, kind)?
    };
    let (dir, mut manifest, resumed) = match existing {
        Some((dir, m)) => (dir, m, true),
        None => create_session(paths, cfg, &info)?,
    };
    let mut f = lock(
        &dir.artifact(LOCK_FILE),
        &format!("paper session {} is already running", dir.id),
    )?;
    stamp(&mut f);
    locks.push(f);
    if resumed {
        manifest.status = JobStatus::Running;
        manifest.finished = None;
        manifest.host = hostname();
        manifest.pid = std::process::id();
        manifest.heartbeat = Some(Utc::now());
        manifest.message = String::new();
        manifest.config = serde_json::to_value(cfg)?;
        dir.write_manifest(&manifest)?;
    }
    Ok(Claimed {
        dir,
        manifest,
        resumed,
        train_runs,
        _locks: locks,
    })
}

fn create_session(
    paths: &Paths,
    cfg: &Config,
    info: &SessionInfo,
) -> Result<(RunDir, Manifest, bool)> {
    let symbols: Vec<String> = info
        .train_runs
        .iter()
        .filter_map(|id| RunDir::open(paths, id).ok()?.read_manifest().ok())
        .map(|m| m.label)
        .collect();
    let (dir, m) = RunDir::create(
        paths,
        JobKind::Paper,
        &symbols.join("-"),
        serde_json::to_value(cfg)?,
        info.train_runs.first().cloned(),
    )?;
    write_atomic(
        &dir.artifact(SESSION_FILE),
        &serde_json::to_vec_pretty(info)?,
    )?;
    Ok((dir, m, false))
}

/// The newest paper run directory of session `key` that is still going (a simulated replay
/// that ran to its end is over). A damaged `session.json` (whose session cannot be told) or a
/// damaged manifest of this session is an error naming the file: starting a new session
/// beside it would abandon its book.
fn find_session(paths: &Paths, key: &str, kind: BrokerKind) -> Result<Option<(RunDir, Manifest)>> {
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&paths.runs) {
        Ok(e) => e
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("paper-"))
            })
            .collect(),
        Err(_) => return Ok(None),
    };
    dirs.sort();
    for path in dirs.into_iter().rev() {
        let file = path.join(SESSION_FILE);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        let info: SessionInfo = serde_json::from_str(&text).map_err(|e| {
            anyhow!(
                "{} is damaged ({e}): it may be this very session, and starting anew would abandon its orders and positions. Restore the file, move {} aside, or start a separate session with --new-session",
                file.display(),
                path.display()
            )
        })?;
        if info.key != key {
            continue;
        }
        let manifest = read_manifest(&path.join("manifest.json")).map_err(|e| {
            anyhow!(
                "{e:#}: it belongs to this session, which is not started anew over it. Restore the manifest, move {} aside, or start a separate session with --new-session",
                path.display()
            )
        })?;
        if kind == BrokerKind::Sim && manifest.status == JobStatus::Completed {
            continue;
        }
        let id = manifest.id.clone();
        return Ok(Some((RunDir { id, path }, manifest)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_key_hides_the_key_id_and_the_account_tag_is_the_locks() {
        let runs = vec!["train-1".to_string()];
        let k = session_key(BrokerKind::AlpacaPaper, "PKSECRETID", &runs);
        assert_eq!(k.len(), 16);
        assert!(!k.contains("PKSECRETID"));
        assert_ne!(k, session_key(BrokerKind::AlpacaPaper, "PKOTHER", &runs));
        let tag = account_tag("PKSECRETID");
        assert_eq!(tag.len(), 12);
        assert!(!tag.contains("PK"));
    }
}
