//! The backtest: the policy acts at each bar's close on observations from the shared feature
//! pipeline and is marked at the next close. As a model is evaluated ("as traded"), every
//! decision goes through `sim::decide` — the path the paper daemon takes — against the
//! backtest's own account, filled as the simulated broker fills (slippage on the close, a fixed
//! commission). Plain rules (baselines, the training env's view) trade at the same sizing and
//! costs without the gates.
//!
//! A range `a..b` steps the decisions at bars `a..b` and marks the last one at the close of bar
//! `b` (or the last bar), so consecutive ranges tile a period with no bar's return lost.

use super::metrics::{self, Evidence, RawFigures, ValidationMetrics};
use crate::engine::HostPolicy;
use crate::features::{self, FeatureMatrix, FeatureSpec};
use crate::market::{AssetClass, Calendar};
use crate::sim::decide::{propose, step, Circumstances};
use crate::sim::gates::{sim_buying_power, Situation};
use crate::sim::{target_level, Account, Fill, Latches, Rules, TradingRules, N_ACTIONS};
use chrono::{DateTime, Utc};
use std::ops::Range;

/// An order the backtest filled: at bar `bar`'s close, `qty` signed units at `price` (slippage
/// included), as the simulated broker would fill it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BacktestFill {
    pub bar: usize,
    pub qty: f64,
    pub price: f64,
}

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
    /// Actions acted on (after the confidence threshold, when the rules have one).
    pub action_counts: [usize; N_ACTIONS],
    /// Risk-rule interventions (stop-loss, take-profit, drawdown halt).
    pub risk_events: usize,
    /// Bars on which the confidence threshold turned the policy's choice into HOLD.
    pub held_by_threshold: usize,
    /// Every fill, in order.
    pub fills: Vec<BacktestFill>,
    /// The policy's confidence (its choice's probability) at each decision of a model's run.
    pub confidences: Vec<f32>,
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
            raw: None,
            drawn_paths: 0,
        }
    }

    /// The 10th, 50th and 90th percentiles of the policy's confidence, when it was recorded.
    pub fn confidence_quantiles(&self) -> Option<[f32; 3]> {
        metrics::confidence_quantiles(&self.confidences)
    }

    /// The headline figures, as kept beside another evaluation.
    pub fn raw_figures(&self, class: AssetClass) -> RawFigures {
        RawFigures {
            total_return: self.total_return(),
            sharpe: metrics::daily_sharpe(&self.equity, &self.ts, class),
            max_drawdown: metrics::max_drawdown(&self.equity),
            trades: self.trades.len(),
        }
    }
}

/// Everything a backtest needs besides the policy.
#[derive(Clone, Copy)]
pub struct Backtester<'a> {
    pub spec: &'a FeatureSpec,
    pub fm: &'a FeatureMatrix,
    pub closes: &'a [f64],
    pub class: AssetClass,
    /// The account: cash, sizing, costs, shorting.
    pub rules: Rules,
    /// The decision rules paper trading applies (`sim::decide`); `None`: a plain rule at the
    /// sizing and costs of `rules`, without threshold, risk rules or gates.
    pub trading: Option<TradingRules>,
}

impl<'a> Backtester<'a> {
    /// A backtest as paper trading would trade: the account, sizing and costs of `trading`, and
    /// every decision through its rules.
    pub fn as_traded(
        spec: &'a FeatureSpec,
        fm: &'a FeatureMatrix,
        closes: &'a [f64],
        class: AssetClass,
        trading: &TradingRules,
        allow_short: bool,
    ) -> Self {
        Backtester {
            spec,
            fm,
            closes,
            class,
            rules: trading.account(allow_short),
            trading: Some(*trading),
        }
    }

    /// The same rules, sizing and costs on other bars (a drawn path of the same market).
    pub fn on<'b>(&self, fm: &'b FeatureMatrix, closes: &'b [f64]) -> Backtester<'b>
    where
        'a: 'b,
    {
        Backtester {
            spec: self.spec,
            fm,
            closes,
            class: self.class,
            rules: self.rules,
            trading: self.trading,
        }
    }

