//! The backtest: the policy acts at each bar's close on observations from the shared feature
//! pipeline, trades through `sim::Account` (the env's rules) with optional risk gates, and is
//! marked at the next close.

use super::metrics::{self, Evidence, ValidationMetrics};
use crate::engine::HostPolicy;
use crate::features::{self, FeatureMatrix, FeatureSpec};
use crate::market::AssetClass;
use crate::sim::{target_level, Account, RiskGate, RiskRules, Rules, N_ACTIONS};
use chrono::{DateTime, Utc};
use std::ops::Range;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BacktestResult {
    /// Equity before the first step, then after each bar.
    pub equity: Vec<f64>,
    /// When each equity point was marked (the close of its bar).
    pub ts: Vec<DateTime<Utc>>,
    /// Per-bar returns of the equity curve.
    pub returns: Vec<f64>,
    /// P&L of each closed round trip (an open position is closed at the last price).
    pub trades: Vec<f64>,
    pub action_counts: [usize; N_ACTIONS],
    /// Risk-gate interventions (stop-loss, take-profit, halt).
    pub risk_events: usize,
    /// First and one-past-last bar index actually stepped.
    pub bars: Range<usize>,
}

impl BacktestResult {
    pub fn total_return(&self) -> f64 {
        match (self.equity.first(), self.equity.last()) {
            (Some(a), Some(b)) if *a > 0.0 => b / a - 1.0,
            _ => 0.0,
        }
    }

    pub fn hold_pct(&self) -> f64 {
        let total: usize = self.action_counts.iter().sum();
        if total == 0 {
            0.0
        } else {
            self.action_counts[0] as f64 / total as f64
        }
    }

    /// Days (sessions) the equity curve spans.
    pub fn days(&self, class: AssetClass) -> usize {
        let cal = crate::market::Calendar::for_class(class);
        let mut days: Vec<_> = self.ts.iter().map(|t| cal.local_date(*t)).collect();
        days.dedup();
        days.len()
    }

    pub fn metrics(
        &self,
        class: AssetClass,
        chunks: usize,
        evidence: Evidence,
    ) -> ValidationMetrics {
        let sharpe = metrics::daily_sharpe(&self.equity, &self.ts, class);
        let dd = metrics::max_drawdown(&self.equity);
        let days = self.days(class);
        ValidationMetrics {
            update: 0,
            profit_factor: metrics::profit_factor(&self.trades),
            sharpe,
            max_drawdown: dd,
            fitness: metrics::fitness(sharpe, dd),
            consistency: metrics::consistency(&self.equity, chunks),
            total_return: self.total_return(),
            hold_pct: self.hold_pct(),
            trades: self.trades.len(),
            days,
            insufficient: self.trades.len() < evidence.min_trades || days < evidence.min_days,
            win_rate: Some(metrics::win_rate(&self.trades)),
            portfolio: None,
        }
    }
}

/// Everything a backtest needs besides the policy.
pub struct Backtester<'a> {
    pub spec: &'a FeatureSpec,
    pub fm: &'a FeatureMatrix,
    pub closes: &'a [f64],
    pub class: AssetClass,
    pub rules: Rules,
    pub risk: Option<RiskRules>,
}

impl Backtester<'_> {
    /// A policy that decides from the observation (the trained network, or a baseline).
    pub fn run(&self, policy: &HostPolicy, range: Range<usize>) -> BacktestResult {
        self.run_with(range, |obs| policy.act(obs).0)
    }

    pub fn run_with(
        &self,
        range: Range<usize>,
        mut decide: impl FnMut(&[f32]) -> usize,
    ) -> BacktestResult {
        self.simulate(range, |_, obs, acct| {
            let action = decide(obs).min(N_ACTIONS - 1);
            (
                action,
                target_level(acct.level, action, self.rules.allow_short),
            )
        })
    }

    /// A rule that sets the position level directly from the bar index (baselines: buy-and-hold,
    /// momentum). Levels are clamped to what the rules allow (no shorts where not allowed).
    pub fn run_levels(
        &self,
        range: Range<usize>,
        mut level: impl FnMut(usize) -> f64,
    ) -> BacktestResult {
        let lo = if self.rules.allow_short { -1.0 } else { 0.0 };
        self.simulate(range, |t, _, _| (0, level(t).clamp(lo, 1.0)))
    }

    /// The bar loop: at each bar `decide(t, observation, account)` gives the action (counted) and
    /// the position level it asks for; the risk gates (when on) may change that level.
    fn simulate(
        &self,
        range: Range<usize>,
        mut decide: impl FnMut(usize, &[f32], &Account) -> (usize, f64),
    ) -> BacktestResult {
        let start = range.start.max(self.fm.first_observable(self.spec.window));
        let end = range.end.min(self.closes.len()).saturating_sub(1);
        let mut acct = Account::new(&self.rules);
        let mut gate = RiskGate::default();
        let mut res = BacktestResult {
            equity: vec![acct.equity],
            ts: self.fm.ts.get(start).copied().into_iter().collect(),
            bars: start..end.max(start),
            ..Default::default()
        };
        let mut obs = Vec::with_capacity(self.spec.obs_dim());
        let mut trade_start: Option<f64> = None;
        for t in start..end {
            let price = self.closes[t];
            features::observation(self.spec, self.fm, t, &acct.features(), &mut obs);
            let (action, want) = decide(t, &obs, &acct);
            res.action_counts[action] += 1;
            let before = acct.equity;
            let (level, mult) = match &self.risk {
                Some(r) => {
                    let d = gate.decide_level(r, &acct, want, price);
                    if d.reason.is_some() {
                        res.risk_events += 1;
                    }
                    (d.level, d.size_mult)
                }
                None => (want, 1.0),
            };
            let was = acct.qty;
            acct.rebalance(&self.rules, level, price, mult);
            // A round trip ends when the position goes flat or flips side.
            if was != 0.0 && (acct.qty == 0.0 || acct.qty.signum() != was.signum()) {
                if let Some(s) = trade_start.take() {
                    res.trades.push(acct.equity - s);
                }
            }
            if acct.qty != 0.0 && trade_start.is_none() {
                trade_start = Some(if was == 0.0 { before } else { acct.equity });
            }
            acct.mark(self.closes[t + 1]);
            res.returns.push(acct.equity / before - 1.0);
            res.equity.push(acct.equity);
            res.ts.push(self.fm.ts[t + 1]);
        }
        if let Some(s) = trade_start {
            res.trades.push(acct.equity - s);
        }
        res
    }
}
