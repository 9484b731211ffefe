use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Account features appended to every observation at run time (from the trading account, not
/// from bars): position level in [-1, 1], tanh(10 × P&L / initial), drawdown from peak in [0, 1].
pub const ACCOUNT_FEATURES: [&str; 3] = ["account.position", "account.pnl", "account.drawdown"];

/// The versioned observation layout. Stored in every model, so a model is only ever fed the
/// layout it was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub version: String,
    /// Per-bar feature names, in column order.
    pub names: Vec<String>,
    /// Bars per observation window.
    pub window: usize,
    /// Bars of history a feature row needs (the longest lookback).
    pub warmup: usize,
    pub account: Vec<String>,
}

impl FeatureSpec {
    /// The current default layout with the given window.
    pub fn basic(window: usize) -> Self {
        FeatureSpec {
            version: super::basic::VERSION.to_string(),
            names: super::basic::NAMES.iter().map(|s| s.to_string()).collect(),
            window,
            warmup: super::basic::WARMUP,
            account: ACCOUNT_FEATURES.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn n_features(&self) -> usize {
        self.names.len()
    }

    pub fn obs_dim(&self) -> usize {
        self.window * self.names.len() + self.account.len()
    }

    /// One line: `qd-basic-v1: 11 features × 32 bars + 3 account = 355`.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} features × {} bars + {} account = {}",
            self.version,
            self.names.len(),
            self.window,
            self.account.len(),
            self.obs_dim()
        )
    }

    /// Refuses a model trained on another layout, naming both.
    pub fn ensure_same(&self, model: &FeatureSpec) -> Result<()> {
        if self != model {
            let mut diff = Vec::new();
            if self.version != model.version {
                diff.push(format!("version {} vs {}", model.version, self.version));
            }
            if self.window != model.window {
                diff.push(format!("window {} vs {}", model.window, self.window));
            }
            if self.names != model.names {
                diff.push(format!(
                    "feature names [{}] vs [{}]",
                    model.names.join(","),
                    self.names.join(",")
                ));
            }
            if self.account != model.account {
                diff.push("account block differs".to_string());
            }
            bail!(
                "model feature layout does not match the data's:\n  model: {}\n  data:  {}\n  ({})",
                model.describe(),
                self.describe(),
                diff.join("; ")
            );
        }
        Ok(())
    }
}
