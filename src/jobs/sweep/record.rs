//! What a sweep persists, typed: the plan (`sweep.json`), each task's definition (a line of
//! `tasks.jsonl`), each task's own history (`tasks/<i>/log.jsonl`, written only by the process
//! running that task), its heartbeat (`tasks/<i>/beat.json`) and what the scheduler said about it
//! (`tasks/<i>/scheduler.json`). One writer per file is what makes this safe on a shared disk.

use crate::config::{BackendKind, SlurmConfig, Stage};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of the files below; a sweep written by a later format is refused, not misread.
pub const FORMAT: u32 = 1;

/// One task: a symbol, a seed, a mode and a set of overrides, run through the stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub index: usize,
    pub symbol: String,
    pub seed: u64,
    /// The training mode whose configuration the task starts from (a key of `SweepPlan::configs`).
    pub mode: String,
    /// Dotted settings and their values for this task, in key order.
    pub overrides: Vec<(String, toml::Value)>,
    /// Tasks that differ only in their seed share a group (graded on the median and the worst).
    pub group: usize,
}

impl TaskSpec {
    /// `ppo.actor_lr=0.0001 env.reward="seed"` (empty when the task sets nothing).
    pub fn overrides_line(&self) -> String {
        self.overrides
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The grid a sweep was expanded from, as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub symbols: Vec<String>,
    pub seeds: Vec<u64>,
    pub modes: Vec<String>,
    pub set: Vec<(String, Vec<toml::Value>)>,
}

/// The sweep as submitted: its grid, stages, backend and the configuration of each mode (resolved
/// on the submitting host, so that a task reads exactly what was planned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPlan {
    pub format: u32,
    pub id: String,
    pub created: DateTime<Utc>,
    pub grid: Grid,
    pub stages: Vec<Stage>,
    pub backend: BackendKind,
    /// Local backend: worker processes.
    pub workers: usize,
    pub slurm: SlurmConfig,
    /// Mode name → the full configuration (JSON) tasks of that mode start from.
    pub configs: BTreeMap<String, serde_json::Value>,
    /// The binary tasks run (`sweep-task`).
    pub binary: String,
    /// Every submission of tasks: the first, then one per `sweep resume`.
    #[serde(default)]
    pub submissions: Vec<Submission>,
    /// Set by `sweep cancel`, cleared by `sweep resume`.
    #[serde(default)]
    pub cancelled: Option<DateTime<Utc>>,
}

impl SweepPlan {
    /// The newest submission that included `task`.
    pub fn submission_of(&self, task: usize) -> Option<&Submission> {
        self.submissions
            .iter()
            .rev()
            .find(|s| s.tasks.contains(&task))
    }
}

/// A batch of tasks handed to the backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub at: DateTime<Utc>,
    pub tasks: Vec<usize>,
    pub via: Launch,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum Launch {
    /// A supervisor process on `host` started the tasks as its children.
    Local { host: String, pid: u32 },
    /// One Slurm job array; array index = task index.
    Slurm { job_id: String },
}

/// One line of a task's `log.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub entry: TaskEntry,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskEntry {
    /// A process took the task.
    Attempt {
        attempt: u32,
        host: String,
        pid: u32,
        /// `SLURM_JOB_ID` when Slurm started it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slurm_job: Option<String>,
    },
    /// A stage began, in run directory `run`.
    StageStarted { stage: Stage, run: String },
    /// A stage ended (its run's outcome).
    StageDone {
        stage: Stage,
        run: String,
        outcome: StageOutcome,
    },
    /// The attempt ended.
    Finished { outcome: TaskOutcome },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageOutcome {
    Completed,
    Cancelled,
    Failed,
}

