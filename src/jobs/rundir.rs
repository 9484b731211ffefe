//! Run directories: `runs/<id>/manifest.json`, `events.jsonl` and artifacts.

use super::{JobKind, JobStatus};
use crate::paths::{write_atomic, Paths};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    /// Process that runs the job, to tell a live run from one whose process died.
    pub pid: u32,
    /// The run this one evaluates (a gate or walk-forward points at its training run).
    pub parent: Option<String>,
    pub config: serde_json::Value,
    pub data: Vec<DataRef>,
    /// Artifact file names inside the run directory.
    pub artifacts: Vec<String>,
    /// Job-specific outcome (final metrics, gate class, decision).
    pub summary: serde_json::Value,
    pub message: String,
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
            pid: std::process::id(),
            parent,
            config,
            data: Vec::new(),
            artifacts: Vec::new(),
            summary: serde_json::Value::Null,
            message: String::new(),
        };
        let dir = RunDir { id, path };
        dir.write_manifest(&manifest)?;
        Ok((dir, manifest))
    }

    pub fn open(paths: &Paths, id: &str) -> Result<RunDir> {
        let path = paths.runs.join(id);
        if !path.join("manifest.json").is_file() {
            let known: Vec<String> = list_runs(paths)
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

    /// Marks the run finished with its status, outcome and artifact list.
    pub fn finish(&self, m: &mut Manifest, status: JobStatus, message: &str) -> Result<()> {
        m.status = status;
        m.finished = Some(Utc::now());
        m.message = message.to_string();
        self.write_manifest(m)
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

/// All runs under `runs/`, oldest first. Unreadable manifests are skipped (and logged).
pub fn list_runs(paths: &Paths) -> Vec<RunSummary> {
    let Ok(entries) = std::fs::read_dir(&paths.runs) else {
        return Vec::new();
    };
    let mut runs: Vec<RunSummary> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let path = e.path();
            match read_manifest(&path.join("manifest.json")) {
                Ok(manifest) => {
                    let stale =
                        manifest.status == JobStatus::Running && !process_alive(manifest.pid);
                    Some(RunSummary {
                        manifest,
                        path,
                        stale,
                    })
                }
                Err(err) => {
                    tracing::warn!("skipping run {}: {err:#}", path.display());
                    None
                }
            }
        })
        .collect();
    runs.sort_by(|a, b| {
        a.manifest
            .created
            .cmp(&b.manifest.created)
            .then(a.manifest.id.cmp(&b.manifest.id))
    });
    runs
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}
