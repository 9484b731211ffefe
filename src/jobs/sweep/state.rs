//! A task's state, folded from what is on disk: its own log, its heartbeat, when it was last
//! submitted, and — for Slurm, only to tell queued from lost — what `squeue` says. Pure: the
//! callers read the files and ask the scheduler; this decides.

use super::record::{
    Beat, SlurmState, StageOutcome, StopCause, TaskEntry, TaskOutcome, TaskRecord,
};
use crate::config::{BackendKind, Stage};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A task's state as `sweep status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TaskState {
    /// Not started yet (waiting for a local worker).
    Pending,
    /// Handed to Slurm, not started yet.
    Queued,
    Running {
        stage: Option<Stage>,
        attempt: u32,
        host: String,
    },
    Completed,
    /// A stage failed: the task exited with `exit_code`.
    Failed {
        stage: Stage,
        exit_code: i32,
        message: String,
    },
    /// Stopped by `sweep cancel` (or before it ever started, by a cancelled sweep).
    Cancelled,
    /// Stopped by a signal from elsewhere (its supervisor died, a hand-typed scancel, a
    /// shutdown); its training state was saved: `sweep resume` continues it.
    Stopped,
    /// Stopped at its time limit; `sweep resume` continues its training from its last state.
    TimedOut,
    /// Ended by the scheduler: OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, … (Slurm's word).
    Scheduler {
        slurm: SlurmState,
    },
    /// Started or submitted, but no process beats for it, it recorded no end, and the scheduler
    /// does not know it (or was not asked).
    Lost,
}

impl TaskState {
    pub fn label(&self) -> String {
        match self {
            TaskState::Pending => "pending".into(),
            TaskState::Queued => "queued".into(),
            TaskState::Running { stage, .. } => match stage {
                Some(s) => format!("running ({})", s.as_str()),
                None => "running".into(),
            },
            TaskState::Completed => "completed".into(),
            TaskState::Failed {
                stage, exit_code, ..
            } => format!("failed ({}, exit {exit_code})", stage.as_str()),
            TaskState::Cancelled => "cancelled".into(),
            TaskState::Stopped => "stopped".into(),
            TaskState::TimedOut => "timeout".into(),
            TaskState::Scheduler { slurm } => format!("{} (Slurm)", slurm.as_str()),
            TaskState::Lost => "lost".into(),
        }
    }

    /// A process runs it or the scheduler holds it: nothing to (re)start.
    pub fn is_live(&self) -> bool {
        matches!(self, TaskState::Running { .. } | TaskState::Queued)
    }

    /// Done for good or ended: not live, not waiting.
    pub fn is_terminal(&self) -> bool {
        !self.is_live() && *self != TaskState::Pending
    }

    /// What `sweep resume` (and a supervisor) starts again: everything that did not complete and
    /// is not live. A completed task never runs twice.
    pub fn needs_run(&self) -> bool {
        !self.is_live() && *self != TaskState::Completed
    }
}

/// What the scheduler says about the task's newest job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedView {
    /// Not asked (local backend, or `squeue` unavailable).
    NotAsked,
    /// Asked; it does not know the job (ended longer ago than it remembers, or never existed).
    Absent,
    Seen(SlurmState),
}

/// Everything the fold reads, gathered by the caller.
#[derive(Debug, Clone)]
pub struct TaskFacts<'a> {
    pub records: &'a [TaskRecord],
    pub beat: Option<&'a Beat>,
    /// Whether the beat's process lives, when the caller could tell (same host).
    pub beat_alive: Option<bool>,
    pub backend: BackendKind,
    /// When the task was last handed to the backend.
    pub submitted: Option<DateTime<Utc>>,
    pub sched: SchedView,
    /// When the sweep was cancelled (and not resumed since).
    pub cancelled: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// A task's history read from its log: attempts, the runs of its stages, what completed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub attempts: u32,
    pub last_attempt: Option<DateTime<Utc>>,
    /// The newest run of each stage.
    pub runs: BTreeMap<Stage, String>,
    /// Stages completed on the current training run.
    pub done: Vec<Stage>,
    /// The stage the newest attempt is in (or was in when it ended).
    pub stage: Option<Stage>,
    pub host: String,
    /// How the newest attempt ended (None: it did not record an end).
    pub outcome: Option<TaskOutcome>,
    /// Some attempt completed the task.
    pub completed: bool,
}

/// Folds a task's log.
pub fn history(records: &[TaskRecord]) -> History {
    let mut h = History::default();
    for r in records {
        match &r.entry {
            TaskEntry::Attempt { attempt, host, .. } => {
                h.attempts = h.attempts.max(*attempt);
                h.last_attempt = Some(r.at);
                h.host = host.clone();
                h.outcome = None;
                h.stage = None;
            }
            TaskEntry::StageStarted { stage, run } => {
                // A new training run starts a new lineage: its gate and walk-forward are to do.
                if *stage == Stage::Train && h.runs.get(&Stage::Train) != Some(run) {
                    h.done.clear();
                }
                h.runs.insert(*stage, run.clone());
                h.stage = Some(*stage);
            }
            TaskEntry::StageDone {
                stage,
                run,
                outcome,
            } => {
                if *outcome == StageOutcome::Completed
                    && h.runs.get(stage) == Some(run)
                    && !h.done.contains(stage)
                {
                    h.done.push(*stage);
                }
            }
            TaskEntry::Finished { outcome } => {
                h.completed |= *outcome == TaskOutcome::Completed;
                h.outcome = Some(outcome.clone());
            }
        }
    }
    h
}

