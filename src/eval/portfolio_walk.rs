//! Walk-forward folds for portfolio models, graded as paper trading trades them
//! ([`PortfolioTrader`]: threshold, drawdown rules, capital gates, cooldowns, fills at the close
//! with the simulated broker's slippage and commission), with the raw policy's figures beside
//! where the rules have a threshold. Beside the model, plain at the same costs: equal-weight
//! buy-and-hold (the benchmark a portfolio must beat), all cash (flat) and a uniformly random
//! regime. Each fold starts a fresh account, as the single-symbol folds do; a fold's last
//! decision is marked at the next fold's first bar, so folds tile the period.

use super::baselines::{Baseline, BaselineResult};
use super::metrics;
use super::portfolio::PortfolioStats;
use super::portfolio_traded::PortfolioTrader;
use super::walkforward::{FoldOrder, FoldResult};
use crate::engine::HostPolicy;
use crate::rng::Rng;
use crate::sim::portfolio::{Regime, N_REGIMES};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// What a portfolio fold adds to the single-symbol figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortfolioFold {
    /// Σ over decisions of the value traded / the equity before (moving everything once is 1).
    pub turnover: f64,
    /// Slippage + commissions paid, as a share of the fold's starting equity.
    pub costs: f64,
    pub equal_weight_turnover: f64,
    pub equal_weight_max_drawdown: f64,
    /// Share of the fold's decisions per regime acted on (after the threshold), in action order.
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

/// One fold: `range` holds panel rows; `seed` fixes the random baseline's choices.
pub fn run_portfolio_fold(
    trader: &PortfolioTrader,
    policy: &HostPolicy,
    fold: usize,
    range: Range<usize>,
    seed: u64,
) -> Result<FoldResult> {
    let class = trader.panel.class;
    let run = trader.run(range.clone(), |o| policy.act(o))?;
    let ew = trader.equal_weight(range.clone())?.stats(class);
    let flat = trader
        .plain(range.clone(), |_| Regime::FullCash)?
        .stats(class);
    let mut rng = Rng::derive(seed, "portfolio-random-baseline");
    let random = trader
        .plain(range.clone(), |_| {
            Regime::from_index(rng.below(N_REGIMES)).unwrap_or(Regime::Hold)
        })?
        .stats(class);
    let raw = if trader.rules.has_portfolio_threshold() {
        Some(
            trader
                .raw()
                .run(range, |o| policy.act(o))?
                .raw_figures(class),
        )
    } else {
        None
    };
    let m = run.stats(class);
    let daily = metrics::daily_returns(&run.equity, &run.ts, class);
    let decisions = run.rows.len().max(1) as f64;
    let panel = trader.panel;
    Ok(FoldResult {
        fold,
        start: run.ts.first().copied().unwrap_or_default(),
        // The bar the fold's last decision is marked at (the next fold's first).
        end: run.ts.last().copied().unwrap_or_default(),
        bars: run.rows.len(),
        total_return: m.total_return,
        sharpe: m.sharpe,
        max_drawdown: m.max_drawdown,
        win_rate: m.win_rate,
        // Per day, as a portfolio is always invested somewhere: gains over losses of the days.
        profit_factor: metrics::profit_factor(&daily),
        // Decisions that sent orders (each may rebalance every member).
        trades: run.rebalances,
        buy_hold_return: ew.total_return,
        equity: m.equity.clone(),
        baselines: vec![
            baseline(Baseline::EqualWeight, &ew),
            baseline(Baseline::Flat, &flat),
            baseline(Baseline::Random, &random),
        ],
        portfolio: Some(PortfolioFold {
            turnover: m.turnover,
            costs: m.costs,
            equal_weight_turnover: ew.turnover,
            equal_weight_max_drawdown: ew.max_drawdown,
            regimes: run.acted.iter().map(|&n| n as f64 / decisions).collect(),
        }),
        held: run.held,
        confidence: metrics::confidence_quantiles(&run.confidences),
        raw,
        orders: run
            .fills
            .iter()
            .map(|f| FoldOrder {
                ts: panel.ts[f.row],
                symbol: panel.symbols[f.member].name.clone(),
                qty: f.qty,
                price: f.price,
            })
            .collect(),
    })
}
