//! A portfolio policy under the **training env's frictions**: run over a bar range through the
//! `sim` portfolio tape ("observe T−1, execute at T's open", random slippage draws, spread,
//! square-root impact; no threshold, drawdown rules or capital gates) beside **equal-weight
//! buy-and-hold** with the same costs and slippage draws. This is what the policy was trained
//! on — the learning bench reads it. Verdicts (validation, gate, walk-forward) grade the model as
//! paper trading trades it instead: [`super::portfolio_traded`]. The figures and the validation
//! record below are shared by both.
//!
//! Figures, for the model and equal weight:
//! - **total return**: final equity / initial − 1;
//! - **Sharpe**: from daily returns, annualised as [`super::metrics`] does (√252 for equities);
//! - **max drawdown**: largest peak-to-trough fall of the equity curve;
//! - **turnover**: Σ over steps of the value traded / the portfolio value (buys and sells both
//!   count; moving everything from cash into stocks is 1);
//! - **costs**: what trading paid (here slippage + spread + impact; as traded, slippage +
//!   commissions), as a share of the initial equity;
//! - **win rate**: share of days with a positive return.
//!
//! The model's choices are counted per regime (an action histogram over the 12).
//!
//! As a validation ([`validation_record`]), the single-symbol metrics are read from the model's
//! **daily returns**, each day standing for a trade:
//! - **profit factor** = sum of the up days' returns / −sum of the down days' ([`metrics::PF_CAP`]
//!   without a down day, 0 without an up day);
//! - **win rate** = share of up days;
//! - **consistency** = share of equal slices of the equity curve that end higher (as for one
//!   symbol);
//! - **trades** = rebalancing decisions (here every step whose regime is not HOLD; as traded,
//!   every decision that sent an order); **hold %** = the HOLD steps' share;
//! - **days** = the sessions evaluated; fitness as for one symbol. The small-sample rule is the
//!   same: fewer than `min_trades` rebalances or `min_days` days is insufficient (never scored),
//!   so a policy that never leaves cash cannot become a best checkpoint.

use super::metrics::{self, Evidence, ValidationMetrics};
use crate::features::portfolio::{self, PortfolioFeatures, PortfolioSpec};
use crate::rng::Rng;
use crate::sim::portfolio::{PortfolioAccount, PortfolioRules, Regime, Tape, N_REGIMES};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// One strategy's figures over the evaluated bars (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortfolioStats {
    pub total_return: f64,
    pub sharpe: f64,
    pub max_drawdown: f64,
    pub turnover: f64,
    pub costs: f64,
    pub win_rate: f64,
    /// Equity relative to the start: the start, then one point per bar.
    pub equity: Vec<f64>,
}

/// One strategy's headline figures (no equity curve), as a validation record keeps them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortfolioFigures {
    pub total_return: f64,
    pub sharpe: f64,
    pub max_drawdown: f64,
    pub turnover: f64,
    pub costs: f64,
    pub win_rate: f64,
}

impl From<&PortfolioStats> for PortfolioFigures {
    fn from(s: &PortfolioStats) -> Self {
        PortfolioFigures {
            total_return: s.total_return,
            sharpe: s.sharpe,
            max_drawdown: s.max_drawdown,
            turnover: s.turnover,
            costs: s.costs,
            win_rate: s.win_rate,
        }
    }
}

/// How often a regime was chosen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegimeShare {
    pub regime: String,
    pub steps: usize,
    pub share: f64,
}

/// A portfolio validation's own block: the model beside equal weight, and its regimes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortfolioBlock {
    pub model: PortfolioFigures,
    pub equal_weight: PortfolioFigures,
    /// In action-index order, all 12.
    pub regimes: Vec<RegimeShare>,
}

/// A policy beside equal-weight buy-and-hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortfolioEvaluation {
    /// Exec bars evaluated (rows of the panel).
    pub bars: Range<usize>,
    /// Time of each equity point: the close before the first bar, then each bar.
    pub ts: Vec<DateTime<Utc>>,
    pub model: PortfolioStats,
    pub equal_weight: PortfolioStats,
    /// How often the policy chose each regime, in action-index order.
    pub actions: [usize; N_REGIMES],
    /// Mean reward per step (the env's reward: log return × scale), for the composite score.
    pub mean_reward: f64,
}

impl PortfolioEvaluation {
    /// The histogram as (regime name, share of steps).
    pub fn action_shares(&self) -> Vec<(&'static str, f64)> {
        let total = self.actions.iter().sum::<usize>().max(1) as f64;
        Regime::ALL
            .iter()
            .map(|r| (r.name(), self.actions[r.index()] as f64 / total))
            .collect()
    }

    /// The evaluation as a validation record (definitions in the module docs).
    pub fn validation_metrics(
        &self,
        class: crate::market::AssetClass,
        chunks: usize,
        evidence: Evidence,
    ) -> ValidationMetrics {
        let steps = self.actions.iter().sum::<usize>();
        let trades = steps - self.actions[Regime::Hold.index()];
        validation_record(
            [&self.model, &self.equal_weight],
            &self.ts,
            &self.actions,
            trades,
            class,
            chunks,
            evidence,
        )
    }

    /// Model return minus equal-weight return.
    pub fn excess_return(&self) -> f64 {
        self.model.total_return - self.equal_weight.total_return
    }
}

