//! The walk-forward job: backtests a trained policy on consecutive out-of-sample folds — bars
//! strictly after everything the model saw — and makes the deployment decision.

use super::ctx::Ctx;
use super::{Event, JobSummary};
use crate::engine::HostPolicy;
use crate::eval::{walkforward, Backtester, DecisionReport};
use crate::features;
use crate::sim::{RiskRules, Rules};
use anyhow::{bail, Result};
use serde_json::json;

pub(super) fn walk_forward(ctx: &Ctx, train_run: &str) -> Result<String> {
    let ev = ctx.load_evaluated(train_run)?;
    let sym = ev.symbol.clone();
    let fm = features::compute(&ev.spec, &sym, &ev.bars, &ctx.events);
    let closes: Vec<f64> = ev.bars.iter().map(|b| b.close).collect();
    let ts: Vec<_> = ev.bars.iter().map(|b| b.ts).collect();
    let test = ev.first_unseen()..ev.bars.len();
    if test.len() < 2 {
        bail!(
            "no out-of-sample bars: the store's {sym} bars end {} and the model saw everything up to {}; fetch newer bars first",
            ev.bars.last().map(|b| b.ts.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default(),
            ev.meta.seen_until().format("%Y-%m-%d %H:%M")
        );
    }
    let policy = HostPolicy::from_model(&ev.model)?;
    let rules = Rules::backtest(&ctx.cfg.backtest, &ctx.cfg.env, sym.class);
    let bt = Backtester {
        spec: &ev.spec,
        fm: &fm,
        closes: &closes,
        rules,
        risk: Some(RiskRules::from(&ctx.cfg.backtest)),
    };
    let bpy = ev.meta.timeframe.bars_per_year(sym.class);
    let ranges = walkforward::folds(test, ctx.cfg.walk_forward.folds);
    let mut results = Vec::new();
    for (i, r) in ranges.iter().enumerate() {
        if ctx.cancel.is_cancelled() {
            break;
        }
        let f = walkforward::run_fold(&bt, &policy, i + 1, r.clone(), &ts, bpy);
        ctx.sink.emit(Event::Fold(f.clone()));
        ctx.sink.emit(Event::Progress {
            done: i as u64 + 1,
            total: ranges.len() as u64,
            message: format!("fold {}", i + 1),
        });
        results.push(f);
    }
    let (decision, positive, std) =
        walkforward::decide(&results, ctx.cfg.walk_forward.max_sharpe_std);
    let report = DecisionReport {
        decision,
        positive_folds: positive,
        folds: results.len(),
        sharpe_std: std,
    };
    ctx.sink.emit(Event::Decision(report.clone()));
    ctx.save_json(
        "walkforward.json",
        &json!({ "folds": results, "report": report }),
    )?;
    ctx.set_summary(JobSummary::WalkForward {
        train_run: train_run.to_string(),
        report,
    })?;
    Ok(format!(
        "{}: {positive}/{} folds positive, Sharpe std {std:.2}",
        decision.as_str(),
        results.len()
    ))
}
