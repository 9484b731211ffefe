//! The portfolio account: cash plus a quantity per symbol, rebalanced to target weights through
//! the seed's frictions (seed 002 §13).
//!
//! A rebalance at bar T, with `P` the portfolio value at the execution prices before trading:
//! 1. Holdings of symbols without a bar at T cannot trade; they stay, valued at their last close
//!    (`F`). The target weights divide the rest, `A = P − F`: symbol `i` goes to
//!    `qᵢ* = wᵢ · A / pᵢ` shares at its execution price `pᵢ`.
//! 2. Each trade of value `Vᵢ = |qᵢ* − qᵢ| · pᵢ` pays, out of cash,
//!    - slippage `sᵢ · Vᵢ`, with `sᵢ` drawn uniformly in `[0, slippage_max]` (by the caller, so
//!      the tensor env and the evaluation share draws),
//!    - the bid-ask spread `spread · Vᵢ`,
//!    - square-root impact `impact · √(Vᵢ / P) · Vᵢ`.
//!
//!    Weights are of the value before costs, so a fully invested target finances its costs
//!    with a cash debit of that size (at most about 1 % of equity; no interest is charged).
//! 3. The account is then marked at each symbol's close of T (its last close where it has no
//!    bar at T).

use super::Weights;
use crate::config::PortfolioConfig;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// The seed's three frictions, each a config value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Frictions {
    /// Upper bound of the uniform slippage draw, as a share of the traded value.
    pub slippage_max: f64,
    /// Bid-ask spread, as a share of the traded value.
    pub spread: f64,
    /// Coefficient of the square-root impact.
    pub impact: f64,
}

/// What one or more trades paid, in account currency, by friction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TradeCost {
    pub slippage: f64,
    pub spread: f64,
    pub impact: f64,
}

impl TradeCost {
    pub fn total(&self) -> f64 {
        self.slippage + self.spread + self.impact
    }

    fn add(&mut self, o: TradeCost) {
        self.slippage += o.slippage;
        self.spread += o.spread;
        self.impact += o.impact;
    }
}

impl Frictions {
    /// The cost of trading `value` (≥ 0) out of a portfolio worth `portfolio` at slippage draw
    /// `slippage`.
    pub fn cost(&self, value: f64, portfolio: f64, slippage: f64) -> TradeCost {
        let rel = if portfolio > 0.0 {
            value / portfolio
        } else {
            0.0
        };
        TradeCost {
            slippage: slippage * value,
            spread: self.spread * value,
            impact: self.impact * rel.max(0.0).sqrt() * value,
        }
    }

    /// Fills `out` with slippage draws, uniform in `[0, slippage_max]`, one per symbol.
    pub fn draw_slippage(&self, rng: &mut Rng, out: &mut [f64]) {
        for s in out.iter_mut() {
            *s = rng.uniform() * self.slippage_max;
        }
    }
}

/// Everything a portfolio step needs besides the market.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PortfolioRules {
    pub initial_cash: f64,
    pub frictions: Frictions,
    /// Reward = ln(equity after / equity before) × this.
    pub reward_scale: f64,
}

impl PortfolioRules {
    pub fn from_config(pf: &PortfolioConfig) -> Self {
        PortfolioRules {
            initial_cash: pf.initial_cash,
            frictions: Frictions {
                slippage_max: pf.slippage_max,
                spread: pf.spread,
                impact: pf.impact,
            },
            reward_scale: pf.reward_scale,
        }
    }
}

/// What a rebalance did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rebalance {
    /// Portfolio value at the execution prices before trading.
    pub value_before: f64,
    /// Σ |trade value| over symbols.
    pub traded: f64,
    pub cost: TradeCost,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortfolioAccount {
    pub cash: f64,
    /// Shares per symbol (never negative: the regimes do not short).
    pub qty: Vec<f64>,
    /// Value at the last mark.
    pub equity: f64,
    pub peak: f64,
    pub initial: f64,
}

impl PortfolioAccount {
    pub fn new(rules: &PortfolioRules, n_symbols: usize) -> Self {
        PortfolioAccount {
            cash: rules.initial_cash,
            qty: vec![0.0; n_symbols],
            equity: rules.initial_cash,
            peak: rules.initial_cash,
            initial: rules.initial_cash,
        }
    }

    /// Value of the account at `prices` (one per symbol).
    pub fn value_at(&self, prices: &[f64]) -> f64 {
        self.cash + self.qty.iter().zip(prices).map(|(q, p)| q * p).sum::<f64>()
    }

    /// Trades to `target` (see the module docs). `price[i]` is symbol `i`'s execution price where
    /// `tradable[i]`, else the price its frozen holding is valued at; `slippage[i]` its draw.
    pub fn rebalance(
        &mut self,
        frictions: &Frictions,
        target: &Weights,
        price: &[f64],
        tradable: &[bool],
        slippage: &[f64],
    ) -> Rebalance {
        let value_before = self.value_at(price);
        let mut out = Rebalance {
            value_before,
            ..Default::default()
        };
        if value_before <= 0.0 {
            return out;
        }
        let frozen: f64 = (0..self.qty.len())
            .filter(|&i| !tradable[i])
            .map(|i| self.qty[i] * price[i])
            .sum();
        let deployable = value_before - frozen;
        for i in 0..self.qty.len() {
            if !tradable[i] || price[i] <= 0.0 {
                continue;
            }
            let goal = target.symbols[i] * deployable / price[i];
            let dq = goal - self.qty[i];
            let value = dq.abs() * price[i];
            let cost = frictions.cost(value, value_before, slippage[i]);
            self.cash -= dq * price[i] + cost.total();
            self.qty[i] = goal;
            out.traded += value;
            out.cost.add(cost);
        }
        out
    }

    /// Revalues the account at `marks` (one price per symbol) and moves the peak.
    pub fn mark(&mut self, marks: &[f64]) {
        self.equity = self.value_at(marks);
        self.peak = self.peak.max(self.equity);
    }

    pub fn drawdown(&self) -> f64 {
        if self.peak > 0.0 {
            (1.0 - self.equity / self.peak).max(0.0)
        } else {
            0.0
        }
    }

    /// Each symbol's share of equity at `marks`.
    pub fn weights(&self, marks: &[f64]) -> Vec<f64> {
        self.qty
            .iter()
            .zip(marks)
            .map(|(q, p)| {
                if self.equity > 0.0 {
                    q * p / self.equity
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// The observation's tail (layout in `features::portfolio::PortfolioSpec`): weights at
    /// `marks`, the cash share, tanh(10 × P&L / initial) and the drawdown from peak.
    pub fn tail(&self, marks: &[f64], out: &mut Vec<f32>) {
        out.clear();
        out.extend(self.weights(marks).iter().map(|w| *w as f32));
        let cash = if self.equity > 0.0 {
            self.cash / self.equity
        } else {
            0.0
        };
        out.push(cash as f32);
        out.push((10.0 * (self.equity / self.initial - 1.0)).tanh() as f32);
        out.push(self.drawdown() as f32);
    }
}
