//! Walk-forward folds for portfolio models: the policy over each fold's rows through the `sim`
//! portfolio rules, beside equal-weight buy-and-hold (the benchmark a portfolio must beat), all
//! cash (flat) and a uniformly random regime, with the same costs and slippage draws. Each fold
//! starts a fresh account, as the single-symbol folds do, so the seed's decision rules apply.

use super::baselines::{Baseline, BaselineResult};
use super::metrics;
use super::portfolio::{evaluate, PortfolioEvaluation, PortfolioMarket, PortfolioStats};
use super::walkforward::FoldResult;
use crate::engine::HostPolicy;
use crate::rng::Rng;
use crate::sim::portfolio::{Regime, N_REGIMES};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// What a portfolio fold adds to the single-symbol figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortfolioFold {
    /// Σ value traded / portfolio value over the fold (moving everything once is 1).
    pub turnover: f64,
    /// Slippage + spread + impact paid, as a share of the fold's starting equity.
    pub costs: f64,
    pub equal_weight_turnover: f64,
    pub equal_weight_max_drawdown: f64,
    /// Share of the fold's decisions per regime, in action order.
    pub regimes: Vec<f64>,
}

fn baseline(b: Baseline, s: &PortfolioStats) -> BaselineResult {
    BaselineResult {
        baseline: b,
        total_return: s.total_return,
        sharpe: s.sharpe,
        max_drawdown: s.max_drawdown,
        equity: s.equity.clone(),
    }
}

/// One fold: `range` holds panel rows (exec bars); `seed` fixes the slippage draws that every
/// strategy of the fold shares, and the random baseline's choices.
pub fn run_portfolio_fold(
    market: PortfolioMarket<'_>,
    policy: &HostPolicy,
    fold: usize,
    range: Range<usize>,
    seed: u64,
) -> Result<FoldResult> {
    let ev: PortfolioEvaluation = evaluate(market, range.clone(), seed, |obs| policy.act(obs).0)?;
    let flat = evaluate(market, range.clone(), seed, |_| Regime::FullCash.index())?;
    let mut rng = Rng::derive(seed, "portfolio-random-baseline");
    let random = evaluate(market, range, seed, |_| rng.below(N_REGIMES))?;
    let m = &ev.model;
    let daily = metrics::daily_returns(&m.equity, &ev.ts, market.tape.class);
    let decisions = ev.actions.iter().sum::<usize>().max(1) as f64;
    Ok(FoldResult {
        fold,
        start: ev.ts.get(1).copied().unwrap_or_default(),
        end: ev.ts.last().copied().unwrap_or_default(),
        bars: ev.bars.len(),
        total_return: m.total_return,
        sharpe: m.sharpe,
        max_drawdown: m.max_drawdown,
        win_rate: m.win_rate,
        // Per day, as a portfolio is always invested somewhere: gains over losses of the days.
        profit_factor: metrics::profit_factor(&daily),
        // Decisions that were not HOLD (each may rebalance every symbol).
        trades: ev.bars.len() - ev.actions[Regime::Hold.index()],
        buy_hold_return: ev.equal_weight.total_return,
        equity: m.equity.clone(),
        baselines: vec![
            baseline(Baseline::EqualWeight, &ev.equal_weight),
            baseline(Baseline::Flat, &flat.model),
            baseline(Baseline::Random, &random.model),
        ],
        portfolio: Some(PortfolioFold {
            turnover: m.turnover,
            costs: m.costs,
            equal_weight_turnover: ev.equal_weight.turnover,
            equal_weight_max_drawdown: ev.equal_weight.max_drawdown,
            regimes: ev.actions.iter().map(|&n| n as f64 / decisions).collect(),
        }),
        held: 0,
        confidence: None,
        raw: None,
        orders: Vec::new(),
    })
}
