//! Run directories: `runs/<id>/manifest.json`, `events.jsonl` and artifacts. A running job's
//! manifest carries a heartbeat (host, pid, last beat), so any reader — on this machine or on
//! another one sharing the disk — can tell a live run from one whose process died.

use super::{JobKind, JobStatus, JobSummary};
use crate::paths::{write_atomic, Paths};
use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How often a running job rewrites its heartbeat.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// A running manifest whose heartbeat is older than this belongs to a dead (or frozen) process.
pub const STALE_AFTER: Duration = Duration::seconds(60);
/// How often a paper daemon's main loop rewrites its heartbeat.
pub const PAPER_BEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// A paper session whose heartbeat is older than this is DOWN — on the Paper pane, in
/// `paper status` and for `quantdeck watch` alike (a trading daemon's death must show at once,
/// from any host).
pub const PAPER_DOWN_AFTER: Duration = Duration::seconds(5);

/// Hash and range of one data file a run consumed, so a result can be traced to its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRef {
    pub symbol: String,
    pub timeframe: String,
    pub source: String,
    pub bars: usize,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    pub kind: JobKind,
    pub label: String,
    pub status: JobStatus,
    pub created: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    pub quantdeck_version: String,
    /// Machine and process that run the job.
    #[serde(default)]
    pub host: String,
    pub pid: u32,
    /// Last sign of life of the running job (every few seconds while it runs).
    #[serde(default)]
    pub heartbeat: Option<DateTime<Utc>>,
    /// The run this one evaluates (a gate or walk-forward points at its training run).
    pub parent: Option<String>,
    pub config: serde_json::Value,
    pub data: Vec<DataRef>,
    /// Artifact file names inside the run directory.
    pub artifacts: Vec<String>,
    /// Job-specific outcome (final metrics, gate class, decision).
    #[serde(default, deserialize_with = "JobSummary::lenient")]
    pub summary: JobSummary,
    pub message: String,
    /// A training run that is one seed of a group (`train --seeds N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<SeedGroup>,
}

/// One configuration trained with several seeds: graded together, on the median and the worst.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedGroup {
    /// Shared by every run of the group.
    pub id: String,
    /// This run's place in the group (0-based) and the group's size.
    pub index: usize,
    pub size: usize,
    pub seed: u64,
}

impl Manifest {
    /// Whether a manifest that says `running` belongs to a process that is gone: on this host,
    /// the pid is dead or the heartbeat stopped (a reused pid keeps a dead run from looking
    /// alive); on another host, the heartbeat stopped.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        if self.status != JobStatus::Running {
            return false;
        }
        // A sweep handed to a scheduler has no process of its own: its tasks' heartbeats tell
        // (`sweep status`).
        if self.kind == JobKind::Sweep && self.heartbeat.is_none() {
            return false;
        }
        let after = if self.kind == JobKind::Paper {
            PAPER_DOWN_AFTER
        } else {
            STALE_AFTER
        };
        let beat_stopped = self
            .heartbeat
            .is_none_or(|b| now.signed_duration_since(b) > after);
        if self.host.is_empty() || self.host == hostname() {
            !process_alive(self.pid) || (self.heartbeat.is_some() && beat_stopped)
        } else {
            beat_stopped
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunDir {
    pub id: String,
    pub path: PathBuf,
}

impl RunDir {
    /// Creates `runs/<kind>-<timestamp>-<label>/` with a manifest in the `running` state.
    pub fn create(
        paths: &Paths,
        kind: JobKind,
        label: &str,
        config: serde_json::Value,
        parent: Option<String>,
    ) -> Result<(RunDir, Manifest)> {
        std::fs::create_dir_all(&paths.runs)
            .with_context(|| format!("cannot create {}", paths.runs.display()))?;
        let now = Utc::now();
        let safe: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let base = format!("{}-{}-{}", kind.as_str(), now.format("%Y%m%d-%H%M%S"), safe);
        // Two runs started in the same second get -2, -3, …; create_dir is the atomic claim.
        let mut n = 1;
        let (id, path) = loop {
            let id = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let path = paths.runs.join(&id);
            match std::fs::create_dir(&path) {
                Ok(()) => break (id, path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()))
                }
            }
        };
        let manifest = Manifest {
            id: id.clone(),
            kind,
            label: label.to_string(),
            status: JobStatus::Running,
            created: now,
            finished: None,
            quantdeck_version: env!("CARGO_PKG_VERSION").to_string(),
            host: hostname(),
            pid: std::process::id(),
            heartbeat: Some(now),
            parent,
            config,
            data: Vec::new(),
            artifacts: Vec::new(),
            summary: JobSummary::None,
            message: String::new(),
            group: None,
        };
        let dir = RunDir { id, path };
        dir.write_manifest(&manifest)?;
        Ok((dir, manifest))
    }

    pub fn open(paths: &Paths, id: &str) -> Result<RunDir> {
        let path = paths.runs.join(id);
        if !id.is_empty()
            && !id.contains('/')
            && path.is_dir()
            && !path.join("manifest.json").exists()
        {
            anyhow::bail!(
                "run {id} is damaged: {} is missing",
                path.join("manifest.json").display()
            );
        }
        if id.is_empty() || id.contains('/') || !path.join("manifest.json").is_file() {
            let known: Vec<String> = super::list_runs(paths)
                .into_iter()
                .rev()
                .take(5)
                .map(|r| r.manifest.id)
                .collect();
            anyhow::bail!(
                "no run {id:?} under {} (recent runs: {})",
                paths.runs.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
        Ok(RunDir {
            id: id.to_string(),
            path,
        })
    }

    /// Holds the run for this process: the OS's lock on `<run>/.run.lock`, which the kernel
    /// drops when the process ends (a kill -9 too). Two processes that both found a run
    /// interrupted cannot both resume it; a resume cannot start under a training still writing.
    pub fn lock(&self) -> Result<crate::data::store::SeriesLock> {
        let path = self.path.join(".run.lock");
        crate::data::store::SeriesLock::try_acquire(&path)?.ok_or_else(|| {
            anyhow::anyhow!(
                "run {} is in use by another quantdeck process (it holds {}): wait for it to end",
                self.id,
                path.display()
            )
        })
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.path.join("manifest.json")
    }

    pub fn events_path(&self) -> PathBuf {
        self.path.join("events.jsonl")
    }

    pub fn artifact(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn read_manifest(&self) -> Result<Manifest> {
        read_manifest(&self.manifest_path())
    }

    pub fn write_manifest(&self, m: &Manifest) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(m)?;
        write_atomic(&self.manifest_path(), &bytes)
    }
}

/// The manifest of a run this process is executing. Every change goes through [`ActiveRun::update`],
/// which writes the file under one lock, so the job and its heartbeat never overwrite each other.
pub struct ActiveRun {
    pub dir: RunDir,
    manifest: Mutex<Manifest>,
    /// Set once the job's own loop beats ([`ActiveRun::loop_beat`]): the background heartbeat
    /// then stays quiet, so a loop that wedges stops the beats.
    loop_beats: std::sync::atomic::AtomicBool,
    last_loop_beat: Mutex<Option<std::time::Instant>>,
}

impl ActiveRun {
    pub fn new(dir: RunDir, manifest: Manifest) -> Self {
        ActiveRun {
            dir,
            manifest: Mutex::new(manifest),
            loop_beats: Default::default(),
            last_loop_beat: Mutex::new(None),
        }
    }

    /// A beat from the job's main loop, written at most every `every`.
    pub fn loop_beat(&self, every: std::time::Duration) -> Result<()> {
        self.loop_beats
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut last = self
            .last_loop_beat
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < every) {
            return Ok(());
        }
        *last = Some(std::time::Instant::now());
        self.beat()
    }

    /// Whether the job's loop beats for itself.
    pub fn loop_beats(&self) -> bool {
        self.loop_beats.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn id(&self) -> &str {
        &self.dir.id
    }

    /// Changes the manifest and writes it atomically.
    pub fn update(&self, f: impl FnOnce(&mut Manifest)) -> Result<()> {
        let mut m = self.manifest.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut m);
        self.dir.write_manifest(&m)
    }

    /// A copy of the manifest as it is now.
    pub fn manifest(&self) -> Manifest {
        self.manifest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn beat(&self) -> Result<()> {
        self.update(|m| m.heartbeat = Some(Utc::now()))
    }

    /// Marks the run finished with its status and outcome.
    pub fn finish(&self, status: JobStatus, message: &str) -> Result<()> {
        self.update(|m| {
            m.status = status;
            m.finished = Some(Utc::now());
            m.heartbeat = Some(Utc::now());
            m.message = message.to_string();
        })
    }
}

pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid run manifest", path.display()))
}

