//! The walk-forward job: backtests a trained policy on consecutive out-of-sample folds — bars
//! strictly after everything the model saw — beside the baselines, and makes the deployment
//! decision. The period is the model's unseen bars by default, or what the user chooses
//! (`--days N`, `--from/--to`), refreshed from the data source first when it lies beyond the store.

use super::ctx::{Ctx, Evaluated};
use super::{Event, JobSummary};
use crate::config::DataSource;
use crate::data::Store;
use crate::eval::walkforward::WalkSetup;
use crate::eval::{walkforward, Backtester, GateClass, MomentumRule};
use crate::features;
use crate::sim::decide::shorts_allowed;
use crate::sim::TradingRules;
use anyhow::{bail, Result};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde_json::json;
use std::ops::Range;

/// Which bars to evaluate on. Empty: every bar after what the model saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvalPeriod {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// The last N calendar days up to `to` (or the newest bar).
    pub days: Option<u32>,
}

impl EvalPeriod {
    pub(super) fn end(&self) -> Option<DateTime<Utc>> {
        self.to
            .and_then(|d| d.and_hms_opt(23, 59, 59))
            .map(|t| Utc.from_utc_datetime(&t))
    }
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// Makes sure the store covers the period's end: Alpaca bars are refreshed, the synthetic market
/// is extended (it is generated from its start, so the stored prefix stays identical).
fn ensure_coverage(ctx: &Ctx, ev: &mut Evaluated, period: &EvalPeriod) -> Result<()> {
    let Some(end) = period.end() else {
        return Ok(());
    };
    if ev.bars.last().is_some_and(|b| b.ts >= end) {
        return Ok(());
    }
    let to = period.to.map(|d| d.to_string()).unwrap_or_default();
    let mut cfg = ctx.cfg.clone();
    cfg.data.end = to.clone();
    cfg.data.timeframe = ev.meta.timeframe;
    match ctx.cfg.data.source {
        DataSource::Alpaca => {
            ctx.sink
                .info(format!("refreshing {} from Alpaca up to {to}", ev.symbol));
            let sub = Ctx {
                cfg: &cfg,
                events: ctx.events.clone(),
                ..*ctx
            };
            super::fetch::fetch(&sub, std::slice::from_ref(&ev.symbol.name))?;
        }
        DataSource::Synthetic => {
            ctx.sink.info(format!(
                "extending the synthetic {} market to {to}",
                ev.symbol
            ));
            crate::data::generate_synthetic(&cfg, &Store::new(&ctx.paths.data), &ev.symbol)?;
        }
        DataSource::Store => {
            ctx.sink.warn(format!(
                "the store's {} bars end {}; data.source = \"store\" cannot fetch more",
                ev.symbol,
                ev.bars.last().map(|b| day(b.ts)).unwrap_or_default()
            ));
            return Ok(());
        }
    }
    ev.bars = Store::new(&ctx.paths.data).read(&ev.symbol, ev.meta.timeframe)?;
    Ok(())
}

/// The bar range to evaluate; refuses any overlap with what the model saw, naming both ranges.
fn eval_range(ev: &Evaluated, period: &EvalPeriod) -> Result<Range<usize>> {
    let bars = &ev.bars;
    let (Some(first), Some(last)) = (bars.first(), bars.last()) else {
        bail!("no stored {} bars", ev.symbol);
    };
    let seen = ev.meta.seen_until();
    let end = period.end().unwrap_or(last.ts);
    let start = match (period.from, period.days) {
        (Some(d), _) => Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()),
        (None, Some(n)) => end - Duration::days(n as i64),
        (None, None) => seen + Duration::seconds(1),
    };
    if start > end {
        bail!(
            "the period starts ({}) after it ends ({})",
            day(start),
            day(end)
        );
    }
    if start <= seen {
        bail!(
            "the evaluation period {} → {} overlaps the bars the model saw ({}: training and checkpoint choice). \
             Out-of-sample bars start after {}: choose --from after that, fewer --days, or fetch newer bars",
            day(start.max(first.ts)),
            day(end),
            ev.meta.seen_range(),
            day(seen)
        );
    }
    let lo = bars.partition_point(|b| b.ts < start);
    let hi = bars.partition_point(|b| b.ts <= end);
    if hi < lo + 2 {
        bail!(
            "no stored {} bars between {} and {} (the store holds {} → {}): fetch them first",
            ev.symbol,
            day(start),
            day(end),
            day(first.ts),
            day(last.ts)
        );
    }
    Ok(lo..hi)
}

