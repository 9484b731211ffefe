//! Walk-forward: the out-of-sample bars split into consecutive folds, each backtested from a
//! fresh account beside the baselines, and the seed's deployment decision from the fold results.

use super::baselines::{self, Baseline, BaselineResult, MomentumRule};
use super::{metrics, Backtester};
use crate::engine::HostPolicy;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::ops::Range;

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
    /// The asset's own return over the fold (close to close, fully invested, no costs).
    pub buy_hold_return: f64,
    /// Equity relative to the fold's start (1.0 = flat), one point per bar.
    pub equity: Vec<f64>,
    /// The baselines on the same bars, sizing and costs.
    #[serde(default)]
    pub baselines: Vec<BaselineResult>,
    /// A portfolio model's fold: turnover, costs, equal weight's, the regimes chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portfolio: Option<super::portfolio_walk::PortfolioFold>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    Live,
    Paper,
    Retrain,
    Drop,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Live => "LIVE",
            Decision::Paper => "PAPER",
            Decision::Retrain => "RETRAIN",
            Decision::Drop => "DROP",
        }
    }
}

/// The walk-forward verdict with the figures behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionReport {
    pub decision: Decision,
    pub positive_folds: usize,
    pub folds: usize,
    pub sharpe_std: f64,
    /// Baselines the model beats: a higher mean fold return *and* a higher mean fold Sharpe.
    #[serde(default)]
    pub beats: Vec<Baseline>,
    /// Baselines it does not beat.
    #[serde(default)]
    pub trails: Vec<Baseline>,
}

impl DecisionReport {
    /// `beats buy-and-hold, flat; trails momentum, random`.
    pub fn baselines_line(&self) -> String {
        let names = |v: &[Baseline]| v.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ");
        match (self.beats.is_empty(), self.trails.is_empty()) {
            (true, true) => "no baselines".into(),
            (false, true) => format!("beats every baseline ({})", names(&self.beats)),
            (true, false) => format!("beats no baseline (trails {})", names(&self.trails)),
            (false, false) => format!(
                "beats {}; trails {}",
                names(&self.beats),
                names(&self.trails)
            ),
        }
    }
}

/// Splits `range` into `n` consecutive folds of (nearly) equal length.
pub fn folds(range: Range<usize>, n: usize) -> Vec<Range<usize>> {
    let len = range.end.saturating_sub(range.start);
    let n = n.max(1).min(len.max(1));
    (0..n)
        .map(|i| range.start + i * len / n..range.start + (i + 1) * len / n)
        .collect()
}

pub fn run_fold(
    bt: &Backtester,
    policy: &HostPolicy,
    fold: usize,
    range: Range<usize>,
    ts: &[DateTime<Utc>],
    momentum: MomentumRule,
) -> FoldResult {
    let res = bt.run(policy, range.clone());
    let r = res.bars.clone();
    let first = res.equity.first().copied().unwrap_or(1.0);
    let (a, b) = (
        r.start.min(ts.len().saturating_sub(1)),
        r.end.min(ts.len().saturating_sub(1)),
    );
    FoldResult {
        fold,
        start: ts.get(a).copied().unwrap_or_default(),
        end: ts.get(b).copied().unwrap_or_default(),
        bars: r.len(),
        total_return: res.total_return(),
        sharpe: metrics::daily_sharpe(&res.equity, &res.ts, bt.class),
        max_drawdown: metrics::max_drawdown(&res.equity),
        win_rate: metrics::win_rate(&res.trades),
        profit_factor: metrics::profit_factor(&res.trades),
        trades: res.trades.len(),
        buy_hold_return: if r.is_empty() {
            0.0
        } else {
            bt.closes[r.end] / bt.closes[r.start] - 1.0
        },
        equity: res.equity.iter().map(|e| e / first).collect(),
        baselines: baselines::run_all(bt, range, momentum, 1000 + fold as u64),
        portfolio: None,
    }
}

