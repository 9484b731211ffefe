//! The portfolio observation layout, versioned and stored in every portfolio model.
//!
//! An observation is `window` steps (oldest first) of `step_dim` values, then a tail:
//!
//! ```text
//! [ step(T−window) | … | step(T−1) | tail ]        obs_dim = window · step_dim + tail_dim
//! step  = [ sym_0 features | … | sym_{N−1} features | market features ]
//!         step_dim = N · |SYMBOL_FEATURES| + |MARKET_FEATURES|
//! tail  = [ weight of sym_0 | … | weight of sym_{N−1} | cash | pnl | drawdown ]
//!         tail_dim = N + 3
//! ```
//!
//! A sequence encoder (GRU) reads the first `window · step_dim` values as `window` steps of
//! `step_dim` features; the tail is the account at the decision.

use crate::config::Config;
use crate::market::Timeframe;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// The current layout.
pub const PORTFOLIO_VERSION: &str = "qd-portfolio-v1";

/// Per symbol per step, every one scale-free (see [`super::compute`]).
pub const SYMBOL_FEATURES: [&str; 6] = [
    "ret_z",
    "momentum_z",
    "low_vol_z",
    "quality_z",
    "size_z",
    "available",
];

/// Per step, over the symbols with scores.
pub const MARKET_FEATURES: [&str; 3] = ["market.ret_z", "market.breadth", "market.vol"];

/// After the per-symbol weights, the account block of the tail.
pub const ACCOUNT_TAIL: [&str; 3] = ["account.cash", "account.pnl", "account.drawdown"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortfolioSpec {
    pub version: String,
    /// The universe in column order (CASH is implicit and last in the tail).
    pub symbols: Vec<String>,
    pub timeframe: Timeframe,
    /// Steps in the observation sequence.
    pub window: usize,
    /// Bars behind each factor score.
    pub lookback: usize,
    pub symbol_features: Vec<String>,
    pub market_features: Vec<String>,
    /// Tail names: `weight.<symbol>` per symbol, then [`ACCOUNT_TAIL`].
    pub tail: Vec<String>,
}

impl PortfolioSpec {
    /// The current layout for a universe.
    pub fn new(symbols: &[String], timeframe: Timeframe, window: usize, lookback: usize) -> Self {
        let names = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut tail: Vec<String> = symbols.iter().map(|s| format!("weight.{s}")).collect();
        tail.extend(names(&ACCOUNT_TAIL));
        PortfolioSpec {
            version: PORTFOLIO_VERSION.to_string(),
            symbols: symbols.to_vec(),
            timeframe,
            window,
            lookback,
            symbol_features: names(&SYMBOL_FEATURES),
            market_features: names(&MARKET_FEATURES),
            tail,
        }
    }

    /// The layout of the configured universe (the one `data.source` trades).
    pub fn from_config(cfg: &Config) -> Result<Self> {
        let pf = &cfg.portfolio;
        let universe = pf.universe(cfg.data.source)?;
        let Some(first) = universe.first() else {
            bail!("portfolio: the universe is empty");
        };
        let names: Vec<String> = universe.iter().map(|s| s.name.clone()).collect();
        Ok(Self::new(
            &names,
            pf.timeframe,
            pf.window,
            pf.lookback_bars(first.class),
        ))
    }

    pub fn n_symbols(&self) -> usize {
        self.symbols.len()
    }

    /// Steps in the sequence part.
    pub fn seq_len(&self) -> usize {
        self.window
    }

    pub fn step_dim(&self) -> usize {
        self.symbols.len() * self.symbol_features.len() + self.market_features.len()
    }

    pub fn tail_dim(&self) -> usize {
        self.tail.len()
    }

    pub fn obs_dim(&self) -> usize {
        self.seq_len() * self.step_dim() + self.tail_dim()
    }

    /// The first bar a decision can execute at: the observation's oldest step, `T − window`, is
    /// the first bar with a full factor lookback.
    pub fn first_exec_bar(&self) -> usize {
        self.lookback + self.window
    }

    /// One line: `qd-portfolio-v1: 12 symbols, 32 steps × 75 + 15 tail = 2415 (1Day, lookback 20)`.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} symbols, {} steps × {} + {} tail = {} ({}, lookback {})",
            self.version,
            self.symbols.len(),
            self.seq_len(),
            self.step_dim(),
            self.tail_dim(),
            self.obs_dim(),
            self.timeframe,
            self.lookback
        )
    }

    /// Refuses a model trained on another layout, naming both.
    pub fn ensure_same(&self, model: &PortfolioSpec) -> Result<()> {
        if self == model {
            return Ok(());
        }
        let mut diff = Vec::new();
        if self.version != model.version {
            diff.push(format!("version {} vs {}", model.version, self.version));
        }
        if self.symbols != model.symbols {
            diff.push(format!(
                "universe [{}] vs [{}]",
                model.symbols.join(","),
                self.symbols.join(",")
            ));
        }
        if self.timeframe != model.timeframe {
            diff.push(format!(
                "timeframe {} vs {}",
                model.timeframe, self.timeframe
            ));
        }
        if self.window != model.window {
            diff.push(format!("window {} vs {}", model.window, self.window));
        }
        if self.lookback != model.lookback {
            diff.push(format!("lookback {} vs {}", model.lookback, self.lookback));
        }
        if self.symbol_features != model.symbol_features
            || self.market_features != model.market_features
            || self.tail != model.tail
        {
            diff.push("feature names differ".to_string());
        }
        bail!(
            "model portfolio layout does not match the data's:\n  model: {}\n  data:  {}\n  ({})",
            model.describe(),
            self.describe(),
            diff.join("; ")
        )
    }
}
