//! The four factor scores (seed 002 §12), each a pure function of a symbol's last
//! `lookback + 1` closes, and their table over a whole panel.
//!
//! With returns r_k = c_k / c_{k−1} − 1 over the lookback (k = 1..=L):
//! - **momentum** = c_L / c_0 − 1, the L-bar change;
//! - **volatility** = sample standard deviation of r (n − 1 in the denominator);
//! - **low_vol** = 1 / volatility (higher is calmer);
//! - **quality** = mean(r) / volatility, the L-bar Sharpe ratio (not annualised);
//! - **size** = 1 / c_L, inverse price (higher is "smaller").
//!
//! Volatility is floored at [`VOL_FLOOR`] in the two ratios, so a flat series scores high but
//! finite. A symbol has scores at a bar only when all L + 1 closes are available.

use crate::data::Panel;
use serde::{Deserialize, Serialize};

/// Smallest volatility used as a divisor.
pub const VOL_FLOOR: f64 = 1e-8;

/// One symbol's scores at one bar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FactorScores {
    pub momentum: f64,
    pub volatility: f64,
    pub low_vol: f64,
    pub quality: f64,
    pub size: f64,
}

/// A factor a regime ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    Momentum,
    LowVol,
    Quality,
    Size,
}

impl FactorScores {
    /// Scores from closes oldest first (`lookback + 1` of them, at least 3); `None` when a close
    /// is missing, non-finite or not positive.
    pub fn from_closes(closes: &[f64]) -> Option<FactorScores> {
        if closes.len() < 3 || closes.iter().any(|c| !c.is_finite() || *c <= 0.0) {
            return None;
        }
        let rets: Vec<f64> = closes.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
        let n = rets.len() as f64;
        let mean = rets.iter().sum::<f64>() / n;
        let var = rets.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let volatility = var.sqrt();
        let last = closes[closes.len() - 1];
        Some(FactorScores {
            momentum: last / closes[0] - 1.0,
            volatility,
            low_vol: 1.0 / volatility.max(VOL_FLOOR),
            quality: mean / volatility.max(VOL_FLOOR),
            size: 1.0 / last,
        })
    }

    pub fn get(&self, f: Factor) -> f64 {
        match f {
            Factor::Momentum => self.momentum,
            Factor::LowVol => self.low_vol,
            Factor::Quality => self.quality,
            Factor::Size => self.size,
        }
    }
}

/// Scores and bar returns for every cell of a panel: `scores[t * n_symbols + i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FactorTable {
    pub lookback: usize,
    pub n_symbols: usize,
    pub scores: Vec<Option<FactorScores>>,
    /// The bar's return c_t / c_{t−1} − 1, where the cell has scores (it is their last return).
    pub returns: Vec<Option<f64>>,
}

impl FactorTable {
    pub fn compute(panel: &Panel, lookback: usize) -> FactorTable {
        let (n, m) = (panel.n_bars(), panel.n_symbols());
        let mut scores = vec![None; n * m];
        let mut returns = vec![None; n * m];
        let mut window = Vec::with_capacity(lookback + 1);
        for i in 0..m {
            for t in lookback..n {
                window.clear();
                window.extend((t - lookback..=t).map(|k| panel.close(k, i).unwrap_or(f64::NAN)));
                if let Some(s) = FactorScores::from_closes(&window) {
                    scores[t * m + i] = Some(s);
                    returns[t * m + i] = Some(window[lookback] / window[lookback - 1] - 1.0);
                }
            }
        }
        FactorTable {
            lookback,
            n_symbols: m,
            scores,
            returns,
        }
    }

    /// Every symbol's scores at bar `t`.
    pub fn row(&self, t: usize) -> &[Option<FactorScores>] {
        &self.scores[t * self.n_symbols..(t + 1) * self.n_symbols]
    }

    pub fn n_bars(&self) -> usize {
        self.scores.len() / self.n_symbols.max(1)
    }
}
