//! The oracle: a rule that knows the synthetic market's hidden drift and holds its sign — long
//! while it is positive, short (flat where shorts are not allowed) while it is negative. No
//! policy seeing only past bars can expect to do better by much, so it is the upper bound that
//! the learning benchmark measures a trained policy against. Benchmarks only: it needs the
//! generator's truth, which no real market offers, so nothing user-facing offers it as a model.

use super::{BacktestResult, Backtester};
use std::ops::Range;

/// The position level the oracle holds at each bar's close: the sign of the drift in force
/// during that bar (the next bar's expected drift has the same sign). Zero drift holds nothing.
pub fn levels(drift: &[f64], allow_short: bool) -> Vec<f64> {
    drift
        .iter()
        .map(|&d| {
            if d > 0.0 {
                1.0
            } else if d < 0.0 && allow_short {
                -1.0
            } else {
                0.0
            }
        })
        .collect()
}

/// Backtests the oracle over `range` through the same bar loop, sizing and costs as any policy.
/// `drift` is per bar of the backtester's series (`synthetic::generate_with_truth`).
pub fn run(bt: &Backtester, drift: &[f64], range: Range<usize>) -> BacktestResult {
    let lv = levels(drift, bt.rules.allow_short);
    bt.run_levels(range, |t| lv.get(t).copied().unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_drift_sign() {
        let drift = [0.3, -0.2, 0.0, 1e-9, -5.0];
        assert_eq!(levels(&drift, true), vec![1.0, -1.0, 0.0, 1.0, -1.0]);
        assert_eq!(levels(&drift, false), vec![1.0, 0.0, 0.0, 1.0, 0.0]);
        assert!(levels(&[], true).is_empty());
    }
}