    /// The same bars, sizing and costs without any gate (the baselines' terms).
    pub fn plain(&self) -> Self {
        Backtester {
            trading: None,
            ..*self
        }
    }

    /// The same rules acting on every choice of the policy (no confidence threshold).
    pub fn raw(&self) -> Self {
        Backtester {
            trading: self.trading.map(|t| t.raw()),
            ..*self
        }
    }

    /// A model's validation over `range`: its metrics as traded, with the raw policy's figures
    /// beside them when the rules have a confidence threshold (training-time validation and the
    /// gate read this).
    pub fn validate(
        &self,
        policy: &HostPolicy,
        range: Range<usize>,
        chunks: usize,
        evidence: Evidence,
    ) -> ValidationMetrics {
        super::pooled::validate_on(&[(*self, range)], policy, chunks, evidence)
    }

    /// A policy that decides from the observation (the trained network, or a baseline).
    pub fn run(&self, policy: &HostPolicy, range: Range<usize>) -> BacktestResult {
        self.run_with(range, |obs| policy.act(obs))
    }

    /// `decide` gives the policy's choice and its probability for an observation.
    pub fn run_with(
        &self,
        range: Range<usize>,
        mut decide: impl FnMut(&[f32]) -> (usize, f32),
    ) -> BacktestResult {
        match &self.trading {
            Some(t) => self.simulate_traded(t, range, &mut decide),
            None => self.simulate(range, |_, obs, acct| {
                let action = decide(obs).0.min(N_ACTIONS - 1);
                (
                    action,
                    target_level(acct.level, action, self.rules.allow_short),
                )
            }),
        }
    }

    /// A rule that sets the position level directly from the bar index (baselines: buy-and-hold,
    /// momentum; the oracle). Rules have no gates: levels are only clamped to what the account
    /// allows (no shorts where not allowed).
    pub fn run_levels(
        &self,
        range: Range<usize>,
        mut level: impl FnMut(usize) -> f64,
    ) -> BacktestResult {
        let lo = if self.rules.allow_short { -1.0 } else { 0.0 };
        self.simulate(range, |t, _, _| (0, level(t).clamp(lo, 1.0)))
    }

    /// The decision bars of `range` (from where a full observation exists) and the bar after
    /// the last one, where it is marked.
    fn steps(&self, range: &Range<usize>) -> Range<usize> {
        let start = range.start.max(self.fm.first_observable(self.spec.window));
        let end = range.end.min(self.closes.len().saturating_sub(1));
        start..end.max(start)
    }

    fn start(&self, bars: Range<usize>) -> (Account, BacktestResult) {
        let acct = Account::new(&self.rules);
        let res = BacktestResult {
            equity: vec![acct.equity],
            ts: self.fm.ts.get(bars.start).copied().into_iter().collect(),
            bars,
            ..Default::default()
        };
        (acct, res)
    }

    /// A plain rule's bar loop: at each bar `decide(t, observation, account)` gives the action
    /// (counted) and the position level it asks for.
    fn simulate(
        &self,
        range: Range<usize>,
        mut decide: impl FnMut(usize, &[f32], &Account) -> (usize, f64),
    ) -> BacktestResult {
        let bars = self.steps(&range);
        let (mut acct, mut res) = self.start(bars.clone());
        let mut trips = RoundTrips::default();
        let mut obs = Vec::with_capacity(self.spec.obs_dim());
        for t in bars {
            let price = self.closes[t];
            features::observation(self.spec, self.fm, t, &acct.features(), &mut obs);
            let (action, want) = decide(t, &obs, &acct);
            res.action_counts[action] += 1;
            let before = acct.equity;
            let was = acct.qty;
            if let Some(fill) = acct.rebalance(&self.rules, want, price, 1.0) {
                res.fills.push(BacktestFill {
                    bar: t,
                    qty: fill.qty,
                    price: fill.price,
                });
            }
            trips.after_trade(&acct, was, before, &mut res.trades);
            self.mark(&mut acct, &mut res, t, before);
        }
        trips.close(&acct, &mut res.trades);
        res
    }

