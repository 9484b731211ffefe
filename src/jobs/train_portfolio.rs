//! The portfolio training job (`train --portfolio`): one policy over the configured universe,
//! trained by the same PPO as a single symbol on the portfolio env, validated every few updates
//! as paper trading trades it (`eval::portfolio_traded`) against equal-weight buy-and-hold on the
//! validation rows, the rows after them left out of sample. A resumed portfolio run continues from its training state like any other.

use super::ctx::Ctx;
use super::portfolio::PortfolioWorld;
use super::resume::ResumePoint;
use super::rundir::DataRef;
use super::train::{record_data, record_outcome, saved_note, sized_for, JobObserver, Judge};
use super::LogLevel;
use crate::engine::ppo::{self, PortfolioTrainData};
use crate::engine::{self, HostPolicy};
use crate::eval::ValidationMetrics;
use crate::sim::portfolio::N_REGIMES;
use crate::sim::TradingRules;
use anyhow::Result;
use std::ops::Range;

/// What a portfolio run is called in its label and its model files' `symbol`.
pub const PORTFOLIO_LABEL: &str = "portfolio";

pub(super) fn train(ctx: &Ctx) -> Result<String> {
    run(ctx, None)
}

pub(super) fn resume(ctx: &Ctx, point: &ResumePoint) -> Result<String> {
    run(ctx, Some(point))
}

fn run(ctx: &Ctx, resumed: Option<&ResumePoint>) -> Result<String> {
    let device = engine::device::select(&ctx.cfg.ppo.device)?;
    let world = PortfolioWorld::configured(ctx)?;
    let n = world.n_bars();
    record_data(ctx, resumed, || DataRef {
        symbol: format!("{PORTFOLIO_LABEL} [{}]", world.spec.symbols.join(",")),
        timeframe: world.spec.timeframe.to_string(),
        source: world.source.clone(),
        bars: n,
        first: world.panel.ts.first().copied(),
        last: world.panel.ts.last().copied(),
        sha256: world.sha256.clone(),
    })?;
    let cfg = &sized_for(ctx, &device, world.spec.obs_dim(), N_REGIMES)?;
    let (train_rows, val_rows) = ppo::split(n, cfg.data.train_split, cfg.data.validation_split);
    announce(ctx, cfg, &world, &device, &train_rows, &val_rows);
    let data = PortfolioTrainData {
        name: PORTFOLIO_LABEL.to_string(),
        source: world.source.clone(),
        sha256: world.sha256.clone(),
        spec: world.spec.clone(),
        features: world.features.clone(),
        tape: world.tape.clone(),
        rules: world.rules,
        train: train_rows,
        validation: val_rows.clone(),
    };
    // Validation grades the policy as paper trading trades it, beside equal weight (plain, same
    // costs); the env's frictions are training's reward only.
    let trader = world.trader(TradingRules::from_config(ctx.cfg));
    let gating = cfg.gating.clone();
    let judge: Judge = Box::new(move |policy: &HostPolicy| {
        trader.validate(
            policy,
            val_rows.clone(),
            gating.consistency_chunks,
            gating.evidence(),
        )
    });
    let mut obs = JobObserver::open(ctx, judge, resumed)?;
    let out_dir = ctx.dir().path.clone();
    let outcome = match resumed {
        None => ppo::train_portfolio(cfg, &data, &device, &out_dir, &mut obs)?,
        Some(point) => {
            ppo::resume_portfolio(cfg, &data, &device, &out_dir, &mut obs, &point.state)?
        }
    };
    let last = record_outcome(ctx, &mut obs, PORTFOLIO_LABEL.to_string(), &outcome)?;
    Ok(outcome_message(&outcome, last.as_ref()))
}

/// Says what a portfolio run is about to train: its universe, row split and optimizers.
fn announce(
    ctx: &Ctx,
    cfg: &crate::config::Config,
    world: &PortfolioWorld,
    device: &candle_core::Device,
    train_rows: &Range<usize>,
    val_rows: &Range<usize>,
) {
    let p = &cfg.ppo;
    let n = world.n_bars();
    ctx.sink.info(format!(
        "training a portfolio policy over {} symbols ({}, {n} bars: {} train, {} validation, {} out of sample) on {} — {} updates of {} steps, layout {}",
        world.spec.n_symbols(),
        world.source,
        train_rows.len(),
        val_rows.len(),
        n - val_rows.end,
        engine::device::describe(device),
        p.updates(),
        p.steps_per_update(),
        world.spec.describe()
    ));
    ctx.sink.log(
        LogLevel::Debug,
        format!(
            "optimizers: actor lr {:e}, critic lr {:e}; {} PPO epochs + {} critic-only epochs; 12 regime actions; episodes of {} steps",
            p.actor_lr, p.critic_lr, p.epochs, p.critic_epochs, cfg.portfolio.episode_len
        ),
    );
}

/// The portfolio run's closing line, with the last validation beside equal weight.
fn outcome_message(outcome: &ppo::TrainOutcome, last: Option<&ValidationMetrics>) -> String {
    let vs = last
        .and_then(|v| v.portfolio.as_ref())
        .map(|b| {
            format!(
                "; last validation {:+.2} % vs equal weight {:+.2} %",
                b.model.total_return * 100.0,
                b.equal_weight.total_return * 100.0
            )
        })
        .unwrap_or_default();
    format!(
        "{} updates, {} steps at {:.0} steps/s; portfolio model saved{}{vs}",
        outcome.updates_done,
        outcome.timesteps,
        outcome.sps,
        saved_note(outcome)
    )
}