/// A beat older than this belongs to a process that stopped (as for run directories).
pub fn beat_is_fresh(beat: &Beat, now: DateTime<Utc>) -> bool {
    now.signed_duration_since(beat.at) <= super::super::rundir::STALE_AFTER
}

/// The task's state. A task that ever completed is completed, whatever else is on disk.
pub fn fold(f: &TaskFacts) -> TaskState {
    let h = history(f.records);
    if h.completed {
        return TaskState::Completed;
    }
    let waiting = match (f.submitted, h.last_attempt) {
        (Some(s), Some(a)) => s > a,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (None, None) => true,
    };
    if waiting {
        return waiting_state(f);
    }
    if let Some(outcome) = &h.outcome {
        return match outcome {
            TaskOutcome::Completed => TaskState::Completed,
            TaskOutcome::Failed {
                stage,
                exit_code,
                message,
            } => TaskState::Failed {
                stage: *stage,
                exit_code: *exit_code,
                message: message.clone(),
            },
            TaskOutcome::Stopped {
                signal: StopCause::TimeLimit,
            } => TaskState::TimedOut,
            TaskOutcome::Stopped {
                signal: StopCause::Terminated,
            } => match f.sched {
                SchedView::Seen(SlurmState::Timeout) => TaskState::TimedOut,
                SchedView::Seen(s) if s.is_failure() && s != SlurmState::Cancelled => {
                    TaskState::Scheduler { slurm: s }
                }
                _ if f.cancelled.is_some() => TaskState::Cancelled,
                _ => TaskState::Stopped,
            },
        };
    }
    // Started, no end recorded: a live process, or the scheduler's word, or lost.
    let beating = f.beat.is_some_and(|b| {
        b.attempt == h.attempts && beat_is_fresh(b, f.now) && f.beat_alive != Some(false)
    });
    let just_started = h.last_attempt.is_some_and(|a| {
        f.now.signed_duration_since(a) <= super::super::rundir::STALE_AFTER
            && f.beat.is_none_or(|b| b.attempt < h.attempts)
            && f.beat_alive != Some(false)
    });
    let running = TaskState::Running {
        stage: h.stage,
        attempt: h.attempts,
        host: h.host.clone(),
    };
    if beating || just_started {
        return running;
    }
    match f.sched {
        SchedView::Seen(s) if s.is_active() => running,
        SchedView::Seen(SlurmState::Timeout) => TaskState::TimedOut,
        SchedView::Seen(s) if s.is_failure() => TaskState::Scheduler { slurm: s },
        _ => TaskState::Lost,
    }
}

/// Submitted (or never started) and not started since.
fn waiting_state(f: &TaskFacts) -> TaskState {
    if f.cancelled
        .is_some_and(|c| f.submitted.is_none_or(|s| c >= s))
    {
        return TaskState::Cancelled;
    }
    match (f.backend, f.sched) {
        (BackendKind::Local, _) => TaskState::Pending,
        (BackendKind::Slurm, SchedView::NotAsked) => TaskState::Queued,
        (BackendKind::Slurm, SchedView::Seen(s)) if s.is_queued() || s.is_active() => {
            TaskState::Queued
        }
        (BackendKind::Slurm, SchedView::Seen(SlurmState::Timeout)) => TaskState::TimedOut,
        (BackendKind::Slurm, SchedView::Seen(SlurmState::Cancelled)) => TaskState::Cancelled,
        (BackendKind::Slurm, SchedView::Seen(s)) if s.is_failure() => {
            TaskState::Scheduler { slurm: s }
        }
        (BackendKind::Slurm, _) if f.submitted.is_none() => TaskState::Pending,
        (BackendKind::Slurm, _) => TaskState::Lost,
    }
}

/// Counts of each state, for one line (`4 tasks: 2 completed, 1 running, 1 failed`).
pub fn tally(states: &[TaskState]) -> String {
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for s in states {
        let key = match s {
            TaskState::Pending => "pending",
            TaskState::Queued => "queued",
            TaskState::Running { .. } => "running",
            TaskState::Completed => "completed",
            TaskState::Failed { .. } => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::Stopped => "stopped",
            TaskState::TimedOut => "timed out",
            TaskState::Scheduler { .. } => "ended by Slurm",
            TaskState::Lost => "lost",
        };
        *counts.entry(key).or_default() += 1;
    }
    let order = [
        "completed",
        "running",
        "queued",
        "pending",
        "failed",
        "timed out",
        "ended by Slurm",
        "cancelled",
        "stopped",
        "lost",
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|k| counts.get(k).map(|n| format!("{n} {k}")))
        .collect();
    format!("{} tasks: {}", states.len(), parts.join(", "))
}

/// The sweep's status from its tasks': running while any is live or waiting, else completed when
/// all completed, cancelled when it was cancelled, else failed.
pub fn sweep_status(states: &[TaskState], cancelled: bool) -> crate::jobs::JobStatus {
    use crate::jobs::JobStatus;
    if states
        .iter()
        .any(|s| s.is_live() || *s == TaskState::Pending && !cancelled)
    {
        JobStatus::Running
    } else if states.iter().all(|s| *s == TaskState::Completed) {
        JobStatus::Completed
    } else if cancelled {
        JobStatus::Cancelled
    } else {
        JobStatus::Failed
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