/// A portfolio validation record from the model's and equal weight's figures (`stats`), the
/// regimes acted on and the count of `trades` (definitions in the module docs); `ts` times the
/// equity points.
pub(super) fn validation_record(
    stats: [&PortfolioStats; 2],
    ts: &[DateTime<Utc>],
    actions: &[usize; N_REGIMES],
    trades: usize,
    class: crate::market::AssetClass,
    chunks: usize,
    evidence: Evidence,
) -> ValidationMetrics {
    let [m, ew] = stats;
    let daily = metrics::daily_returns(&m.equity, ts, class);
    let steps = actions.iter().sum::<usize>();
    let holds = actions[Regime::Hold.index()];
    let days = daily.len();
    let regimes = Regime::ALL
        .iter()
        .map(|r| RegimeShare {
            regime: r.name().to_string(),
            steps: actions[r.index()],
            share: actions[r.index()] as f64 / steps.max(1) as f64,
        })
        .collect();
    ValidationMetrics {
        update: 0,
        profit_factor: metrics::profit_factor(&daily),
        sharpe: m.sharpe,
        max_drawdown: m.max_drawdown,
        fitness: metrics::fitness(m.sharpe, m.max_drawdown),
        consistency: metrics::consistency(&m.equity, chunks),
        total_return: m.total_return,
        hold_pct: holds as f64 / steps.max(1) as f64,
        trades,
        days,
        insufficient: trades < evidence.min_trades || days < evidence.min_days,
        win_rate: Some(m.win_rate),
        portfolio: Some(Box::new(PortfolioBlock {
            model: m.into(),
            equal_weight: ew.into(),
            regimes,
        })),
        raw: None,
        drawn_paths: 0,
    }
}

/// Everything an evaluation reads.
#[derive(Clone, Copy)]
pub struct PortfolioMarket<'a> {
    pub spec: &'a PortfolioSpec,
    pub features: &'a PortfolioFeatures,
    pub tape: &'a Tape,
    pub rules: PortfolioRules,
}

/// Runs `policy` (observation → regime index) over the exec bars `range` (clipped to where a
/// full observation exists), and equal-weight buy-and-hold beside it. `seed` fixes the slippage
/// draws, which both strategies share. An action outside the 12 regimes is an error.
pub fn evaluate(
    market: PortfolioMarket<'_>,
    range: Range<usize>,
    seed: u64,
    mut policy: impl FnMut(&[f32]) -> usize,
) -> Result<PortfolioEvaluation> {
    let PortfolioMarket {
        spec,
        features,
        tape,
        rules,
    } = market;
    let bars = tape.exec_range(spec.first_exec_bar(), range)?;
    let mut ts = vec![tape.ts[bars.start - 1]];
    ts.extend_from_slice(&tape.ts[bars.clone()]);

    let mut actions = [0usize; N_REGIMES];
    let mut obs = Vec::with_capacity(spec.obs_dim());
    let mut tail = Vec::with_capacity(spec.tail_dim());
    let mut reward_sum = 0.0;
    let model = run(
        tape,
        &rules,
        bars.clone(),
        seed,
        |acct, t| {
            acct.tail(tape.marks(t - 1), &mut tail);
            portfolio::observation(spec, features, t, &tail, &mut obs);
            let a = policy(&obs);
            if let Some(slot) = actions.get_mut(a) {
                *slot += 1;
            }
            a
        },
        |r| reward_sum += r,
    )
    .context("evaluating the portfolio policy")?;
    let first = bars.start;
    let equal_weight = run(
        tape,
        &rules,
        bars.clone(),
        seed,
        |_, t| {
            if t == first {
                Regime::EqualWeight.index()
            } else {
                Regime::Hold.index()
            }
        },
        |_| {},
    )?;
    let steps = bars.len() as f64;
    Ok(PortfolioEvaluation {
        model: summarise(model, &ts, tape),
        equal_weight: summarise(equal_weight, &ts, tape),
        bars,
        ts,
        actions,
        mean_reward: reward_sum / steps,
    })
}

/// What one pass recorded.
struct Pass {
    equity: Vec<f64>,
    traded: f64,
    costs: f64,
    initial: f64,
}

fn run(
    tape: &Tape,
    rules: &PortfolioRules,
    bars: Range<usize>,
    seed: u64,
    mut choose: impl FnMut(&PortfolioAccount, usize) -> usize,
    mut on_reward: impl FnMut(f64),
) -> Result<Pass> {
    let mut acct = PortfolioAccount::new(rules, tape.n_symbols);
    let mut rng = Rng::derive(seed, "portfolio-eval-slippage");
    let mut draws = vec![0.0; tape.n_symbols];
    let mut pass = Pass {
        equity: vec![acct.equity],
        traded: 0.0,
        costs: 0.0,
        initial: acct.equity,
    };
    for t in bars {
        let a = choose(&acct, t);
        rules.frictions.draw_slippage(&mut rng, &mut draws);
        let out = tape
            .step(&mut acct, rules, t, a, &draws)
            .with_context(|| format!("at bar {t} ({})", tape.ts[t]))?;
        if let Some(r) = &out.rebalance {
            if r.value_before > 0.0 {
                pass.traded += r.traded / r.value_before;
            }
            pass.costs += r.cost.total();
        }
        on_reward(out.reward);
        pass.equity.push(out.equity);
    }
    Ok(pass)
}

fn summarise(pass: Pass, ts: &[DateTime<Utc>], tape: &Tape) -> PortfolioStats {
    let daily = metrics::daily_returns(&pass.equity, ts, tape.class);
    let last = pass.equity.last().copied().unwrap_or(pass.initial);
    PortfolioStats {
        total_return: last / pass.initial - 1.0,
        sharpe: metrics::sharpe(&daily, metrics::days_per_year(tape.class)),
        max_drawdown: metrics::max_drawdown(&pass.equity),
        turnover: pass.traded,
        costs: pass.costs / pass.initial,
        win_rate: metrics::win_rate(&daily),
        equity: pass.equity.iter().map(|e| e / pass.initial).collect(),
    }
}

#[cfg(test)]
mod tests;