/// A run as listed by `quantdeck runs` and the TUI.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub manifest: Manifest,
    pub path: PathBuf,
    /// The manifest says running but its process is gone (killed, machine rebooted).
    pub stale: bool,
}

impl RunSummary {
    pub fn state(&self) -> &'static str {
        if self.stale {
            "interrupted"
        } else {
            self.manifest.status.as_str()
        }
    }
}

/// This machine's name (as the kernel reports it).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname NUL-terminates or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn process_alive(pid: u32) -> bool {
    crate::paths::pid_alive(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(host: &str, pid: u32, beat: Option<DateTime<Utc>>) -> Manifest {
        Manifest {
            id: "r".into(),
            kind: JobKind::Train,
            label: String::new(),
            status: JobStatus::Running,
            created: Utc::now(),
            finished: None,
            quantdeck_version: String::new(),
            host: host.into(),
            pid,
            heartbeat: beat,
            parent: None,
            config: serde_json::Value::Null,
            data: Vec::new(),
            artifacts: Vec::new(),
            summary: JobSummary::None,
            message: String::new(),
            group: None,
        }
    }

    #[test]
    fn staleness_follows_pid_and_heartbeat() {
        let now = Utc::now();
        let me = std::process::id();
        let here = hostname();
        assert!(!running(&here, me, Some(now)).is_stale(now));
        // Our pid is alive, but the beat stopped: a reused pid must not keep a dead run alive.
        assert!(running(&here, me, Some(now - Duration::minutes(5))).is_stale(now));
        // A dead pid on this host is stale at once.
        assert!(running(&here, u32::MAX - 1, Some(now)).is_stale(now));
        // Another host: only the heartbeat can tell.
        assert!(!running("elsewhere-gpu-box", 1, Some(now - Duration::seconds(10))).is_stale(now));
        assert!(running("elsewhere-gpu-box", 1, Some(now - Duration::minutes(5))).is_stale(now));
        let mut done = running("elsewhere", 1, None);
        done.status = JobStatus::Completed;
        assert!(!done.is_stale(now));
    }

    #[test]
    fn old_free_form_summaries_still_load() {
        let mut v = serde_json::to_value(running("h", 1, None)).unwrap();
        v["summary"] = serde_json::json!({"symbol": "SYNA", "updates": 3});
        let m: Manifest = serde_json::from_value(v).unwrap();
        assert_eq!(m.summary, JobSummary::None);
    }
}
