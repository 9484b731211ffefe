//! What a simulated paper session replays, and what it is held against. A replay can cover an
//! explicit window or a walk-forward fold; either way its decisions, fills and equity are the
//! fold's (walk-forward and paper trade through the same `sim::decide`, or for a portfolio model
//! `sim::portfolio::decide`), and the session's expectation per day comes from a walk-forward
//! graded under the same rules.

use super::ctx::Ctx;
use super::{list_runs, JobKind, JobStatus, RunSummary};
use crate::eval::FoldResult;
use crate::live::feed::ReplayFeed;
use crate::live::state::DaemonState;
use crate::market::Bar;
use crate::paths::Paths;
use crate::sim::TradingRules;
use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// What a simulated session replays: `bars` bar times of the unseen bars, or a window.
pub(super) struct Replay {
    pub bars: Option<usize>,
    pub window: Option<Window>,
}

impl Replay {
    /// The first bar index of `bars` to decide: after what the model saw (`seen`), at the
    /// window's start when there is one.
    pub(super) fn first(&self, bars: &[Bar], seen: DateTime<Utc>, what: &str) -> Result<usize> {
        match &self.window {
            None => Ok(bars.partition_point(|b| b.ts <= seen)),
            Some(w) if w.from <= seen => bail!(
                "the replay window starts {} but {what} saw everything up to {}: replay only bars after that",
                w.from.format("%Y-%m-%d %H:%M"),
                seen.format("%Y-%m-%d %H:%M")
            ),
            Some(w) => Ok(bars.partition_point(|b| b.ts < w.from)),
        }
    }

    /// The last bar time to replay, among the distinct bar times `times` (sorted).
    pub(super) fn until(
        &self,
        times: &[DateTime<Utc>],
        default_bars: usize,
    ) -> Option<DateTime<Utc>> {
        match &self.window {
            Some(w) => times.iter().rev().find(|t| **t <= w.to).copied(),
            None => {
                let n = self.bars.unwrap_or(default_bars);
                times.get(n.min(times.len()).saturating_sub(1)).copied()
            }
        }
    }

    /// The session's last bar time: chosen among `times` (sorted, distinct) on its first run
    /// and saved in its state at once, so a restarted session replays to the same end.
    pub(super) fn end(
        &self,
        ctx: &Ctx<'_>,
        state: &mut DaemonState,
        times: impl FnOnce() -> Vec<DateTime<Utc>>,
    ) -> Result<Option<DateTime<Utc>>> {
        if state.replay_until.is_none() {
            state.replay_until = self.until(&times(), ctx.cfg.live.replay_bars);
            state.save(&ctx.dir().path)?;
        }
        Ok(state.replay_until)
    }

    /// The replay feed: a window ends on a bar that only marks the books.
    pub(super) fn feed(&self, per_symbol: Vec<(String, Vec<Bar>)>, speed: f64) -> ReplayFeed {
        let feed = ReplayFeed::new(per_symbol, None, speed);
        if self.window.is_some() {
            feed.marking_the_last()
        } else {
            feed
        }
    }
}

/// Which bars a simulated session replays (by default: the model's unseen bars, `--bars` of them).
#[derive(Debug, Clone, PartialEq)]
pub enum ReplaySpec {
    /// Decisions on the bars from `from` until `to`; the last bar at or before `to` only marks
    /// the book (as a walk-forward fold's last point does).
    Window {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    /// A fold of a walk-forward of the model: the newest completed one, or the one named.
    Fold {
        walk_forward: Option<String>,
        fold: usize,
    },
}

/// A resolved replay window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The walk-forward fold it reproduces, when it is one.
    pub fold: Option<(String, FoldResult)>,
}

/// The parts of `walkforward.json` a replay reads.
#[derive(Debug, Deserialize)]
struct WalkFile {
    folds: Vec<FoldResult>,
    #[serde(default)]
    rules: Option<TradingRules>,
}

