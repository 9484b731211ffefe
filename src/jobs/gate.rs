//! The gate job: APPROVED / REVIEW / DROP from a training run's validation history, with the
//! composite model score of the graded checkpoint beside the class, and — for a portfolio run —
//! the graded validation's model-vs-equal-weight figures. A run that was interrupted is gated
//! on the validations it managed to record, and says so.

use super::ctx::Ctx;
use super::{list_runs, Event, EventRecord, JobStatus, JobSummary, RunDir};
use crate::engine::ppo::UpdateMetrics;
use crate::eval::gate::SeedGrade;
use crate::eval::{self, composite_score, CompositeInputs, CompositeScore, ScoreScales};
use crate::eval::{portfolio::PortfolioBlock, GateResult, ValidationMetrics};
use crate::sim::portfolio::N_REGIMES;
use crate::sim::N_ACTIONS;
use anyhow::Result;

pub(super) fn gate(ctx: &Ctx, train_run: &str) -> Result<String> {
    let manifest = RunDir::open(ctx.paths, train_run)?.read_manifest()?;
    let (res, graded_run, interrupted) = match &manifest.group {
        Some(g) => grade_group(ctx, &g.id)?,
        None => {
            let (res, interrupted) = grade_run(ctx, train_run, "")?;
            (res, train_run.to_string(), interrupted)
        }
    };
    ctx.sink.emit(Event::Gate(res.clone()));
    ctx.save_json("gate.json", &res)?;
    ctx.set_summary(JobSummary::Gate {
        train_run: graded_run.clone(),
        result: res.clone(),
        interrupted,
    })?;
    let flags = if res.flags.is_empty() {
        "no flags".to_string()
    } else {
        res.flags
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let checkpoint = match res.use_checkpoint {
        Some(u) => format!("; use the best checkpoint (update {u})"),
        None if interrupted => "; the run was interrupted: its best checkpoint will be used".into(),
        None => String::new(),
    };
    let composite = res
        .composite
        .map(|c| format!(" (composite {:+.1})", c.total))
        .unwrap_or_default();
    let group = res
        .group
        .as_ref()
        .map(|g| {
            format!(
                "; group of {}: graded on the median seed {graded_run} (walk-forward and paper it)",
                g.line()
            )
        })
        .unwrap_or_default();
    Ok(format!(
        "{}{composite}: {flags}{checkpoint}{group}",
        res.class.as_str()
    ))
}

/// One training run's verdict: its validation history against the thresholds, the composite
/// score and the baseline check. `who` prefixes its lines (a seed of a group).
fn grade_run(ctx: &Ctx, train_run: &str, who: &str) -> Result<(GateResult, bool)> {
    let dir = RunDir::open(ctx.paths, train_run)?;
    let recorded = super::validations::validation_history(&dir)?;
    for n in &recorded.notes {
        ctx.sink.warn(format!("{who}{n}"));
    }
    let history = recorded.validations;
    let me = list_runs(ctx.paths)
        .into_iter()
        .find(|r| r.manifest.id == train_run);
    let interrupted = me.is_some_and(|r| r.stale || r.manifest.status == JobStatus::Cancelled);
    if interrupted {
        ctx.sink.warn(format!(
            "{who}training run {train_run} was interrupted after {} validation(s) (last at update {}): gating what it recorded",
            history.len(),
            history.last().map_or(0, |v| v.update)
        ));
    }
    let mut res = eval::assess(&ctx.cfg.gating, &history);
    if history.is_empty() {
        return Ok((res, interrupted));
    }
    match read_updates(ctx, &dir, who) {
        Ok(updates) => {
            res.composite = composite_of(&res.metrics, &updates);
            let graded = res.metrics.update;
            let last = updates
                .last()
                .filter(|_| !updates.iter().any(|u| u.update == graded));
            if let Some(u) = last {
                ctx.sink.warn(format!(
                    "{who}{} holds no metrics of update {graded} (the graded one): the composite score uses update {}'s",
                    dir.events_path().display(),
                    u.update
                ));
            }
        }
        Err(e) => ctx.sink.warn(format!("{who}{e:#}")),
    }
    if res.composite.is_none() {
        ctx.sink.warn(format!(
            "{who}training run {train_run} recorded no update metrics ({} is missing or holds none): no composite score",
            dir.events_path().display()
        ));
    }
    if let Some(b) = &res.metrics.portfolio {
        ctx.sink
            .info(format!("{who}{}", equal_weight_line(res.metrics.update, b)));
    }
    match super::gate_check::baseline_check(ctx, train_run, &res.metrics)? {
        Ok(check) => {
            ctx.sink.info(format!("{who}{}", check.line()));
            if !check.trails.is_empty() && res.class == eval::GateClass::Approved {
                ctx.sink.warn(format!(
                    "{who}BELOW_BASELINE: the graded checkpoint does not beat the simple rules on its validation bars, so it is REVIEW, not APPROVED"
                ));
            }
            res = res.with_baselines(check);
        }
        Err(why) => ctx.sink.warn(format!("{who}{why}")),
    }
    if let Some(c) = &res.composite {
        ctx.sink.info(format!(
            "{who}composite score {:+.1} (profitability {:+.2}, reward {:+.2}, explained variance {:+.2}, exploration {:.2}, instability {:.2})",
            c.total, c.profitability, c.reward, c.value, c.exploration, c.instability
        ));
    }
    Ok((res, interrupted))
}

/// Every seed of group `id`, graded one by one, then the group on its median and its worst
/// (`eval::gate::grade_group`). Returns the group's result, the median seed's run, and whether
/// any seed was interrupted.
fn grade_group(ctx: &Ctx, id: &str) -> Result<(GateResult, String, bool)> {
    let mut members: Vec<_> = list_runs(ctx.paths)
        .into_iter()
        .filter(|r| r.manifest.group.as_ref().is_some_and(|g| g.id == id))
        .collect();
    members.sort_by_key(|r| r.manifest.group.as_ref().map_or(0, |g| g.index));
    let size = members
        .first()
        .and_then(|r| r.manifest.group.as_ref())
        .map_or(0, |g| g.size);
    if members.len() < size {
        ctx.sink.warn(format!(
            "group {id}: {} of its {size} seeds exist (a seed failed or is still to come): grading those",
            members.len()
        ));
    }
    let mut seeds = Vec::new();
    let mut any_interrupted = false;
    for r in &members {
        let seed = r.manifest.group.as_ref().map_or(0, |g| g.seed);
        let (res, interrupted) = grade_run(ctx, &r.manifest.id, &format!("seed {seed}: "))?;
        ctx.sink.info(format!(
            "seed {seed} ({}): {} fitness {:+.3}",
            r.manifest.id,
            res.class.as_str(),
            res.metrics.fitness
        ));
        any_interrupted |= interrupted;
        seeds.push(SeedGrade {
            run: r.manifest.id.clone(),
            seed,
            result: res,
        });
    }
    let res = eval::gate::grade_group(id, seeds)
        .ok_or_else(|| anyhow::anyhow!("group {id} has no training run"))?;
    let median = res
        .group
        .as_ref()
        .map(|g| g.median.clone())
        .unwrap_or_default();
    if let Some(g) = &res.group {
        ctx.sink.info(format!("group {id}: {}", g.line()));
    }
    Ok((res, median, any_interrupted))
}

/// The newest completed gate verdict on `train_run`: its own, or — for a seed of a group — its
/// result as the group allows it (never above the group's class).
pub(super) fn verdict_of(paths: &crate::paths::Paths, train_run: &str) -> Option<GateResult> {
    list_runs(paths).into_iter().rev().find_map(|r| {
        if r.manifest.status != JobStatus::Completed {
            return None;
        }
        let JobSummary::Gate {
            train_run: t,
            result,
            ..
        } = r.manifest.summary
        else {
            return None;
        };
        match &result.group {
            Some(g) => g.verdict_of(train_run, result.class),
            None => (t == train_run).then_some(result),
        }
    })
}

/// The median seed's run of a gated seed group (the newest completed gate of the group).
pub(super) fn group_median(paths: &crate::paths::Paths, group: &str) -> Option<String> {
    list_runs(paths)
        .into_iter()
        .rev()
        .find_map(|r| match r.manifest.summary {
            JobSummary::Gate { result, .. } if r.manifest.status == JobStatus::Completed => {
                result.group.filter(|g| g.id == group).map(|g| g.median)
            }
            _ => None,
        })
}

/// The newest completed gate verdict of a training run, if it was gated.
pub(super) fn latest_verdict(
    paths: &crate::paths::Paths,
    train_run: &str,
) -> Option<crate::eval::walkforward::GateVerdict> {
    verdict_of(paths, train_run).map(|r| crate::eval::walkforward::GateVerdict {
        class: r.class,
        flags: r.flags,
    })
}

/// `graded validation (update 8), model vs equal weight: return +1.20 % vs +3.40 %, …`.
pub fn equal_weight_line(update: usize, b: &PortfolioBlock) -> String {
    let (m, e) = (&b.model, &b.equal_weight);
    format!(
        "graded validation (update {update}), model vs equal weight: return {:+.2} % vs {:+.2} %, Sharpe {:+.2} vs {:+.2}, max DD {:.1} % vs {:.1} %, turnover {:.2} vs {:.2}",
        m.total_return * 100.0,
        e.total_return * 100.0,
        m.sharpe,
        e.sharpe,
        m.max_drawdown * 100.0,
        e.max_drawdown * 100.0,
        m.turnover,
        e.turnover
    )
}

/// The run's update metrics as they stand: updates superseded by a restart (resume or
/// drawdown retry) are dropped. A torn last line is skipped; damage elsewhere is an error.
fn read_updates(ctx: &Ctx, dir: &RunDir, who: &str) -> Result<Vec<UpdateMetrics>> {
    let recs = crate::jsonl::read_records::<EventRecord>(&dir.events_path(), "event")?;
    if let Some(torn) = recs.as_ref().map(|r| r.torn_bytes).filter(|t| *t > 0) {
        ctx.sink.warn(format!(
            "{who}{}: a torn last line ({torn} bytes, a write cut by a kill) was skipped",
            dir.events_path().display()
        ));
    }
    let mut out: Vec<UpdateMetrics> = Vec::new();
    for rec in recs
        .map(crate::jsonl::Records::into_values)
        .unwrap_or_default()
    {
        match rec.event {
            Event::Update(m) => out.push(m),
            Event::Restart { from_update, .. } => out.retain(|m| m.update <= from_update),
            _ => {}
        }
    }
    Ok(out)
}

/// The composite score of the graded checkpoint: its validation's return and win rate, and the
/// training diagnostics of the update that produced it (the last recorded update when that one
/// is missing). A validation without a recorded win rate (older runs) counts as 50 %.
fn composite_of(v: &ValidationMetrics, updates: &[UpdateMetrics]) -> Option<CompositeScore> {
    let u = updates
        .iter()
        .rev()
        .find(|u| u.update == v.update)
        .or(updates.last())?;
    let n_actions = match (u.action_shares.len(), &v.portfolio) {
        (n, _) if n >= 2 => n,
        (_, Some(_)) => N_REGIMES,
        (_, None) => N_ACTIONS,
    };
    let x = CompositeInputs {
        mean_return: v.total_return,
        win_rate: v.win_rate.unwrap_or(0.5),
        mean_reward: u.mean_reward,
        explained_variance: u.explained_variance,
        entropy: u.entropy,
        n_actions,
        approx_kl: u.approx_kl,
        clip_fraction: u.clip_fraction,
    };
    Some(composite_score(&x, &ScoreScales::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_composite_reads_the_graded_update() {
        let v = ValidationMetrics {
            update: 2,
            total_return: 0.05,
            win_rate: Some(1.0),
            ..Default::default()
        };
        let upd = |update, ev| UpdateMetrics {
            update,
            mean_reward: 0.05,
            explained_variance: ev,
            entropy: 12f64.ln() / 2.0,
            approx_kl: 0.02,
            clip_fraction: 0.1,
            action_shares: vec![1.0 / 12.0; 12],
            ..Default::default()
        };
        // Update 2's explained variance (0.5) counts, not the later one's: the known value of
        // `eval::composite`'s test.
        let c = composite_of(&v, &[upd(1, -1.0), upd(2, 0.5), upd(3, 0.9)]).unwrap();
        assert!((c.total - 53.195_649_357_345_9).abs() < 1e-9, "{}", c.total);
        // Without the graded update, the last one stands in; without any, no score.
        let c = composite_of(&v, &[upd(3, 0.9)]).unwrap();
        assert!((c.value - 0.9).abs() < 1e-12);
        assert!(composite_of(&v, &[]).is_none());
    }
}