/// The decision with the baseline comparison.
pub fn report(folds: &[FoldResult], max_sharpe_std: f64) -> DecisionReport {
    let (decision, positive_folds, sharpe_std) = decide(folds, max_sharpe_std);
    let mean = |f: &dyn Fn(&FoldResult) -> Option<f64>| {
        let v: Vec<f64> = folds.iter().filter_map(f).collect();
        (v.len() == folds.len() && !v.is_empty()).then(|| metrics::mean_std(&v).0)
    };
    let model_ret = mean(&|f| Some(f.total_return));
    let model_sharpe = mean(&|f| Some(f.sharpe));
    let (mut beats, mut trails) = (Vec::new(), Vec::new());
    for b in Baseline::ALL {
        let pick = |f: &FoldResult| f.baselines.iter().find(|r| r.baseline == b).cloned();
        let (Some(ret), Some(sh)) = (
            mean(&|f| pick(f).map(|r| r.total_return)),
            mean(&|f| pick(f).map(|r| r.sharpe)),
        ) else {
            continue;
        };
        let wins = model_ret.is_some_and(|m| m > ret) && model_sharpe.is_some_and(|m| m > sh);
        if wins {
            beats.push(b);
        } else {
            trails.push(b);
        }
    }
    DecisionReport {
        decision,
        positive_folds,
        folds: folds.len(),
        sharpe_std,
        beats,
        trails,
    }
}

/// Seed §6: ≥ 80 % positive folds with fold-Sharpe std below the limit → LIVE; ≥ 60 % → PAPER;
/// no positive fold → DROP; otherwise RETRAIN.
pub fn decide(folds: &[FoldResult], max_sharpe_std: f64) -> (Decision, usize, f64) {
    let positive = folds.iter().filter(|f| f.total_return > 0.0).count();
    let sharpes: Vec<f64> = folds.iter().map(|f| f.sharpe).collect();
    let (_, std) = metrics::mean_std(&sharpes);
    let share = positive as f64 / folds.len().max(1) as f64;
    let d = if folds.is_empty() || positive == 0 {
        Decision::Drop
    } else if share >= 0.8 - 1e-9 && std < max_sharpe_std {
        Decision::Live
    } else if share >= 0.6 - 1e-9 {
        Decision::Paper
    } else {
        Decision::Retrain
    };
    (d, positive, std)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(ret: f64, sharpe: f64) -> FoldResult {
        FoldResult {
            total_return: ret,
            sharpe,
            ..Default::default()
        }
    }

    #[test]
    fn folds_cover_the_range_without_overlap() {
        let fs = folds(100..203, 5);
        assert_eq!(fs.len(), 5);
        assert_eq!(fs[0].start, 100);
        assert_eq!(fs[4].end, 203);
        assert!(fs.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn decisions_follow_the_seed() {
        let live = [
            f(0.01, 1.0),
            f(0.02, 1.2),
            f(0.01, 0.8),
            f(0.03, 1.5),
            f(-0.01, 0.5),
        ];
        assert_eq!(decide(&live, 1.0).0, Decision::Live);
        assert_eq!(
            decide(&live, 0.1).0,
            Decision::Paper,
            "too erratic for LIVE"
        );
        let paper = [
            f(0.01, 1.0),
            f(0.02, 1.0),
            f(0.01, 1.0),
            f(-0.03, -1.0),
            f(-0.01, -0.5),
        ];
        assert_eq!(decide(&paper, 1.0).0, Decision::Paper);
        let retrain = [
            f(0.01, 1.0),
            f(-0.02, -1.0),
            f(0.01, 1.0),
            f(-0.03, -1.0),
            f(-0.01, -0.5),
        ];
        assert_eq!(decide(&retrain, 1.0).0, Decision::Retrain);
        let drop = [f(-0.01, -1.0), f(-0.02, -1.0)];
        assert_eq!(decide(&drop, 1.0).0, Decision::Drop);
    }

    fn with_baselines(ret: f64, sharpe: f64, bh: (f64, f64), flat: (f64, f64)) -> FoldResult {
        let b = |baseline, (total_return, sharpe)| BaselineResult {
            baseline,
            total_return,
            sharpe,
            max_drawdown: 0.0,
            equity: Vec::new(),
        };
        FoldResult {
            baselines: vec![b(Baseline::BuyHold, bh), b(Baseline::Flat, flat)],
            ..f(ret, sharpe)
        }
    }

    #[test]
    fn the_report_names_the_baselines_beaten() {
        // Beats flat on both counts; buy-and-hold has the higher return in the mean.
        let folds = [
            with_baselines(0.02, 1.5, (0.05, 1.0), (0.0, 0.0)),
            with_baselines(0.01, 1.0, (0.03, 0.9), (0.0, 0.0)),
        ];
        let r = report(&folds, 1.0);
        assert_eq!(r.beats, vec![Baseline::Flat]);
        assert_eq!(r.trails, vec![Baseline::BuyHold]);
        assert_eq!(r.baselines_line(), "beats flat; trails buy-and-hold");
        // A losing model beats nothing.
        let folds = [with_baselines(-0.01, -0.5, (0.05, 1.0), (0.0, 0.0))];
        assert!(report(&folds, 1.0).beats.is_empty());
    }
}