fn read_walk(r: &RunSummary) -> Result<WalkFile> {
    let path = r.path.join("walkforward.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
}

/// The completed walk-forward runs of `train_run`, oldest first.
fn walks_of(paths: &Paths, train_run: &str) -> Vec<RunSummary> {
    list_runs(paths)
        .into_iter()
        .filter(|r| {
            r.manifest.kind == JobKind::WalkForward
                && r.manifest.parent.as_deref() == Some(train_run)
                && r.manifest.status == JobStatus::Completed
        })
        .collect()
}

/// Resolves `spec` for the session's models; warns when the walk-forward graded the fold under
/// other rules than this session trades by (the replay would not be that fold).
pub(super) fn resolve(ctx: &Ctx, train_runs: &[String], spec: &ReplaySpec) -> Result<Window> {
    match spec {
        ReplaySpec::Window { from, to } => {
            if to <= from {
                bail!("the replay window ends ({to}) before it starts ({from})");
            }
            Ok(Window {
                from: *from,
                to: *to,
                fold: None,
            })
        }
        ReplaySpec::Fold { walk_forward, fold } => {
            let [train_run] = train_runs else {
                bail!("--fold replays one model's walk-forward: name one training run");
            };
            let walks = walks_of(ctx.paths, train_run);
            let wf = match walk_forward {
                Some(id) => walks
                    .iter()
                    .find(|r| r.manifest.id == *id || r.manifest.id.starts_with(id.as_str()))
                    .ok_or_else(|| anyhow!("no completed walk-forward {id:?} of {train_run}"))?,
                None => walks.last().ok_or_else(|| {
                    anyhow!("{train_run} has no completed walk-forward: run `quantdeck walk-forward {train_run}` first")
                })?,
            };
            let file = read_walk(wf)?;
            let f = file
                .folds
                .iter()
                .find(|f| f.fold == *fold)
                .ok_or_else(|| {
                    anyhow!(
                        "walk-forward {} has folds 1–{}: no fold {fold}",
                        wf.manifest.id,
                        file.folds.len()
                    )
                })?
                .clone();
            let now = TradingRules::from_config(ctx.cfg);
            match file.rules {
                Some(r) if r == now => {}
                Some(r) => ctx.sink.warn(format!(
                    "walk-forward {} graded this fold under other rules ({}) than this session trades by ({}): the replay will differ from it",
                    wf.manifest.id,
                    r.describe(),
                    now.describe()
                )),
                None => ctx.sink.warn(format!(
                    "walk-forward {} predates recorded rules: its fold may differ from this replay",
                    wf.manifest.id
                )),
            }
            ctx.sink.info(format!(
                "replaying fold {fold} of walk-forward {}: {} → {} ({} bars, {} fills, return {:+.2} %)",
                wf.manifest.id,
                f.start.format("%Y-%m-%d %H:%M"),
                f.end.format("%Y-%m-%d %H:%M"),
                f.bars,
                f.orders.len(),
                f.total_return * 100.0
            ));
            Ok(Window {
                from: f.start,
                to: f.end,
                fold: Some((wf.manifest.id.clone(), f)),
            })
        }
    }
}

/// Walk-forward's expected return per calendar day for a run's model — the folds chained, over
/// the days they span — from the newest completed walk-forward graded under `rules` (a session
/// trading by other rules gets no expectation: it would not describe what trades).
pub(super) fn expected_daily(ctx: &Ctx, run: &str, rules: &TradingRules) -> Option<f64> {
    let walks = walks_of(ctx.paths, run);
    let mut other = None;
    for wf in walks.iter().rev() {
        let Ok(file) = read_walk(wf) else { continue };
        if file.rules.as_ref() != Some(rules) {
            other.get_or_insert(wf.manifest.id.clone());
            continue;
        }
        return per_day(&file.folds);
    }
    if let Some(id) = other {
        ctx.sink.warn(format!(
            "{run}: walk-forward {id} graded the model under other rules than this session's: no expectation per day is shown (walk-forward it again with this configuration)"
        ));
    }
    None
}

/// Chained fold return per calendar day spanned (first fold's start to the last fold's end).
pub fn per_day(folds: &[FoldResult]) -> Option<f64> {
    let (first, last) = (folds.first()?, folds.last()?);
    let total = folds.iter().map(|f| 1.0 + f.total_return).product::<f64>() - 1.0;
    let days = (last.end - first.start).num_seconds() as f64 / 86_400.0;
    (days > 0.0).then(|| total / days)
}