/// How an attempt ended, as the task itself knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskOutcome {
    Completed,
    /// A stage failed; the process exits with `exit_code`.
    Failed {
        stage: Stage,
        exit_code: i32,
        message: String,
    },
    /// Stopped by a signal (cancel, or the scheduler ending it); training saved its state.
    Stopped {
        signal: StopCause,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopCause {
    /// SIGINT / SIGTERM / SIGHUP: `sweep cancel`, scancel, or a supervisor that died.
    Terminated,
    /// Slurm's warning before the time limit (`--signal=B:USR1@N`).
    TimeLimit,
}

/// A running task's sign of life, rewritten every few seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Beat {
    pub at: DateTime<Utc>,
    pub host: String,
    pub pid: u32,
    pub attempt: u32,
    pub stage: Option<Stage>,
}

/// Slurm's own states, as `squeue` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SlurmState {
    Pending,
    Configuring,
    Running,
    Completing,
    Suspended,
    Requeued,
    Resizing,
    Completed,
    Failed,
    Timeout,
    OutOfMemory,
    NodeFail,
    Cancelled,
    Preempted,
    BootFail,
    Deadline,
    /// A state this version does not know.
    Other,
}

impl SlurmState {
    pub fn parse(s: &str) -> SlurmState {
        match s.trim() {
            "PENDING" | "PD" => SlurmState::Pending,
            "CONFIGURING" | "CF" => SlurmState::Configuring,
            "RUNNING" | "R" => SlurmState::Running,
            "COMPLETING" | "CG" => SlurmState::Completing,
            "SUSPENDED" | "S" => SlurmState::Suspended,
            "REQUEUED" | "RQ" | "REQUEUE_HOLD" | "REQUEUE_FED" => SlurmState::Requeued,
            "RESIZING" | "RS" => SlurmState::Resizing,
            "COMPLETED" | "CD" => SlurmState::Completed,
            "FAILED" | "F" => SlurmState::Failed,
            "TIMEOUT" | "TO" => SlurmState::Timeout,
            "OUT_OF_MEMORY" | "OOM" => SlurmState::OutOfMemory,
            "NODE_FAIL" | "NF" => SlurmState::NodeFail,
            "CANCELLED" | "CA" => SlurmState::Cancelled,
            "PREEMPTED" | "PR" => SlurmState::Preempted,
            "BOOT_FAIL" | "BF" => SlurmState::BootFail,
            "DEADLINE" | "DL" => SlurmState::Deadline,
            _ => SlurmState::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SlurmState::Pending => "PENDING",
            SlurmState::Configuring => "CONFIGURING",
            SlurmState::Running => "RUNNING",
            SlurmState::Completing => "COMPLETING",
            SlurmState::Suspended => "SUSPENDED",
            SlurmState::Requeued => "REQUEUED",
            SlurmState::Resizing => "RESIZING",
            SlurmState::Completed => "COMPLETED",
            SlurmState::Failed => "FAILED",
            SlurmState::Timeout => "TIMEOUT",
            SlurmState::OutOfMemory => "OUT_OF_MEMORY",
            SlurmState::NodeFail => "NODE_FAIL",
            SlurmState::Cancelled => "CANCELLED",
            SlurmState::Preempted => "PREEMPTED",
            SlurmState::BootFail => "BOOT_FAIL",
            SlurmState::Deadline => "DEADLINE",
            SlurmState::Other => "OTHER",
        }
    }

    /// Waiting to start (or to start again).
    pub fn is_queued(self) -> bool {
        matches!(
            self,
            SlurmState::Pending | SlurmState::Configuring | SlurmState::Requeued
        )
    }

    /// Has a process on a node now.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            SlurmState::Running
                | SlurmState::Completing
                | SlurmState::Suspended
                | SlurmState::Resizing
        )
    }

    /// Ended by the scheduler or the node rather than by the task's own exit.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            SlurmState::Failed
                | SlurmState::Timeout
                | SlurmState::OutOfMemory
                | SlurmState::NodeFail
                | SlurmState::Cancelled
                | SlurmState::Preempted
                | SlurmState::BootFail
                | SlurmState::Deadline
        )
    }
}

/// What `squeue` said about a task's job, kept so that it outlives Slurm's memory of the job
/// (`MinJobAge`, 5 minutes by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulerNote {
    pub at: DateTime<Utc>,
    /// `<array job>_<task>`.
    pub job: String,
    pub state: SlurmState,
    pub reason: String,
}
