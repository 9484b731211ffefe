//! Sweeps: many training runs as one job. A grid (symbols × seeds × settings × modes) expands into
//! tasks; each task runs train → gate → walk-forward (as configured) in a process of its own, on
//! this machine (`local`: N workers under a detached supervisor) or as one Slurm job array
//! (`slurm`). The sweep is a run directory (`dir`); the tasks' logs and heartbeats there are the
//! truth about them (`state`), and the scheduler is asked only to tell queued from lost.

pub mod dir;
pub mod grid;
pub mod local;
pub mod record;
pub mod report;
pub mod slurm;
pub mod state;
mod submit;
pub mod task;

pub use dir::SweepDir;
pub use record::{SweepPlan, TaskSpec};
pub use state::TaskState;
pub use submit::{cancel, resume, start, ResumeOutcome, StartRequest, Started};

use crate::config::BackendKind;
use crate::jobs::rundir::{hostname, HEARTBEAT_EVERY};
use crate::jobs::JobStatus;
use anyhow::Result;
use chrono::Utc;
use record::{Beat, Launch, SchedulerNote, SlurmState};
use serde::Serialize;
use state::{History, SchedView, TaskFacts};

/// One task as `sweep status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    pub spec: TaskSpec,
    pub state: TaskState,
    pub history: History,
    pub beat: Option<Beat>,
    /// `<array job>_<task>` for a Slurm task.
    pub slurm_job: Option<String>,
}

/// The sweep and every task's state.
#[derive(Debug, Clone, Serialize)]
pub struct SweepView {
    pub id: String,
    pub plan: SweepPlan,
    pub status: JobStatus,
    pub summary: String,
    /// Whether the scheduler answered (Slurm), so queued and lost are told apart.
    pub asked_scheduler: bool,
    pub tasks: Vec<TaskView>,
}

/// Every task's state; with `ask`, a Slurm sweep's unfinished tasks are looked up in `squeue`
/// (and Slurm's end states kept in `scheduler.json`).
pub fn view(dir: &SweepDir, ask: bool) -> Result<SweepView> {
    let plan = dir.read_plan()?;
    let specs = dir.read_tasks()?;
    let queue = if ask && plan.backend == BackendKind::Slurm {
        let jobs: Vec<String> = slurm_jobs(&plan);
        slurm::query(&jobs)
    } else {
        None
    };
    let now = Utc::now();
    let here = hostname();
    let mut tasks = Vec::new();
    for spec in specs {
        let records = dir.records(spec.index);
        let beat = dir.beat(spec.index);
        let submission = plan.submission_of(spec.index);
        let job = submission.and_then(|s| match &s.via {
            Launch::Slurm { job_id } => Some(job_id.clone()),
            Launch::Local { .. } => None,
        });
        let sched = sched_view(dir, spec.index, job.as_deref(), queue.as_ref(), submission);
        let facts = TaskFacts {
            records: &records,
            beat: beat.as_ref(),
            beat_alive: beat
                .as_ref()
                .filter(|b| b.host == here)
                .map(|b| dir::pid_alive(b.pid)),
            backend: plan.backend,
            submitted: submission.map(|s| s.at),
            sched,
            cancelled: plan.cancelled,
            now,
        };
        let state = state::fold(&facts);
        tasks.push(TaskView {
            slurm_job: job.map(|j| format!("{j}_{}", spec.index)),
            history: state::history(&records),
            spec,
            state,
            beat,
        });
    }
    let states: Vec<TaskState> = tasks.iter().map(|t| t.state.clone()).collect();
    Ok(SweepView {
        id: dir.id.clone(),
        status: state::sweep_status(&states, plan.cancelled.is_some()),
        summary: state::tally(&states),
        asked_scheduler: queue.is_some(),
        plan,
        tasks,
    })
}

/// The tasks and their states, without asking the scheduler.
pub(crate) fn states(dir: &SweepDir, ask: bool) -> Result<Vec<(TaskSpec, TaskState)>> {
    Ok(view(dir, ask)?
        .tasks
        .into_iter()
        .map(|t| (t.spec, t.state))
        .collect())
}

/// The Slurm array jobs of a sweep, oldest first.
pub fn slurm_jobs(plan: &SweepPlan) -> Vec<String> {
    plan.submissions
        .iter()
        .filter_map(|s| match &s.via {
            Launch::Slurm { job_id } => Some(job_id.clone()),
            Launch::Local { .. } => None,
        })
        .collect()
}

