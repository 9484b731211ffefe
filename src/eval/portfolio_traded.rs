//! A portfolio model graded **as traded**: the panel stepped bar time by bar time exactly as a
//! simulated paper session steps it (DESIGN, principle 9). At each decided row T:
//!
//! 1. the account is marked at T's closes (a member without a bar at T — masked — at its last
//!    close): that is the session's equity before the decision;
//! 2. the latches mark it (trading day, daily loss limit, peak; the drawdown halve/halt);
//! 3. the observation ends at row T (`features::portfolio::observation`, the code the daemon's
//!    `PortfolioSlot` runs on its trailing history) with the account's actual weights as its
//!    tail; the policy picks a regime;
//! 4. `sim::portfolio::decide` — the daemon's own path — makes it orders: threshold, targets over
//!    the members eligible now, target quantities, the capital gates against the simulated
//!    broker's buying power and the members' cooldowns, sells before buys;
//! 5. each order fills at T's close × (1 ± `backtest.slippage`) + `backtest.commission`, as the
//!    simulated broker fills it.
//!
//! A range `a..b` decides the rows of `a..b` that have a bar (from the first with a full
//! lookback and window) and marks the last decision at the next row with a bar, so consecutive
//! ranges tile a period with no bar's return lost. Baselines ([`PortfolioTrader::plain`]) trade
//! the same way at the same costs without the model's rules: no threshold, drawdown rules,
//! gates or cooldowns.
//!
//! Two things the daemon does are not modelled because they cannot happen on the simulated
//! broker: an earlier order still open (its market orders fill at once), and a buy refused for
//! buying power (the gates size the batch within the buying power before the sells; sells only
//! add to it).

use super::metrics::{self, Evidence, RawFigures, ValidationMetrics};
use super::portfolio::{validation_record, PortfolioStats};
use crate::data::Panel;
use crate::engine::HostPolicy;
use crate::features::portfolio::{self, PortfolioFeatures, PortfolioSpec};
use crate::market::Calendar;
use crate::sim::gates::{sim_buying_power, Situation};
use crate::sim::portfolio::decide::{
    drawdown_latch, frozen_value, rebalance, Gates, MemberOrder, Plan, PortfolioDecision,
};
use crate::sim::portfolio::{PortfolioAccount, Regime, N_REGIMES};
use crate::sim::{Latches, TradingRules};
use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use std::ops::Range;

/// A fill of the evaluation: at row `row`'s close, `qty` signed units of member `member` at
/// `price` (slippage included).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PortfolioFill {
    pub row: usize,
    pub member: usize,
    pub qty: f64,
    pub price: f64,
}

/// One run over a range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TradedRun {
    /// The rows decided, in order, and the row the last decision is marked at.
    pub rows: Vec<usize>,
    pub mark: usize,
    /// The session's equity before each decision, then at the last mark; `ts` says when.
    pub equity: Vec<f64>,
    pub ts: Vec<DateTime<Utc>>,
    pub fills: Vec<PortfolioFill>,
    /// Regimes acted on (after the threshold), in action order.
    pub acted: [usize; N_REGIMES],
    /// Decisions the threshold turned into HOLD.
    pub held: usize,
    /// The policy's confidence at each decision (a model's run).
    pub confidences: Vec<f32>,
    /// Decisions that sent at least one order.
    pub rebalances: usize,
    /// Σ over decisions of the value traded (at the close) / the equity before.
    pub turnover: f64,
    /// Slippage and commissions paid, in currency.
    pub costs: f64,
}

impl TradedRun {
    fn initial(&self) -> f64 {
        self.equity.first().copied().unwrap_or(0.0)
    }

    pub fn total_return(&self) -> f64 {
        match (self.equity.first(), self.equity.last()) {
            (Some(a), Some(b)) if *a > 0.0 => b / a - 1.0,
            _ => 0.0,
        }
    }

