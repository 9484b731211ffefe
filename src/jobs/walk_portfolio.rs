//! Walk-forward for a portfolio model: its recorded universe over the configured period, folds of
//! the panel rows strictly after everything the model saw, each graded as paper trades it beside
//! equal weight, all cash and a random regime (plain, same costs); the seed's decision.

use super::ctx::{Ctx, ModelChoice};
use super::portfolio::PortfolioWorld;
use super::walkforward::{run_folds, EvalPeriod};
use crate::engine::{HostPolicy, ModelMeta};
use crate::eval::walkforward::WalkSetup;
use crate::eval::{portfolio_walk, walkforward};
use crate::sim::TradingRules;
use anyhow::{bail, Result};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use std::ops::Range;

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// The panel rows to evaluate; refuses any overlap with what the model saw, naming both ranges.
fn eval_rows(
    world: &PortfolioWorld,
    meta: &ModelMeta,
    period: &EvalPeriod,
) -> Result<Range<usize>> {
    let seen = meta.seen_until();
    let end = period.end();
    let start = match (period.from, period.days) {
        (Some(d), _) => Some(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())),
        (None, Some(n)) => {
            let last = end.or(world.panel.ts.last().copied()).unwrap_or(seen);
            Some(last - Duration::days(n as i64))
        }
        (None, None) => None,
    };
    if let Some(start) = start {
        if start <= seen {
            bail!(
                "the evaluation period from {} overlaps the bars the model saw ({}: training and checkpoint choice). \
                 Out-of-sample bars start after {}: choose --from after that, fewer --days, or extend portfolio.end",
                day(start),
                meta.seen_range(),
                day(seen)
            );
        }
    }
    let rows = world.rows_after(start.map_or(seen, |s| s - Duration::seconds(1)), end)?;
    if rows.len() < 2 {
        bail!(
            "only {} portfolio bar(s) after {}: too few to evaluate",
            rows.len(),
            day(seen)
        );
    }
    Ok(rows)
}

pub(super) fn walk_forward(
    ctx: &Ctx,
    train_run: &str,
    choice: &ModelChoice,
    policy: &HostPolicy,
    meta: &ModelMeta,
    period: &EvalPeriod,
) -> Result<String> {
    let world = PortfolioWorld::for_model(ctx, meta)?;
    if world.sha256 != meta.data_sha256
        && world.panel.ts.last().is_some_and(|&t| t <= meta.data_last)
    {
        ctx.sink.warn(format!(
            "the portfolio panel differs from the one the model trained on (hash {} then, {} now): the data was refetched, revised or re-imported since",
            &meta.data_sha256[..meta.data_sha256.len().min(12)],
            &world.sha256[..12]
        ));
    }
    let rows = eval_rows(&world, meta, period)?;
    ctx.sink.info(format!(
        "evaluating portfolio model {} ({} symbols) on {} → {} ({} bars, all after {}); baselines: equal weight, all cash, random regime",
        choice.path.display(),
        meta.portfolio.as_ref().map_or(0, |p| p.n_symbols()),
        day(world.ts(rows.start)),
        day(world.ts(rows.end - 1)),
        rows.len(),
        day(meta.seen_until())
    ));
    let rules = TradingRules::from_config(ctx.cfg);
    ctx.sink.info(format!(
        "graded as paper trades it: {}; baselines plain at the same costs",
        rules.describe_portfolio()
    ));
    let trader = world.trader(rules);
    let setup = WalkSetup {
        rules,
        momentum: None,
        gate: super::gate::latest_verdict(ctx.paths, train_run),
    };
    let (results, report) = run_folds(ctx, train_run, rows, &setup, |i, r| {
        portfolio_walk::run_portfolio_fold(&trader, policy, i, r, 999 + i as u64)
    })?;
    ctx.save_json(
        "walkforward.json",
        &json!({ "folds": results, "report": report, "rules": setup.rules, "gate": setup.gate, "model": choice.path, "portfolio": true }),
    )?;
    let mean = |f: &dyn Fn(&walkforward::FoldResult) -> f64| {
        results.iter().map(f).sum::<f64>() / results.len().max(1) as f64
    };
    let ew = |f: &walkforward::FoldResult| f.baselines.first().map_or(0.0, |b| b.total_return);
    Ok(format!(
        "{}: {}/{} folds positive, Sharpe std {:.2}; mean fold return {:+.2} % vs equal weight {:+.2} %, turnover {:.2}×; {}",
        report.decision.as_str(),
        report.positive_folds,
        report.folds,
        report.sharpe_std,
        100.0 * mean(&|f| f.total_return),
        100.0 * mean(&ew),
        mean(&|f| f.portfolio.as_ref().map_or(0.0, |p| p.turnover)),
        report.baselines_line()
    ))
}
