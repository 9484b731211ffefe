//! The gate's baseline check: the graded checkpoint, as paper trading trades it, beside
//! momentum (spans fitted on the training bars) and buy-and-hold — plain rules at the same
//! sizing and costs — on the validation bars the checkpoint was chosen on (and, where the record
//! was chained from drawn validation paths, on the same paths after them). A portfolio run is
//! held against equal weight, which its validation record already carries: the model as paper
//! trades it, equal weight plain at the same costs (`eval::portfolio_traded`).

use super::ctx::{Ctx, Evaluated, ModelChoice};
use super::RunDir;
use crate::engine::checkpoint::read_meta;
use crate::engine::drawn::{self, DrawnPath};
use crate::engine::prune::checkpoint_path;
use crate::eval::gate::BaselineCheck;
use crate::eval::portfolio::{PortfolioBlock, PortfolioFigures};
use crate::eval::{
    BacktestResult, Backtester, Baseline, MomentumRule, RawFigures, ValidationMetrics,
};
use crate::features;
use crate::sim::decide::shorts_allowed;
use crate::sim::TradingRules;
use anyhow::Result;
use std::ops::Range;
use std::path::PathBuf;

/// The check for the graded validation `v` of `train_run`, or `None` (with the reason) when
/// there is nothing to compare: no validation, or the graded checkpoint's file is gone.
pub(super) fn baseline_check(
    ctx: &Ctx,
    train_run: &str,
    v: &ValidationMetrics,
) -> Result<Result<BaselineCheck, String>> {
    if let Some(b) = &v.portfolio {
        return Ok(Ok(portfolio_check(v, b)));
    }
    let dir = RunDir::open(ctx.paths, train_run)?;
    let Some(path) = graded_file(&dir, v.update) else {
        return Ok(Err(format!(
            "no model file of update {} is left in {} (pruned): no baseline comparison",
            v.update,
            dir.path.display()
        )));
    };
    let choice = ModelChoice {
        why: format!("the graded checkpoint (update {})", v.update),
        path,
        interrupted: false,
    };
    let ev = ctx.load_evaluated_choice(choice)?;
    let (Some(first), Some(last)) = (ev.meta.val_first, ev.meta.val_last) else {
        return Ok(Err("the model records no validation range".into()));
    };
    let at = |t| ev.bars.partition_point(|b| b.ts < t);
    let after = |t| ev.bars.partition_point(|b| b.ts <= t);
    let (val, train) = (
        at(first)..after(last),
        at(ev.meta.train_first)..after(ev.meta.train_last),
    );
    let fm = features::compute(&ev.spec, &ev.symbol, &ev.bars, &ctx.events);
    let closes: Vec<f64> = ev.bars.iter().map(|b| b.close).collect();
    let rules = TradingRules::from_config(ctx.cfg);
    let short = shorts_allowed(ctx.cfg, ev.symbol.class);
    let bt = Backtester::as_traded(&ev.spec, &fm, &closes, ev.symbol.class, &rules, short);
    // The same ranges the record was scored on: the stored one, then its drawn validation paths.
    let drawn = drawn_paths(ctx, &ev, v.drawn_paths, val.end)?;
    let parts: Vec<_> = std::iter::once((bt, val.clone()))
        .chain(drawn.iter().map(|p| (bt.on(&p.fm, &p.closes), val.clone())))
        .collect();
    let g = &ctx.cfg.gating;
    let m = crate::eval::validate_on(&parts, &ev.policy, g.consistency_chunks, g.evidence());
    let momentum = MomentumRule::fit(&bt, train);
    let class = ev.symbol.class;
    let chained = |rule: &dyn Fn(&Backtester, Range<usize>) -> BacktestResult| {
        let runs = parts.iter().map(|(b, r)| rule(b, r.clone())).collect();
        BacktestResult::chain(runs).raw_figures(class)
    };
    let baselines = vec![
        (Baseline::Momentum, chained(&|b, r| momentum.run(b, r))),
        (
            Baseline::BuyHold,
            chained(&|b, r| b.plain().run_levels(r, |_| 1.0)),
        ),
    ];
    let model = RawFigures {
        total_return: m.total_return,
        sharpe: m.sharpe,
        max_drawdown: m.max_drawdown,
        trades: m.trades,
    };
    Ok(Ok(BaselineCheck::new(
        model,
        m.raw,
        baselines,
        Some(momentum),
        format!(
            "{} re-run on the validation bars{} as paper trades it",
            ev.choice.path.display(),
            match drawn.len() {
                0 => String::new(),
                n => format!(" and {n} drawn validation paths"),
            }
        ),
    )))
}

/// A portfolio run's check: model against equal weight, both from its validation record.
fn portfolio_check(v: &ValidationMetrics, b: &PortfolioBlock) -> BaselineCheck {
    let fig = |f: &PortfolioFigures| RawFigures {
        total_return: f.total_return,
        sharpe: f.sharpe,
        max_drawdown: f.max_drawdown,
        trades: 0,
    };
    BaselineCheck::new(
        fig(&b.model),
        v.raw,
        vec![(Baseline::EqualWeight, fig(&b.equal_weight))],
        None,
        format!("the validation record of update {}", v.update),
    )
}

/// The `n` drawn validation paths a record was chained from (`synthetic.validation_paths` when
/// it was scored), drawn again from the configuration: none when `n` is 0.
fn drawn_paths(ctx: &Ctx, ev: &Evaluated, n: usize, val_end: usize) -> Result<Vec<DrawnPath>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut cfg = ctx.cfg.clone();
    cfg.synthetic.validation_paths = n;
    let available = crate::data::budget::mem_available().map_or(4e9, |b| b as f64);
    let (spec, sym) = (&ev.spec, &ev.symbol);
    drawn::validation_paths(&cfg, sym, spec, &ctx.events, &ev.bars, val_end, available)
}

/// The model file of a run's update: its periodic checkpoint, else `best.safetensors` or
/// `model.safetensors` when they hold that update.
fn graded_file(dir: &RunDir, update: usize) -> Option<PathBuf> {
    let periodic = checkpoint_path(&dir.path, update);
    if periodic.exists() {
        return Some(periodic);
    }
    ["best.safetensors", "model.safetensors"]
        .into_iter()
        .map(|n| dir.artifact(n))
        .find(|p| read_meta(p).is_ok_and(|m| m.update == update))
}