    /// The figures a validation and a fold report (see `eval::portfolio`).
    pub fn stats(&self, class: crate::market::AssetClass) -> PortfolioStats {
        let daily = metrics::daily_returns(&self.equity, &self.ts, class);
        let initial = self.initial();
        PortfolioStats {
            total_return: self.total_return(),
            sharpe: metrics::sharpe(&daily, metrics::days_per_year(class)),
            max_drawdown: metrics::max_drawdown(&self.equity),
            turnover: self.turnover,
            costs: if initial > 0.0 {
                self.costs / initial
            } else {
                0.0
            },
            win_rate: metrics::win_rate(&daily),
            equity: self
                .equity
                .iter()
                .map(|e| if initial > 0.0 { e / initial } else { 1.0 })
                .collect(),
        }
    }

    /// The headline figures, as kept beside another evaluation (trades: rebalances).
    pub fn raw_figures(&self, class: crate::market::AssetClass) -> RawFigures {
        RawFigures {
            total_return: self.total_return(),
            sharpe: metrics::daily_sharpe(&self.equity, &self.ts, class),
            max_drawdown: metrics::max_drawdown(&self.equity),
            trades: self.rebalances,
        }
    }
}

/// Everything an as-traded portfolio evaluation reads besides the policy.
#[derive(Clone, Copy)]
pub struct PortfolioTrader<'a> {
    pub spec: &'a PortfolioSpec,
    pub panel: &'a Panel,
    /// The spec's features over the whole panel.
    pub features: &'a PortfolioFeatures,
    /// The rules paper trading applies (`live.*`, `backtest.*`).
    pub rules: TradingRules,
}

