//! The event vocabulary shared by every job, the TUI and the headless progress output. Every
//! field that a reader acts on is typed (kinds, statuses, levels, gate classes, decisions), so
//! nothing is parsed back out of a string.

use crate::market::Timeframe;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

pub use crate::engine::ppo::{CheckpointReason, EarlyStopInfo, RestartReason, UpdateMetrics};
pub use crate::eval::{
    Decision, DecisionReport, FoldResult, GateClass, GateFlag, GateResult, ValidationMetrics,
};
pub use crate::live::view::{Command, FillView, OrderView, PaperSnapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    Fetch,
    Train,
    Gate,
    WalkForward,
    Paper,
    /// Many training runs as one job (`quantdeck sweep`).
    Sweep,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Fetch => "fetch",
            JobKind::Train => "train",
            JobKind::Gate => "gate",
            JobKind::WalkForward => "walk-forward",
            JobKind::Paper => "paper",
            JobKind::Sweep => "sweep",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Completed,
    Cancelled,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// One line of `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub run_id: String,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// First event of every run.
    Started {
        kind: JobKind,
        label: String,
    },
    /// Generic progress: `done` of `total` units (bars, updates, folds, symbols).
    Progress {
        done: u64,
        total: u64,
        message: String,
    },
    /// A symbol's data was fetched or refreshed.
    SymbolFetched {
        symbol: String,
        timeframe: Timeframe,
        bars: usize,
        first: Option<DateTime<Utc>>,
        last: Option<DateTime<Utc>>,
        source: String,
    },
    Update(UpdateMetrics),
    Validation(ValidationMetrics),
    Checkpoint {
        path: String,
        update: usize,
        reason: CheckpointReason,
    },
    /// A training run continues from `from_update` (a resume, or a drawdown retry): the updates,
    /// validations and checkpoints after it that came earlier in this file are superseded; the
    /// ones that follow this event replace them.
    Restart {
        from_update: usize,
        reason: RestartReason,
    },
    /// The drawdown early stop ended a training run.
    EarlyStop(EarlyStopInfo),
    Gate(GateResult),
    /// First event of a walk-forward run: the rules it trades by, the baselines' settings, the
    /// model's gate verdict.
    WalkSetup(Box<crate::eval::walkforward::WalkSetup>),
    Fold(FoldResult),
    Decision(DecisionReport),
    /// The paper session as it stands (after each bar, and every few seconds).
    Paper(Box<PaperSnapshot>),
    /// A paper model decided a bar (every bar it decides, trading or not).
    Decided(Box<crate::live::view::DecidedBar>),
    /// One execution at the broker (from the trade-updates stream).
    Fill(FillView),
    /// An order of the session changed (filled, cancelled, rejected …).
    Order(OrderView),
    /// The daemon applied a command.
    CommandDone {
        command: Command,
        from: String,
        message: String,
    },
    Log {
        level: LogLevel,
        message: String,
    },
    /// Last event of every run.
    Finished {
        status: JobStatus,
        message: String,
    },
}

/// A job's outcome as recorded in its manifest: what `runs`, `resolve_model` and the TUI read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum JobSummary {
    /// Not finished, or nothing to report.
    #[default]
    None,
    Fetch {
        stored: Vec<String>,
        failed: Vec<String>,
    },
    Train {
        symbol: String,
        updates: usize,
        timesteps: u64,
        sps: f64,
        elapsed_s: f64,
        best_update: Option<usize>,
        last_validation: Option<ValidationMetrics>,
        cancelled: bool,
    },
    Gate {
        train_run: String,
        result: GateResult,
        /// The training run stopped before its end (killed or cancelled).
        interrupted: bool,
    },
    WalkForward {
        train_run: String,
        report: DecisionReport,
    },
    Paper {
        /// The training runs traded, one model per symbol.
        train_runs: Vec<String>,
        broker: crate::broker::BrokerKind,
        /// Identifies the session across restarts (same models, same broker account).
        session_key: String,
        initial_equity: f64,
        equity: f64,
        orders: usize,
        fills: usize,
    },
}

impl JobSummary {
    /// Reads a summary leniently: manifests written by older versions carried free-form JSON,
    /// which reads as `None` rather than hiding the whole run.
    pub fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<JobSummary, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(serde_json::from_value(v).unwrap_or_default())
    }
}
