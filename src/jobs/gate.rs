//! The gate job: APPROVED / REVIEW / DROP from a training run's validation history. A run that
//! was interrupted is gated on the validations it managed to record, and says so.

use super::ctx::Ctx;
use super::train::read_validations;
use super::{list_runs, Event, JobStatus, JobSummary, RunDir};
use crate::eval;
use anyhow::Result;

pub(super) fn gate(ctx: &Ctx, train_run: &str) -> Result<String> {
    let dir = RunDir::open(ctx.paths, train_run)?;
    let history = read_validations(&dir)?;
    let me = list_runs(ctx.paths)
        .into_iter()
        .find(|r| r.manifest.id == train_run);
    let interrupted = me.is_some_and(|r| r.stale || r.manifest.status == JobStatus::Cancelled);
    if interrupted {
        ctx.sink.warn(format!(
            "training run {train_run} was interrupted after {} validation(s) (last at update {}): gating what it recorded",
            history.len(),
            history.last().map_or(0, |v| v.update)
        ));
    }
    let res = eval::assess(&ctx.cfg.gating, &history);
    ctx.sink.emit(Event::Gate(res.clone()));
    ctx.save_json("gate.json", &res)?;
    ctx.set_summary(JobSummary::Gate {
        train_run: train_run.to_string(),
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
    Ok(format!("{}: {flags}{checkpoint}", res.class.as_str()))
}
