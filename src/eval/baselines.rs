//! Trivial rules beside every evaluated model, on the same bars with the same sizing and costs,
//! so a user sees at a glance whether the model beats them:
//!
//! - **buy-and-hold**: a full long position from the first bar;
//! - **flat**: no position (return 0);
//! - **random**: a uniformly random action each bar (seeded, in the model's own action space);
//! - **momentum**: long (short where allowed) while a fast EMA of the close is above (below) a slow
//!   one, with the spans chosen on the model's *training* bars only.
//!
//! Baselines are plain rules: no confidence threshold, no stop-loss or take-profit, no drawdown
//! rules or capital gates — those belong to the model. Whatever backtester they are given, they
//! trade on its [`Backtester::plain`] terms: the same account, sizing, slippage and commission.

use super::{metrics, BacktestResult, Backtester};
use crate::rng::Rng;
use crate::sim::N_ACTIONS;
use serde::{Deserialize, Serialize};
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    BuyHold,
    Flat,
    Random,
    Momentum,
    /// Portfolio models: equal weight bought at the first bar, then held.
    EqualWeight,
}

impl Baseline {
    /// Every baseline, in display order.
    pub const ALL: [Baseline; 5] = [
        Baseline::EqualWeight,
        Baseline::BuyHold,
        Baseline::Flat,
        Baseline::Random,
        Baseline::Momentum,
    ];
    /// Those of a single-symbol model.
    pub const SINGLE: [Baseline; 4] = [
        Baseline::BuyHold,
        Baseline::Flat,
        Baseline::Random,
        Baseline::Momentum,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Baseline::BuyHold => "buy-and-hold",
            Baseline::Flat => "flat",
            Baseline::Random => "random",
            Baseline::Momentum => "momentum",
            Baseline::EqualWeight => "equal-weight",
        }
    }
}

/// The one comparison every verdict uses (walk-forward's decision line, the gate): a model
/// beats a baseline when both its return and its Sharpe are higher.
pub fn beats(model_return: f64, model_sharpe: f64, base_return: f64, base_sharpe: f64) -> bool {
    model_return > base_return && model_sharpe > base_sharpe
}

/// A baseline's result over one fold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineResult {
    pub baseline: Baseline,
    pub total_return: f64,
    pub sharpe: f64,
    pub max_drawdown: f64,
    /// Equity relative to the fold's start, one point per bar (as the model's curve).
    pub equity: Vec<f64>,
}

/// The EMA crossover's spans, in bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MomentumRule {
    pub fast: usize,
    pub slow: usize,
}

/// Exponential moving average with span `n` (α = 2 / (n + 1)), seeded with the first value.
pub fn ema(xs: &[f64], n: usize) -> Vec<f64> {
    let a = 2.0 / (n as f64 + 1.0);
    let mut out = Vec::with_capacity(xs.len());
    let mut e = match xs.first() {
        Some(x) => *x,
        None => return out,
    };
    for &x in xs {
        e += a * (x - e);
        out.push(e);
    }
    out
}

impl MomentumRule {
    /// Spans tried: fast 4–64 bars, slow 2–8 × fast.
    const FAST: [usize; 5] = [4, 8, 16, 32, 64];
    const RATIO: [usize; 3] = [2, 4, 8];

    /// The spans with the best Sharpe (after costs) on `train` — the model's training bars —
    /// and nothing else.
    pub fn fit(bt: &Backtester, train: Range<usize>) -> MomentumRule {
        let bt = &bt.plain();
        let mut best = (f64::NEG_INFINITY, MomentumRule { fast: 8, slow: 32 });
        for fast in Self::FAST {
            for r in Self::RATIO {
                let rule = MomentumRule {
                    fast,
                    slow: fast * r,
                };
                let res = rule.run(bt, train.clone());
                let s = metrics::daily_sharpe(&res.equity, &res.ts, bt.class);
                if s > best.0 {
                    best = (s, rule);
                }
            }
        }
        best.1
    }

    /// Backtests the rule over `range`. The EMAs see only closes up to each bar.
    pub fn run(&self, bt: &Backtester, range: Range<usize>) -> BacktestResult {
        let bt = &bt.plain();
        let end = range.end.min(bt.closes.len());
        let fast = ema(&bt.closes[..end], self.fast);
        let slow = ema(&bt.closes[..end], self.slow);
        bt.run_levels(range, |t| {
            if t < self.slow {
                0.0
            } else if fast[t] > slow[t] {
                1.0
            } else {
                -1.0
            }
        })
    }
}

fn summarise(baseline: Baseline, res: &BacktestResult, bt: &Backtester) -> BaselineResult {
    let first = res.equity.first().copied().unwrap_or(1.0);
    BaselineResult {
        baseline,
        total_return: res.total_return(),
        sharpe: metrics::daily_sharpe(&res.equity, &res.ts, bt.class),
        max_drawdown: metrics::max_drawdown(&res.equity),
        equity: res.equity.iter().map(|e| e / first).collect(),
    }
}

/// All four baselines over one fold. `seed` makes the random one repeatable.
pub fn run_all(
    bt: &Backtester,
    range: Range<usize>,
    momentum: MomentumRule,
    seed: u64,
) -> Vec<BaselineResult> {
    let bt = &bt.plain();
    let mut rng = Rng::new(seed);
    Baseline::SINGLE
        .iter()
        .map(|&b| {
            let res = match b {
                // Equal weight over one symbol is holding it (not in SINGLE; for completeness).
                Baseline::BuyHold | Baseline::EqualWeight => bt.run_levels(range.clone(), |_| 1.0),
                Baseline::Flat => bt.run_levels(range.clone(), |_| 0.0),
                Baseline::Random => bt.run_with(range.clone(), |_| (rng.below(N_ACTIONS), 1.0)),
                Baseline::Momentum => momentum.run(bt, range.clone()),
            };
            summarise(b, &res, bt)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_known_values() {
        // α = 2/3 for span 2: 1, 1+2/3·(2−1), …
        let e = ema(&[1.0, 2.0, 3.0], 2);
        assert!((e[0] - 1.0).abs() < 1e-12);
        assert!((e[1] - (1.0 + 2.0 / 3.0)).abs() < 1e-12);
        assert!((e[2] - (e[1] + 2.0 / 3.0 * (3.0 - e[1]))).abs() < 1e-12);
        assert!(ema(&[], 5).is_empty());
    }
}
