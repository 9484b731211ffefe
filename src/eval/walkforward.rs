//! Walk-forward: the out-of-sample bars split into consecutive folds, each backtested from a
//! fresh account beside the baselines, and the seed's deployment decision from the fold results.
//!
//! A fold is graded as paper trading will trade it (`sim::decide`: threshold, risk rules,
//! gates), with the raw policy's figures beside it; its fills are kept, so a simulated replay of
//! the fold can be held against them. Folds tile the period: fold `k` decides on its bars and is
//! marked at the first bar of fold `k + 1`, so no bar's return falls between two folds.

use super::baselines::{self, Baseline, BaselineResult, MomentumRule};
use super::gate::{GateClass, GateFlag};
use super::metrics::RawFigures;
use super::{metrics, Backtester};
use crate::engine::HostPolicy;
use crate::sim::TradingRules;
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
    /// The asset's own move over the fold (close to close, fully invested, no costs); a
    /// portfolio's fold holds equal weight's return here. The buy-and-hold *baseline* (at the
    /// position size, with costs) is in `baselines`.
    pub buy_hold_return: f64,
    /// Equity relative to the fold's start (1.0 = flat), one point per bar.
    pub equity: Vec<f64>,
    /// The baselines on the same bars, sizing and costs.
    #[serde(default)]
    pub baselines: Vec<BaselineResult>,
    /// A portfolio model's fold: turnover, costs, equal weight's, the regimes chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portfolio: Option<super::portfolio_walk::PortfolioFold>,
    /// Decisions the confidence threshold turned into HOLD.
    #[serde(default)]
    pub held: usize,
    /// The policy's confidence over the fold's decisions: 10th, 50th and 90th percentiles
    /// (why a threshold holds it, or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<[f32; 3]>,
    /// The raw policy (every choice acted on) on the same fold, where the rules have a threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<RawFigures>,
    /// The model's fills in the fold, in order: what a replay of the fold trades.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orders: Vec<FoldOrder>,
}

/// One fill of a fold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FoldOrder {
    /// The bar at whose close it filled.
    pub ts: DateTime<Utc>,
    /// A portfolio member (empty for a single-symbol model).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub symbol: String,
    /// Signed units.
    pub qty: f64,
    /// Paid per unit, slippage included.
    pub price: f64,
}

/// What a walk-forward run evaluated with, for the record and the pane's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalkSetup {
    /// The rules the model was traded by (paper trading applies the same).
    pub rules: TradingRules,
    /// The momentum baseline's spans, fitted on the training bars (single-symbol models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum: Option<MomentumRule>,
    /// The latest gate verdict of the model's training run, if it was gated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateVerdict>,
}

/// A gate's verdict as walk-forward reports it beside its own decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateVerdict {
    pub class: GateClass,
    pub flags: Vec<GateFlag>,
}

impl GateVerdict {
    /// `gated DROP (INSUFFICIENT_TRADES)`.
    pub fn line(&self) -> String {
        let flags: Vec<&str> = self.flags.iter().map(|f| f.as_str()).collect();
        if flags.is_empty() {
            format!("gated {}", self.class.as_str())
        } else {
            format!("gated {} ({})", self.class.as_str(), flags.join(", "))
        }
    }
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
    /// The model's gate verdict, when it has one: a DROP model says so beside any decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateVerdict>,
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

impl DecisionReport {
    /// The line a user reads: `PAPER: 4/5 folds positive, Sharpe std 0.80; beats …; gated …`.
    pub fn line(&self) -> String {
        let gate = match &self.gate {
            Some(g) if g.class == GateClass::Drop => {
                format!("; but the model was {}: do not trade it", g.line())
            }
            Some(g) => format!("; {}", g.line()),
            None => "; not gated".to_string(),
        };
        format!(
            "{}: {}/{} folds positive, Sharpe std {:.2}; {}{gate}",
            self.decision.as_str(),
            self.positive_folds,
            self.folds,
            self.sharpe_std,
            self.baselines_line()
        )
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

/// One fold of a single-symbol model: `bt` trades as paper will (`Backtester::as_traded`); the
/// baselines trade plain at its sizing and costs.
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
    let at = |i: usize| ts.get(i.min(ts.len().saturating_sub(1))).copied();
    let raw = bt
        .trading
        .is_some_and(|t| t.has_threshold())
        .then(|| bt.raw().run(policy, range.clone()).raw_figures(bt.class));
    FoldResult {
        fold,
        start: at(r.start).unwrap_or_default(),
        // The bar the fold's last decision is marked at (the next fold's first).
        end: at(r.end).unwrap_or_default(),
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
        held: res.held_by_threshold,
        confidence: res.confidence_quantiles(),
        raw,
        orders: res
            .fills
            .iter()
            .map(|f| FoldOrder {
                ts: ts[f.bar],
                symbol: String::new(),
                qty: f.qty,
                price: f.price,
            })
            .collect(),
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
        let wins = match (model_ret, model_sharpe) {
            (Some(mr), Some(ms)) => baselines::beats(mr, ms, ret, sh),
            _ => false,
        };
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
        gate: None,
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
