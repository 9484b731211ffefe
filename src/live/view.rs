//! What the daemon reports for the Paper pane (and `--json`): one snapshot of the whole session
//! after every processed bar and every few seconds, plus each fill and order change as it happens.
//! Display values are plain floats; the exact decimals stay in the journal and at the broker.

use crate::broker::BrokerKind;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountView {
    pub cash: f64,
    pub equity: f64,
    pub buying_power: f64,
    /// Equity change since the trading day started.
    pub day_pnl: f64,
    /// Equity when the session started.
    pub initial: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PositionView {
    pub qty: f64,
    pub avg_price: f64,
    pub price: f64,
    pub unrealized_pnl: f64,
}

/// One model (one symbol) of the portfolio.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SymbolRow {
    pub symbol: String,
    /// The training run the model comes from.
    pub run: String,
    pub timeframe: String,
    pub last_bar: Option<DateTime<Utc>>,
    pub action: Option<String>,
    pub confidence: f32,
    /// The gates' word: `ok`, `resized: …`, `blocked: …`, or a risk rule.
    pub gate: String,
    pub level: f64,
    pub position: PositionView,
    /// The model's P&L since the session started (its own fills, marked to market).
    pub pnl: f64,
    /// Its live return per day, beside what walk-forward expected per day (mean fold return /
    /// fold days), when a walk-forward of the model exists.
    pub live_daily: Option<f64>,
    pub expected_daily: Option<f64>,
    /// The broker's quantity of the symbol beside the model's own book (they differ by what
    /// someone else holds; a change of that is a mismatch that stops the symbol).
    #[serde(default)]
    pub broker_qty: Option<f64>,
    /// Units ordered and not filled yet (signed): counted as held by sizing and exposure.
    #[serde(default)]
    pub in_flight: f64,
    /// Room left below the per-position cap, as a share of equity (negative: past it).
    #[serde(default)]
    pub cap_room: Option<f64>,
    /// The prices at which the stop-loss and the take-profit close the position.
    #[serde(default)]
    pub stop_loss: Option<f64>,
    #[serde(default)]
    pub take_profit: Option<f64>,
    /// Why the symbol stopped trading (the broker's quantity no longer matches the book).
    #[serde(default)]
    pub stopped: Option<String>,
}

/// An order that did not go through, or whose fate is not known yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemOrder {
    pub client_order_id: String,
    pub symbol: String,
    pub side: String,
    pub qty: f64,
    /// `rejected`, `unknown` (a timeout or a 5xx: being looked up), or how an unknown one
    /// ended (`found`, `sent again`, `never placed`, `rejected`).
    pub state: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// One decided bar of a model, as the session's events record it: what a replay is held
/// against (walk-forward's fold of the same bars trades the same).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecidedBar {
    /// The model's symbol (a portfolio session: `portfolio`).
    pub symbol: String,
    /// Start of the decided bar.
    pub bar: DateTime<Utc>,
    /// The session's equity at the bar's close, before this decision's orders.
    pub equity: f64,
    /// The policy's choice (an action or a regime name) and its probability.
    pub chosen: String,
    pub confidence: f32,
    /// What was acted on (HOLD below the confidence threshold).
    pub acted: String,
    /// The gates' word.
    pub note: String,
    /// The positions ordered (signed units per symbol — per member for a portfolio), when the
    /// decision traded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<(String, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum Link {
    /// Not used by this session (e.g. no trade stream on the simulated broker).
    Unused,
    Connecting,
    Up,
    Down(String),
    /// The stream is unavailable and REST polling stands in.
    Polling(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub trade_stream: Link,
    pub data_stream: Link,
    /// The newest bar that arrived (any symbol), and when.
    pub last_bar: Option<DateTime<Utc>>,
    pub last_bar_seen: Option<DateTime<Utc>>,
    pub market_open: Option<bool>,
    pub next_open: Option<DateTime<Utc>>,
    pub rest_errors: u64,
    pub reconnects: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Modes {
    pub paused: bool,
    /// The flatten-all latch: when it was asked and its result, if done.
    pub flatten: Option<String>,
    /// The sticky drawdown halt.
    pub halted: bool,
    /// The liveness watchdog's reason to halt entries (market open, no bars).
    pub stale_feed: Option<String>,
    pub daily_loss_hit: bool,
    /// Symbols stopped because the broker's quantity no longer matches the book: `SYM: why`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stopped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    pub client_order_id: String,
    pub symbol: String,
    pub side: String,
    pub qty: f64,
    pub filled_qty: f64,
    pub fill_price: Option<f64>,
    pub order_type: String,
    pub status: String,
    /// Not made by this session: never traded by a model.
    pub external: bool,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FillView {
    pub at: DateTime<Utc>,
    pub client_order_id: String,
    pub symbol: String,
    pub side: String,
    pub qty: f64,
    pub price: f64,
    pub execution_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalPosition {
    pub symbol: String,
    pub qty: f64,
}

/// The whole session at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaperSnapshot {
    pub at: DateTime<Utc>,
    pub broker: BrokerKind,
    pub session: String,
    pub account: AccountView,
    pub rows: Vec<SymbolRow>,
    pub open_orders: Vec<OrderView>,
    pub external_positions: Vec<ExternalPosition>,
    pub health: Health,
    pub modes: Modes,
    /// Rejected orders and orders of unknown outcome, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problem_orders: Vec<ProblemOrder>,
    /// A portfolio session's model: the regime and target against actual weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portfolio: Option<PortfolioView>,
}

/// One member of a portfolio model's universe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WeightRow {
    pub symbol: String,
    /// Share of equity the last decision aimed for, before the gates: the regime's weight of
    /// what the tradable members can take (a masked member, or HOLD: what it held).
    pub target: f64,
    /// Share of equity the session holds now (its own fills at the last price).
    pub actual: f64,
    pub qty: f64,
    pub price: f64,
    /// The gates' word at the last decision.
    pub gate: String,
    /// The broker's quantity beside the session's own.
    #[serde(default)]
    pub broker_qty: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortfolioView {
    pub run: String,
    pub timeframe: String,
    pub last_bar: Option<DateTime<Utc>>,
    /// The regime acted on at the last decision (HOLD below the confidence threshold), the
    /// policy's own choice, and its probability.
    pub regime: Option<String>,
    pub chosen: Option<String>,
    pub confidence: f32,
    pub rows: Vec<WeightRow>,
    /// Cash's share of equity now.
    pub cash: f64,
    /// The session's return per day since its first decision, beside what walk-forward expected
    /// per day (its folds chained, graded under the session's rules), when such a walk-forward
    /// of the model exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_daily: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_daily: Option<f64>,
}

/// A command to the daemon, from the TUI or `quantdeck paper <command> RUN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// Stop new entries (exits still run).
    Pause,
    Resume,
    /// Latch flatten-all: cancel every order and close every position, then stay flat.
    Flatten,
    /// Clear the flatten latch and the drawdown halt.
    Clear,
    /// Stop the daemon (positions stay as they are).
    Stop,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Flatten => "flatten",
            Command::Clear => "clear",
            Command::Stop => "stop",
        }
    }
}