pub(super) fn walk_forward(ctx: &Ctx, train_run: &str, period: &EvalPeriod) -> Result<String> {
    let choice = super::ctx::resolve_model(ctx.paths, train_run)?;
    let (policy, meta) = crate::engine::load_policy(&choice.path)?;
    if meta.portfolio.is_some() {
        return super::walk_portfolio::walk_forward(
            ctx, train_run, &choice, &policy, &meta, period,
        );
    }
    let mut ev = ctx.load_evaluated(train_run)?;
    ensure_coverage(ctx, &mut ev, period)?;
    let test = eval_range(&ev, period)?;
    let sym = ev.symbol.clone();
    let fm = features::compute(&ev.spec, &sym, &ev.bars, &ctx.events);
    let closes: Vec<f64> = ev.bars.iter().map(|b| b.close).collect();
    let ts: Vec<_> = ev.bars.iter().map(|b| b.ts).collect();
    let policy = &ev.policy;
    // The rules paper trading applies; the baselines trade plain at the same sizing and costs.
    let rules = TradingRules::from_config(ctx.cfg);
    let short = shorts_allowed(ctx.cfg, sym.class);
    let bt = Backtester::as_traded(&ev.spec, &fm, &closes, sym.class, &rules, short);
    // The momentum baseline's spans come from the training bars only.
    let train = ev.bars.partition_point(|b| b.ts < ev.meta.train_first)
        ..ev.bars.partition_point(|b| b.ts <= ev.meta.train_last);
    let momentum = MomentumRule::fit(&bt, train);
    ctx.sink.info(format!(
        "evaluating {sym} on {} → {} ({} bars, all after {}) as paper trades it: {}; baselines plain at the same size and costs, momentum EMA {}/{} fitted on the training bars",
        day(ts[test.start]),
        day(ts[test.end - 1]),
        test.len(),
        day(ev.meta.seen_until()),
        rules.describe(),
        momentum.fast,
        momentum.slow
    ));
    let setup = WalkSetup {
        rules,
        momentum: Some(momentum),
        gate: super::gate::latest_verdict(ctx.paths, train_run),
    };
    let (results, report) = run_folds(ctx, train_run, test, &setup, |i, r| {
        Ok(walkforward::run_fold(&bt, policy, i, r, &ts, momentum))
    })?;
    ctx.save_json(
        "walkforward.json",
        &json!({
            "folds": results,
            "report": report,
            "rules": setup.rules,
            "momentum": momentum,
            "gate": setup.gate,
            "model": ev.choice.path,
        }),
    )?;
    Ok(report.line())
}

/// Splits `rows` into the configured folds and runs `fold(number, range)` on each until
/// cancelled, with an event per fold; then the decision, as an event and the run's summary.
pub(super) fn run_folds(
    ctx: &Ctx,
    train_run: &str,
    rows: Range<usize>,
    setup: &WalkSetup,
    mut fold: impl FnMut(usize, Range<usize>) -> Result<walkforward::FoldResult>,
) -> Result<(Vec<walkforward::FoldResult>, walkforward::DecisionReport)> {
    if let Some(g) = setup.gate.as_ref().filter(|g| g.class == GateClass::Drop) {
        ctx.sink.warn(format!(
            "{train_run} was {}: walk-forward runs, but the model does not trade on Alpaca",
            g.line()
        ));
    }
    ctx.sink.emit(Event::WalkSetup(Box::new(setup.clone())));
    let ranges = walkforward::folds(rows, ctx.cfg.walk_forward.folds);
    let mut results = Vec::new();
    for (i, r) in ranges.iter().enumerate() {
        if ctx.cancel.is_cancelled() {
            break;
        }
        let f = fold(i + 1, r.clone())?;
        ctx.sink.emit(Event::Fold(f.clone()));
        ctx.sink.emit(Event::Progress {
            done: i as u64 + 1,
            total: ranges.len() as u64,
            message: format!("fold {}", i + 1),
        });
        results.push(f);
    }
    let mut report = walkforward::report(&results, ctx.cfg.walk_forward.max_sharpe_std);
    report.gate = setup.gate.clone();
    ctx.sink.emit(Event::Decision(report.clone()));
    ctx.set_summary(JobSummary::WalkForward {
        train_run: train_run.to_string(),
        report: report.clone(),
    })?;
    Ok((results, report))
}
