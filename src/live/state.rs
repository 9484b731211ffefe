//! The daemon's own state, kept in `state.json` of the paper run (written atomically after every
//! change): the latches a restart must honour (flatten, pause, the sticky drawdown halt), the
//! portfolio's peak and day-start equity, and each model's position level and last decision.
//! Positions and cash are *not* kept here: they are rebuilt from the broker's orders on every
//! start and reconnect (the broker is the source of truth).

use crate::broker::BrokerKind;
use crate::paths::write_atomic;
use crate::sim::Latches;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const STATE_FILE: &str = "state.json";

/// Flatten-all: latched until the user clears it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flatten {
    pub requested: DateTime<Utc>,
    /// Who asked: `tui`, `cli`, …
    pub by: String,
    /// When the broker confirmed every cancel and close, and what it said per row.
    pub done: Option<DateTime<Utc>>,
    pub ok: bool,
    pub rows: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelState {
    /// The training run the model comes from.
    pub run: String,
    /// Position level in [-1, 1] the model last asked for.
    pub level: f64,
    /// Start of the last model bar decided on.
    pub last_bar: Option<DateTime<Utc>>,
    /// No new entry in this symbol before this bar time (after a trade).
    pub cooldown_until: Option<DateTime<Utc>>,
    /// The model's book's peak equity (its drawdown feature survives restarts).
    pub peak: f64,
    /// The per-model drawdown halt of the backtest's rules is off here: drawdown is judged on
    /// the whole portfolio. Stop-loss/take-profit state needs nothing persisted.
    pub last_action: Option<String>,
    pub confidence: f32,
    /// The gates' last word on this symbol (`ok`, `resized: …`, `blocked: …`).
    pub gate: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonState {
    /// The id tag of this session's orders.
    pub session: String,
    pub broker: BrokerKind,
    /// When the session started: the broker's orders since then are reconciled.
    pub started: DateTime<Utc>,
    /// Portfolio equity when the session started: each model's book starts with it.
    pub initial_equity: f64,
    /// The peak, the trading day and its start, the sticky drawdown halt and the daily loss
    /// latch: the rules' state (`sim::decide`), kept as flat fields of this file.
    #[serde(flatten)]
    pub latches: Latches,
    /// Entries paused by the user (exits still run).
    pub paused: bool,
    pub flatten: Option<Flatten>,
    pub models: BTreeMap<String, ModelState>,
    /// Client ids of the broker's closing orders from flatten-all: they count as the models'.
    #[serde(default)]
    pub adopted: Vec<String>,
    /// The first bar time the session decided (its expectation per day is over bar time).
    #[serde(default)]
    pub first_bar: Option<DateTime<Utc>>,
    /// Replay only: the last bar time the replay covers (fixed when the session starts; a
    /// restart continues after each model's `last_bar`).
    pub replay_until: Option<DateTime<Utc>>,
    /// What the broker holds of each symbol beyond the session's own orders, as first seen (a
    /// traded symbol whose part changes later is stopped: a split, a trade outside quantdeck).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub external_baseline: BTreeMap<String, f64>,
    /// Symbols stopped because the broker's quantity no longer matches the book, and why;
    /// cleared (and the baseline taken again) by `clear`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stopped: BTreeMap<String, String>,
    /// A portfolio session's model: its last decision (absent in single-symbol sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portfolio: Option<PortfolioState>,
    /// Bytes of `journal.jsonl` when this file was saved (the journal synced first): a journal
    /// found shorter later lost entries — emptied, cut or deleted.
    #[serde(default)]
    pub journal_bytes: u64,
    /// This start found the journal shorter than `journal_bytes` (not persisted): the broker's
    /// orders are taken as they are, their fills not reported again.
    #[serde(skip)]
    pub journal_lost: bool,
}

/// A portfolio model's durable state: the bar time last decided (a restart never decides it
/// again), what it chose, and the per-member gate notes and cooldowns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortfolioState {
    pub run: String,
    pub last_bar: Option<DateTime<Utc>>,
    /// The regime the policy chose at the last decision, its probability, and the regime acted
    /// on (HOLD below the confidence threshold).
    pub chosen: Option<String>,
    pub confidence: f32,
    pub regime: Option<String>,
    /// Target weight per member at the last decision (HOLD: the weights it held then).
    pub targets: BTreeMap<String, f64>,
    /// The gates' last word per member.
    pub gates: BTreeMap<String, String>,
    pub cooldown_until: BTreeMap<String, DateTime<Utc>>,
}

impl DaemonState {
    pub fn new(session: &str, broker: BrokerKind, equity: f64, started: DateTime<Utc>) -> Self {
        DaemonState {
            session: session.to_string(),
            broker,
            started,
            initial_equity: equity,
            latches: Latches::new(equity),
            paused: false,
            flatten: None,
            models: BTreeMap::new(),
            adopted: Vec::new(),
            first_bar: None,
            replay_until: None,
            external_baseline: BTreeMap::new(),
            stopped: BTreeMap::new(),
            portfolio: None,
            journal_bytes: 0,
            journal_lost: false,
        }
    }

    /// What the journal at `path` lost since this state was saved, if it is shorter now.
    pub fn journal_loss(&self, path: &Path) -> Option<String> {
        let now = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        (now < self.journal_bytes).then(|| {
            format!(
                "the order journal {} holds {now} bytes but this session had journaled {} — it was emptied, cut or deleted while the session was stopped",
                path.display(),
                self.journal_bytes
            )
        })
    }

    pub fn load(dir: &Path) -> Result<Option<DaemonState>> {
        let p = dir.join(STATE_FILE);
        match std::fs::read_to_string(&p) {
            Ok(text) => serde_json::from_str(&text).map(Some).with_context(|| {
                format!(
                    "{} is damaged: the session's latches and decisions cannot be trusted; restore it or start a new session (--new-session)",
                    p.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join(STATE_FILE), &serde_json::to_vec_pretty(self)?)
    }

    /// Whether new entries are blocked, and why (exits always run).
    pub fn entries_blocked(&self) -> Option<&'static str> {
        if self.flatten.is_some() {
            Some("flatten latched")
        } else if self.latches.halted {
            Some("drawdown halt")
        } else if self.paused {
            Some("paused")
        } else {
            None
        }
    }
}
