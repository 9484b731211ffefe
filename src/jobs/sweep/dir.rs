//! A sweep's run directory, `runs/sweep-<time>-<label>/`:
//!
//! - `manifest.json` — a run manifest like any job's (kind `sweep`): the grid, the backend, the
//!   Slurm job ids, and the sweep's status folded from its tasks';
//! - `sweep.json` — the plan (typed: [`SweepPlan`]), rewritten atomically under `sweep.lock`;
//! - `tasks.jsonl` — one line per task (its symbol, seed, mode, overrides), written once;
//! - `tasks/<i>/log.jsonl` — the task's own history, appended only by the process running it
//!   (which holds `tasks/<i>/lock`); `beat.json` its heartbeat; `scheduler.json` Slurm's word on
//!   it; `out.log` (local) or `slurm-<job>_<i>.out` (Slurm) its output.

use super::record::{Beat, SchedulerNote, SweepPlan, TaskRecord, TaskSpec, FORMAT};
use crate::jobs::list_runs;
use crate::jobs::rundir::RunDir;
use crate::jobs::JobKind;
use crate::paths::{write_atomic, Paths};
use anyhow::{anyhow, bail, Context, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const PLAN: &str = "sweep.json";
pub const TASKS: &str = "tasks.jsonl";

#[derive(Debug, Clone)]
pub struct SweepDir {
    pub id: String,
    pub path: PathBuf,
}

/// An advisory lock (`flock`), released when dropped or when its process ends.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// The lock if it is free now.
    pub fn try_take(path: &Path) -> Result<Option<DirLock>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(DirLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => {
                Err(anyhow!(e).context(format!("cannot lock {}", path.display())))
            }
        }
    }

    /// Waits for the lock, up to `timeout`.
    pub fn take(path: &Path, timeout: Duration) -> Result<DirLock> {
        let t0 = Instant::now();
        loop {
            if let Some(l) = Self::try_take(path)? {
                return Ok(l);
            }
            if t0.elapsed() >= timeout {
                bail!(
                    "timed out after {:.0} s waiting for the lock {}: another quantdeck process holds it",
                    timeout.as_secs_f64(),
                    path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl SweepDir {
    /// A new sweep directory (and its run manifest, in the `running` state).
    pub fn create(
        paths: &Paths,
        label: &str,
        summary: serde_json::Value,
    ) -> Result<(SweepDir, crate::jobs::Manifest)> {
        let (run, manifest) = RunDir::create(paths, JobKind::Sweep, label, summary, None)?;
        let dir = SweepDir {
            id: run.id,
            path: run.path,
        };
        std::fs::create_dir_all(dir.path.join("tasks"))?;
        Ok((dir, manifest))
    }

    /// A sweep by id, unique prefix, or `latest`.
    pub fn open(paths: &Paths, which: &str) -> Result<SweepDir> {
        let sweeps: Vec<String> = list_runs(paths)
            .into_iter()
            .filter(|r| r.manifest.kind == JobKind::Sweep)
            .map(|r| r.manifest.id)
            .collect();
        let id = if which == "latest" || which.is_empty() {
            sweeps.last().cloned().ok_or_else(|| {
                anyhow!(
                    "no sweep under {}: start one with `quantdeck sweep`",
                    paths.runs.display()
                )
            })?
        } else if sweeps.iter().any(|s| s == which) {
            which.to_string()
        } else {
            let hits: Vec<&String> = sweeps.iter().filter(|s| s.starts_with(which)).collect();
            match hits.as_slice() {
                [one] => (*one).clone(),
                [] => bail!("no sweep matches {which:?} (see `quantdeck runs`)"),
                many => bail!(
                    "{which:?} matches {} sweeps; give more of the id",
                    many.len()
                ),
            }
        };
        Self::open_exact(paths, &id)
    }

    /// A sweep by its exact id (what `sweep-task` is given).
    pub fn open_exact(paths: &Paths, id: &str) -> Result<SweepDir> {
        let path = paths.runs.join(id);
        if id.is_empty() || id.contains('/') || !path.join(PLAN).is_file() {
            bail!("no sweep {id:?} under {} (no {PLAN})", paths.runs.display());
        }
        Ok(SweepDir {
            id: id.to_string(),
            path,
        })
    }

    pub fn run_dir(&self) -> RunDir {
        RunDir {
            id: self.id.clone(),
            path: self.path.clone(),
        }
    }

    pub fn read_plan(&self) -> Result<SweepPlan> {
        let p = self.path.join(PLAN);
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        let plan: SweepPlan = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a sweep plan", p.display()))?;
        if plan.format > FORMAT {
            bail!(
                "{} was written by a newer quantdeck (format {} > {FORMAT}): update this one",
                p.display(),
                plan.format
            );
        }
        Ok(plan)
    }

    pub fn write_plan(&self, plan: &SweepPlan) -> Result<()> {
        write_atomic(&self.path.join(PLAN), &serde_json::to_vec_pretty(plan)?)
    }

    /// Holds `sweep.lock` while the plan or the manifest is read, changed and written back.
    pub fn lock(&self) -> Result<DirLock> {
        DirLock::take(&self.path.join("sweep.lock"), Duration::from_secs(60))
    }

    /// `supervisor.lock`: held by the local backend's supervisor for its whole life.
    pub fn supervisor_lock_path(&self) -> PathBuf {
        self.path.join("supervisor.lock")
    }

    pub fn write_tasks(&self, tasks: &[TaskSpec]) -> Result<()> {
        let mut text = Vec::new();
        for t in tasks {
            text.extend(serde_json::to_vec(t)?);
            text.push(b'\n');
            std::fs::create_dir_all(self.task_dir(t.index))?;
        }
        write_atomic(&self.path.join(TASKS), &text)
    }

    pub fn read_tasks(&self) -> Result<Vec<TaskSpec>> {
        let p = self.path.join(TASKS);
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).with_context(|| format!("{}:{}", p.display(), i + 1))
            })
            .collect()
    }

    pub fn task_dir(&self, index: usize) -> PathBuf {
        self.path.join("tasks").join(index.to_string())
    }

    /// The task's lock, held by the process running it.
    pub fn try_task_lock(&self, index: usize) -> Result<Option<DirLock>> {
        std::fs::create_dir_all(self.task_dir(index))?;
        DirLock::try_take(&self.task_dir(index).join("lock"))
    }

    /// Appends one record to the task's log and makes it durable.
    pub fn append(&self, index: usize, rec: &TaskRecord) -> Result<()> {
        let path = self.task_dir(index).join("log.jsonl");
        let (mut f, _) = crate::jsonl::open_append(&path)?;
        crate::jsonl::append_line(&mut f, &serde_json::to_vec(rec)?)
            .and_then(|_| f.sync_data())
            .with_context(|| format!("cannot append to {}", path.display()))
    }

    /// The task's log; a torn last line (a kill mid-append) is skipped.
    pub fn records(&self, index: usize) -> Vec<TaskRecord> {
        let text =
            std::fs::read_to_string(self.task_dir(index).join("log.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn write_beat(&self, index: usize, beat: &Beat) -> Result<()> {
        write_atomic(
            &self.task_dir(index).join("beat.json"),
            &serde_json::to_vec(beat)?,
        )
    }

    pub fn beat(&self, index: usize) -> Option<Beat> {
        read_json(&self.task_dir(index).join("beat.json"))
    }

    pub fn write_note(&self, index: usize, note: &SchedulerNote) -> Result<()> {
        write_atomic(
            &self.task_dir(index).join("scheduler.json"),
            &serde_json::to_vec(note)?,
        )
    }

    pub fn note(&self, index: usize) -> Option<SchedulerNote> {
        read_json(&self.task_dir(index).join("scheduler.json"))
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether process `pid` on this machine is alive (a zombie, dead but not reaped, is not).
pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses: "123 (quantdeck) S …".
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_locks_are_exclusive_and_die_with_their_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("lock");
        let held = DirLock::try_take(&p).unwrap();
        assert!(held.is_some());
        assert!(DirLock::try_take(&p).unwrap().is_none());
        drop(held);
        assert!(DirLock::try_take(&p).unwrap().is_some());
    }

    #[test]
    fn this_process_is_alive_and_pid_zero_is_not() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX - 1));
    }
}
