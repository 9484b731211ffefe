//! The event vocabulary shared by every job, the TUI and the headless progress output.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    Fetch,
    Train,
    Gate,
    WalkForward,
    Paper,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Fetch => "fetch",
            JobKind::Train => "train",
            JobKind::Gate => "gate",
            JobKind::WalkForward => "walk-forward",
            JobKind::Paper => "paper",
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

/// One line of `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub run_id: String,
    pub event: Event,
}

pub use crate::broker::{OrderView, PositionView};
pub use crate::engine::ppo::UpdateMetrics;
pub use crate::eval::{FoldResult, ValidationMetrics};

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
        timeframe: String,
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
        reason: String,
    },
    Gate {
        class: String,
        flags: Vec<String>,
        use_checkpoint: Option<String>,
        metrics: ValidationMetrics,
    },
    Fold(FoldResult),
    Decision {
        decision: String,
        positive_folds: usize,
        folds: usize,
        sharpe_std: f64,
    },
    /// One bar of paper trading processed.
    PaperBar {
        ts: DateTime<Utc>,
        symbol: String,
        price: f64,
        action: String,
        cash: f64,
        equity: f64,
        positions: Vec<PositionView>,
    },
    Order(OrderView),
    Log {
        level: String,
        message: String,
    },
    /// Last event of every run.
    Finished {
        status: JobStatus,
        message: String,
    },
}