/// Who decides each row.
enum Choice<'c> {
    /// The model through the trading rules: (action, confidence) for an observation.
    Model(&'c mut dyn FnMut(&[f32]) -> (usize, f32)),
    /// A baseline: its regime at the k-th decision, under plain rules.
    Plain(&'c mut dyn FnMut(usize) -> Regime),
}

impl<'a> PortfolioTrader<'a> {
    /// The same rules acting on every choice of the policy (no confidence threshold).
    pub fn raw(&self) -> Self {
        PortfolioTrader {
            rules: self.rules.raw(),
            ..*self
        }
    }

    /// The model as paper trades it; `policy` gives (action, confidence) for an observation.
    pub fn run(
        &self,
        range: Range<usize>,
        mut policy: impl FnMut(&[f32]) -> (usize, f32),
    ) -> Result<TradedRun> {
        self.simulate(range, Choice::Model(&mut policy))
    }

    /// A baseline's regime per decision (`k` counts them), at the same costs, without the
    /// model's rules.
    pub fn plain(
        &self,
        range: Range<usize>,
        mut regime: impl FnMut(usize) -> Regime,
    ) -> Result<TradedRun> {
        self.simulate(range, Choice::Plain(&mut regime))
    }

    /// Equal weight bought at the first decision, then held.
    pub fn equal_weight(&self, range: Range<usize>) -> Result<TradedRun> {
        self.plain(range, |k| {
            if k == 0 {
                Regime::EqualWeight
            } else {
                Regime::Hold
            }
        })
    }

    /// A model's validation over `range`: as traded, beside equal weight, with the raw policy's
    /// figures where the rules have a threshold (training-time validation and the gate read it).
    pub fn validate(
        &self,
        policy: &HostPolicy,
        range: Range<usize>,
        chunks: usize,
        evidence: Evidence,
    ) -> Result<ValidationMetrics> {
        let class = self.panel.class;
        let run = self.run(range.clone(), |o| policy.act(o))?;
        let ew = self.equal_weight(range.clone())?;
        let mut v = validation_record(
            [&run.stats(class), &ew.stats(class)],
            &run.ts,
            &run.acted,
            run.rebalances,
            class,
            chunks,
            evidence,
        );
        if self.rules.has_portfolio_threshold() {
            v.raw = Some(self.raw().run(range, |o| policy.act(o))?.raw_figures(class));
        }
        Ok(v)
    }

    fn has_bar(&self, t: usize) -> bool {
        (0..self.panel.n_symbols()).any(|i| self.panel.is_available(t, i))
    }

    /// The rows of `range` to decide (a member has a bar; a full lookback and window behind)
    /// and the row the last one is marked at (the next with a bar).
    fn rows(&self, range: &Range<usize>) -> Result<(Vec<usize>, usize)> {
        let n = self.panel.n_bars();
        let last = (0..n).rev().find(|&t| self.has_bar(t)).unwrap_or(0);
        let lo = range.start.max(self.spec.first_exec_bar());
        let hi = range.end.min(last);
        let rows: Vec<usize> = (lo..hi).filter(|&t| self.has_bar(t)).collect();
        match (rows.is_empty(), (hi..n).find(|&t| self.has_bar(t))) {
            (false, Some(mark)) => Ok((rows, mark)),
            _ => bail!(
                "no bar to trade: the rows {}..{} of {} leave none after the {}-bar lookback and window",
                range.start,
                range.end,
                n,
                self.spec.first_exec_bar()
            ),
        }
    }

    fn simulate(&self, range: Range<usize>, mut choice: Choice) -> Result<TradedRun> {
        let (rows, mark) = self.rows(&range)?;
        let mut s = Session::new(self);
        for (k, &t) in rows.iter().enumerate() {
            s.book.mark(self.panel, t);
            s.run.equity.push(s.book.equity());
            s.run.ts.push(self.panel.ts[t]);
            let (d, plan) = match &mut choice {
                Choice::Model(policy) => s.decide(t, *policy)?,
                Choice::Plain(regime) => s.decide_plain(t, regime(k))?,
            };
            s.execute(t, &d, &plan);
        }
        s.book.mark(self.panel, mark);
        s.run.equity.push(s.book.equity());
        s.run.ts.push(self.panel.ts[mark]);
        s.run.rows = rows;
        s.run.mark = mark;
        Ok(s.run)
    }
}

/// The simulated account: cash, each member's units, and the price it is marked at.
struct Book {
    cash: f64,
    qty: Vec<f64>,
    marks: Vec<f64>,
}

impl Book {
    /// Members with a bar at `t` are marked at its close; the others keep their last price.
    fn mark(&mut self, panel: &Panel, t: usize) {
        for (i, m) in self.marks.iter_mut().enumerate() {
            if let Some(c) = panel.close(t, i) {
                *m = c;
            }
        }
    }

    fn equity(&self) -> f64 {
        self.cash
            + self
                .qty
                .iter()
                .zip(&self.marks)
                .map(|(q, p)| q * p)
                .sum::<f64>()
    }

    fn gross(&self) -> f64 {
        self.qty
            .iter()
            .zip(&self.marks)
            .map(|(q, p)| (q * p).abs())
            .sum()
    }
}

/// One run's state: the book, the session's latches and cooldowns, what was recorded.
struct Session<'t, 'a> {
    tr: &'t PortfolioTrader<'a>,
    book: Book,
    latches: Latches,
    cooldown_until: Vec<Option<DateTime<Utc>>>,
    run: TradedRun,
    obs: Vec<f32>,
    tail: Vec<f32>,
}

impl<'t, 'a> Session<'t, 'a> {
    fn new(tr: &'t PortfolioTrader<'a>) -> Self {
        let m = tr.panel.n_symbols();
        let cash = tr.rules.initial_cash;
        Session {
            tr,
            book: Book {
                cash,
                qty: vec![0.0; m],
                marks: vec![0.0; m],
            },
            latches: Latches::new(cash),
            cooldown_until: vec![None; m],
            run: TradedRun::default(),
            obs: Vec::with_capacity(tr.spec.obs_dim()),
            tail: Vec::with_capacity(tr.spec.tail_dim()),
        }
    }

    fn prices(&self, t: usize) -> Vec<Option<f64>> {
        (0..self.tr.panel.n_symbols())
            .map(|i| self.tr.panel.close(t, i))
            .collect()
    }

    fn count(&mut self, d: &PortfolioDecision) {
        self.run.acted[d.regime.index()] += 1;
        self.run.held += usize::from(d.held());
    }

    /// The model's decision at row `t`, as the daemon's rebalance makes it.
    fn decide(
        &mut self,
        t: usize,
        policy: &mut dyn FnMut(&[f32]) -> (usize, f32),
    ) -> Result<(PortfolioDecision, Plan)> {
        let (tr, rules) = (self.tr, &self.tr.rules);
        let ts = tr.panel.ts[t];
        let equity = self.book.equity();
        let day = Calendar::for_class(tr.panel.class).local_date(ts);
        let marked = self.latches.mark(day, equity, rules.daily_loss_limit);
        let (size_mult, _) = drawdown_latch(&rules.risk, marked.drawdown, &mut self.latches.halted);
        let acct = PortfolioAccount {
            cash: self.book.cash,
            qty: self.book.qty.clone(),
            equity,
            peak: self.latches.peak_equity.max(equity),
            initial: rules.initial_cash,
        };
        acct.tail(&self.book.marks, &mut self.tail);
        portfolio::observation(tr.spec, tr.features, t + 1, &self.tail, &mut self.obs);
        let (action, confidence) = policy(&self.obs);
        let d = PortfolioDecision::new(
            ts,
            action,
            confidence,
            rules.portfolio_confidence_threshold,
            tr.features.factors.row(t),
            self.prices(t),
        )?;
        self.count(&d);
        self.run.confidences.push(confidence);
        let frozen = frozen_value(&d.prices, &self.book.qty, &self.book.marks);
        let situation = Situation {
            equity,
            buying_power: sim_buying_power(equity, self.book.gross()),
            other_exposure: frozen,
            block: self.latches.entry_block().map(str::to_string),
        };
        let cooling: Vec<bool> = self
            .cooldown_until
            .iter()
            .map(|c| c.is_some_and(|c| ts < c))
            .collect();
        let gates = Gates {
            rules: &rules.capital,
            situation: &situation,
            cooling: &cooling,
            // The simulated broker takes any change in one order.
            flip_in_one_order: true,
        };
        let busy = vec![false; cooling.len()];
        let plan = rebalance(
            &d,
            &self.book.qty,
            equity - frozen,
            size_mult,
            &busy,
            Some(gates),
        );
        Ok((d, plan))
    }

    /// A baseline's regime at row `t`: its targets, no gates.
    fn decide_plain(&mut self, t: usize, regime: Regime) -> Result<(PortfolioDecision, Plan)> {
        let ts = self.tr.panel.ts[t];
        let scores = self.tr.features.factors.row(t);
        let d = PortfolioDecision::new(ts, regime.index(), 1.0, 0.0, scores, self.prices(t))?;
        self.count(&d);
        let frozen = frozen_value(&d.prices, &self.book.qty, &self.book.marks);
        let deployable = self.book.equity() - frozen;
        let busy = vec![false; d.prices.len()];
        let plan = rebalance(&d, &self.book.qty, deployable, 1.0, &busy, None);
        Ok((d, plan))
    }

    /// Fills the plan's orders at the decided closes, as the simulated broker does; a member
    /// that traded starts its cooldown.
    fn execute(&mut self, t: usize, d: &PortfolioDecision, plan: &Plan) {
        let equity = self.book.equity();
        let rules = self.tr.rules;
        let mut traded = 0.0;
        for &MemberOrder {
            member,
            target,
            price,
            ..
        } in &plan.orders
        {
            let dq = target - self.book.qty[member];
            let paid = price * (1.0 + dq.signum() * rules.slippage);
            self.book.cash -= dq * paid + rules.commission;
            self.book.qty[member] = target;
            traded += dq.abs() * price;
            self.run.costs += dq.abs() * price * rules.slippage + rules.commission;
            self.run.fills.push(PortfolioFill {
                row: t,
                member,
                qty: dq,
                price: paid,
            });
            self.cooldown_until[member] = Some(rules.cooldown_until(d.bar));
        }
        if !plan.orders.is_empty() {
            self.run.rebalances += 1;
            if equity > 0.0 {
                self.run.turnover += traded / equity;
            }
        }
    }
}

#[cfg(test)]
mod tests;