/// What Slurm says of the task's newest job: from `squeue` now, else an end state noted earlier.
/// A failure state seen now is noted, so it outlives Slurm's memory of the job.
fn sched_view(
    dir: &SweepDir,
    index: usize,
    job: Option<&str>,
    queue: Option<&slurm::Queue>,
    submission: Option<&record::Submission>,
) -> SchedView {
    let Some(job) = job else {
        return SchedView::NotAsked;
    };
    let key = format!("{job}_{index}");
    let noted = dir
        .note(index)
        .filter(|n| n.job == key && submission.is_none_or(|s| n.at >= s.at));
    let Some(queue) = queue else {
        return noted.map_or(SchedView::NotAsked, |n| SchedView::Seen(n.state));
    };
    match queue.get(&(job.to_string(), index)) {
        Some((st, reason)) => {
            let terminal = st.is_failure() || *st == SlurmState::Completed;
            if terminal && noted.as_ref().is_none_or(|n| n.state != *st) {
                let note = SchedulerNote {
                    at: Utc::now(),
                    job: key,
                    state: *st,
                    reason: reason.clone(),
                };
                if let Err(e) = dir.write_note(index, &note) {
                    tracing::warn!("cannot note Slurm's state of task {index}: {e:#}");
                }
            }
            SchedView::Seen(*st)
        }
        None => noted.map_or(SchedView::Absent, |n| SchedView::Seen(n.state)),
    }
}

/// The supervisor takes the sweep's manifest: its host, pid and heartbeat, status running.
pub(crate) fn own_manifest(dir: &SweepDir) -> Result<()> {
    let _l = dir.lock()?;
    let run = dir.run_dir();
    let mut m = run.read_manifest()?;
    m.host = hostname();
    m.pid = std::process::id();
    m.heartbeat = Some(Utc::now());
    m.status = JobStatus::Running;
    m.finished = None;
    run.write_manifest(&m)
}

/// Folds the tasks into the manifest's message, and — for a Slurm sweep, which has no process of
/// its own — its status. Called by each task at its end and by status, cancel and resume.
pub fn refresh_manifest(dir: &SweepDir) {
    let res = (|| -> Result<()> {
        let v = view(dir, false)?;
        let _l = dir.lock()?;
        let run = dir.run_dir();
        let mut m = run.read_manifest()?;
        m.message = v.summary.clone();
        m.config = manifest_summary(&v.plan, v.tasks.len());
        if v.plan.backend == BackendKind::Slurm {
            m.status = v.status;
            m.heartbeat = None;
            m.finished = (v.status != JobStatus::Running).then(Utc::now);
        }
        run.write_manifest(&m)
    })();
    if let Err(e) = res {
        tracing::warn!("sweep {}: manifest not refreshed: {e:#}", dir.id);
    }
}

/// The supervisor's end: the sweep's final status from its tasks. Returns 0 when all completed.
pub(crate) fn finish_manifest(dir: &SweepDir, cancelled: bool) -> Result<i32> {
    let v = view(dir, false)?;
    let _l = dir.lock()?;
    let run = dir.run_dir();
    let mut m = run.read_manifest()?;
    m.status = match state::sweep_status(
        &v.tasks.iter().map(|t| t.state.clone()).collect::<Vec<_>>(),
        cancelled,
    ) {
        // Tasks still waiting when the supervisor stops: interrupted, resumable.
        JobStatus::Running if cancelled => JobStatus::Cancelled,
        JobStatus::Running => JobStatus::Failed,
        s => s,
    };
    m.finished = Some(Utc::now());
    m.heartbeat = Some(Utc::now());
    m.message = v.summary.clone();
    m.config = manifest_summary(&v.plan, v.tasks.len());
    run.write_manifest(&m)?;
    println!("sweep {}: {} — {}", dir.id, m.status.as_str(), v.summary);
    Ok(if m.status == JobStatus::Completed {
        0
    } else {
        1
    })
}

/// What the sweep's `manifest.json` records as its configuration: the grid, stages, backend and
/// its Slurm jobs (the full per-mode configurations stay in `sweep.json`).
pub fn manifest_summary(plan: &SweepPlan, tasks: usize) -> serde_json::Value {
    serde_json::json!({
        "grid": plan.grid,
        "tasks": tasks,
        "stages": plan.stages,
        "backend": plan.backend,
        "workers": plan.workers,
        "slurm": plan.slurm,
        "slurm_jobs": slurm_jobs(plan),
        "submissions": plan.submissions,
    })
}

/// Rewrites the sweep manifest's heartbeat every few seconds (the local supervisor's sign of life).
pub(crate) struct ManifestBeat {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ManifestBeat {
    pub(crate) fn start(dir: SweepDir) -> ManifestBeat {
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sweep-beat".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    rx.recv_timeout(HEARTBEAT_EVERY)
                {
                    let res = dir.lock().and_then(|_l| {
                        let run = dir.run_dir();
                        let mut m = run.read_manifest()?;
                        m.heartbeat = Some(Utc::now());
                        run.write_manifest(&m)
                    });
                    if let Err(e) = res {
                        tracing::warn!("sweep {}: heartbeat not written: {e:#}", dir.id);
                    }
                }
            })
            .ok();
        ManifestBeat { stop, thread }
    }

    pub(crate) fn stop(mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
