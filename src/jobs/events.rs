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

/// Metrics of one PPO update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateMetrics {
    pub update: usize,
    pub updates: usize,
    pub timesteps: u64,
    pub sps: f64,
    pub mean_reward: f64,
    pub policy_loss: f64,
    pub value_loss: f64,
    pub entropy: f64,
    pub approx_kl: f64,
    pub clip_fraction: f64,
    pub explained_variance: f64,
    pub lr: f64,
    pub ent_coef: f64,
    pub elapsed_s: f64,
}

/// Metrics of one validation pass on held-out bars.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationMetrics {
    pub update: usize,
    pub profit_factor: f64,
    pub sharpe: f64,
    pub max_drawdown: f64,
    pub fitness: f64,
    pub consistency: f64,
    pub total_return: f64,
    pub hold_pct: f64,
    pub trades: usize,
}

/// Per-fold walk-forward result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FoldResult {
    pub fold: usize,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub bars: usize,
    pub total_return: f64,
    pub sharpe: f64,
    pub max_drawdown: f64,
    pub win_rate: f64,
    pub profit_factor: f64,
    pub trades: usize,
    pub buy_hold_return: f64,
    /// Equity relative to the fold's start (1.0 = flat), one point per bar.
    pub equity: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionView {
    pub symbol: String,
    pub qty: f64,
    pub avg_price: f64,
    pub market_price: f64,
    pub unrealized_pnl: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    pub client_order_id: String,
    pub symbol: String,
    pub side: String,
    pub qty: f64,
    pub status: String,
    pub fill_price: Option<f64>,
    pub at: DateTime<Utc>,
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
