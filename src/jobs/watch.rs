//! `quantdeck watch`: a dead daemon cannot report its own death, so a separate process (a loop,
//! or a cron-able one-shot) looks at every paper session's heartbeat and alerts when one that
//! says it is running stopped beating — its process gone on this host, or its heartbeat older
//! than [`PAPER_DOWN_AFTER`] — and again when it comes back. What was last said per session
//! is kept in `watch.json`, so a one-shot run from cron alerts once per change, not every time.

#[cfg(doc)]
use super::rundir::PAPER_DOWN_AFTER;
use super::{list_runs, JobKind, JobStatus};
use crate::notify::{Notice, Notifier};
use crate::paths::{write_atomic, Paths};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const WATCH_FILE: &str = "watch.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Alive,
    Down,
    /// Not running (stopped, finished or failed): the daemon said so itself.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watched {
    pub session: String,
    pub health: Health,
    /// Seconds since the last heartbeat.
    pub heartbeat_age_s: Option<i64>,
    pub detail: String,
}

/// Every paper session's health at `now`: DOWN exactly when the run list calls it stale (its
/// process gone on this host, or its heartbeat older than the one paper threshold).
pub fn check(paths: &Paths, now: DateTime<Utc>) -> Vec<Watched> {
    list_runs(paths)
        .into_iter()
        .filter(|r| r.manifest.kind == JobKind::Paper)
        .map(|r| {
            let m = &r.manifest;
            let age = m.heartbeat.map(|b| (now - b).num_seconds().max(0));
            let (health, detail) = if m.status != JobStatus::Running {
                (
                    Health::Stopped,
                    format!("{}: {}", m.status.as_str(), m.message),
                )
            } else if r.manifest.is_stale(now) {
                let why = match age {
                    Some(a) => format!("no heartbeat for {a} s"),
                    None => "no heartbeat at all".to_string(),
                };
                (
                    Health::Down,
                    format!("DAEMON DOWN: {why} (pid {} on {})", m.pid, m.host),
                )
            } else {
                (
                    Health::Alive,
                    format!("running (pid {} on {})", m.pid, m.host),
                )
            };
            Watched {
                session: m.id.clone(),
                health,
                heartbeat_age_s: age,
                detail,
            }
        })
        .collect()
}

/// Compares with what was last said (`watch.json`), sends a notice per change to or from
/// DOWN, and records the new states. Returns the notices sent.
pub fn alert_changes(
    paths: &Paths,
    seen: &[Watched],
    notifier: Option<&Notifier>,
    now: DateTime<Utc>,
) -> Vec<Notice> {
    let file = paths.home.join(WATCH_FILE);
    let mut last: BTreeMap<String, Health> = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut out = Vec::new();
    for w in seen {
        let before = last.insert(w.session.clone(), w.health);
        let notice = match (before, w.health) {
            (b, Health::Down) if b != Some(Health::Down) => Some(("daemon_down", true)),
            (Some(Health::Down), Health::Alive) => Some(("daemon_up", false)),
            _ => None,
        };
        if let Some((kind, urgent)) = notice {
            let n = Notice {
                session: w.session.clone(),
                kind: kind.into(),
                urgent,
                text: w.detail.clone(),
                at: now,
            };
            if let Some(q) = notifier {
                q.send(n.clone());
            }
            out.push(n);
        }
    }
    if let Ok(bytes) = serde_json::to_vec_pretty(&last) {
        if let Err(e) = write_atomic(&file, &bytes) {
            tracing::warn!("cannot record {}: {e:#}", file.display());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::RunDir;
    use chrono::Duration;

    /// A daemon whose process still exists but whose heartbeat stopped (frozen, or on another
    /// machine) is DOWN once the beat is older than `PAPER_DOWN_AFTER`, not before.
    #[test]
    fn a_stale_heartbeat_is_down_though_the_process_lives() {
        let home = tempfile::tempdir().expect("tmp");
        let paths = Paths::under(home.path());
        paths.ensure().expect("dirs");
        let (dir, mut m) = RunDir::create(&paths, JobKind::Paper, "SYNA", Default::default(), None)
            .expect("run dir");
        // This test's own process: alive, so only the heartbeat can tell.
        let now = Utc::now();
        let limit = crate::jobs::rundir::PAPER_DOWN_AFTER.num_seconds();
        for (age, want) in [(limit, Health::Alive), (limit + 1, Health::Down)] {
            m.heartbeat = Some(now - Duration::seconds(age));
            dir.write_manifest(&m).expect("manifest");
            let seen = check(&paths, now);
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].health, want, "{:?}", seen[0]);
            assert_eq!(seen[0].heartbeat_age_s, Some(age));
        }
        let seen = check(&paths, now);
        assert!(
            seen[0]
                .detail
                .contains(&format!("no heartbeat for {} s", limit + 1)),
            "{}",
            seen[0].detail
        );
    }
}