    /// A model's bar loop under the trading rules: the session's latches, the policy's choice
    /// through `sim::decide`, fills at the close with slippage and commission.
    fn simulate_traded(
        &self,
        tr: &TradingRules,
        range: Range<usize>,
        decide: &mut dyn FnMut(&[f32]) -> (usize, f32),
    ) -> BacktestResult {
        let bars = self.steps(&range);
        let (mut acct, mut res) = self.start(bars.clone());
        let cal = Calendar::for_class(self.class);
        let mut latches = Latches::new(acct.equity);
        let mut cooldown_until: Option<DateTime<Utc>> = None;
        let mut trips = RoundTrips::default();
        let mut obs = Vec::with_capacity(self.spec.obs_dim());
        for t in bars {
            let (price, ts) = (self.closes[t], self.fm.ts[t]);
            let before = acct.equity;
            let marked = latches.mark(cal.local_date(ts), before, tr.daily_loss_limit);
            features::observation(self.spec, self.fm, t, &acct.features(), &mut obs);
            let (action, confidence) = decide(&obs);
            let p = propose(
                tr,
                &acct,
                action,
                confidence,
                price,
                marked.drawdown,
                &mut latches.halted,
                self.rules.allow_short,
            );
            res.action_counts[p.acted] += 1;
            res.confidences.push(confidence);
            res.held_by_threshold += usize::from(p.held());
            res.risk_events += usize::from(p.risk.is_some());
            let c = Circumstances {
                symbol: String::new(),
                price,
                equity: before,
                situation: Situation {
                    equity: before,
                    buying_power: sim_buying_power(before, (acct.qty * price).abs()),
                    other_exposure: 0.0,
                    block: latches.entry_block().map(str::to_string),
                },
                cooling: cooldown_until.is_some_and(|c| ts < c),
                // The simulated broker takes a flip in one order.
                flip_in_one_order: true,
                // Fills are instant here: nothing is ever in flight, so paper's counting of
                // orders in flight sizes exactly as this does.
                in_flight: 0.0,
            };
            let was = acct.qty;
            if let Some((target, level)) = step(tr, p, acct.qty, acct.level, &c).order {
                let dq = target - acct.qty;
                if dq != 0.0 {
                    let fill = Fill {
                        qty: dq,
                        price: price * (1.0 + dq.signum() * self.rules.slippage),
                        cost: self.rules.commission,
                    };
                    acct.apply_fill(&fill);
                    res.fills.push(BacktestFill {
                        bar: t,
                        qty: dq,
                        price: fill.price,
                    });
                    cooldown_until = Some(tr.cooldown_until(ts));
                }
                acct.level = level;
                acct.mark_only(price);
            }
            trips.after_trade(&acct, was, before, &mut res.trades);
            self.mark(&mut acct, &mut res, t, before);
        }
        trips.close(&acct, &mut res.trades);
        res
    }

    /// Marks the account at the next close and records the step.
    fn mark(&self, acct: &mut Account, res: &mut BacktestResult, t: usize, before: f64) {
        acct.mark(self.closes[t + 1]);
        res.returns.push(acct.equity / before - 1.0);
        res.equity.push(acct.equity);
        res.ts.push(self.fm.ts[t + 1]);
    }
}

/// Round trips: one ends when the position goes flat or flips side; its P&L is the equity
/// change from the trade that opened it.
#[derive(Default)]
struct RoundTrips {
    start: Option<f64>,
}

impl RoundTrips {
    fn after_trade(&mut self, acct: &Account, was: f64, before: f64, trades: &mut Vec<f64>) {
        if was != 0.0 && (acct.qty == 0.0 || acct.qty.signum() != was.signum()) {
            if let Some(s) = self.start.take() {
                trades.push(acct.equity - s);
            }
        }
        if acct.qty != 0.0 && self.start.is_none() {
            self.start = Some(if was == 0.0 { before } else { acct.equity });
        }
    }

    /// An open position is closed at the last mark.
    fn close(&mut self, acct: &Account, trades: &mut Vec<f64>) {
        if let Some(s) = self.start.take() {
            trades.push(acct.equity - s);
        }
    }
}
