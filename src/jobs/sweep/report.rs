//! The leaderboard: per task its state, progress, gate class, walk-forward decision and mean fold
//! Sharpe beside momentum's and buy-and-hold's; per symbol × settings the seed group graded as the
//! gate grades a group (median and worst seed, `eval::gate::grade_group`). Read from the task's
//! run directories; what a task has not reached yet is empty.

use super::{SweepView, TaskState, TaskView};
use crate::config::Stage;
use crate::eval::baselines::Baseline;
use crate::eval::gate::{grade_group, SeedGrade};
use crate::eval::walkforward::{Decision, FoldResult};
use crate::eval::{GateClass, GateFlag, GateResult};
use crate::jobs::{EventRecord, JobSummary, RunDir};
use crate::paths::Paths;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRow {
    pub index: usize,
    pub symbol: String,
    pub seed: u64,
    pub mode: String,
    pub overrides: String,
    pub group: usize,
    pub state: TaskState,
    /// PPO updates done and planned.
    pub progress: Option<(usize, usize)>,
    pub train_run: Option<String>,
    pub gate: Option<GateClass>,
    pub fitness: Option<f64>,
    pub decision: Option<Decision>,
    /// Mean fold Sharpe of the model as traded, of momentum, of buy-and-hold.
    pub sharpe: Option<f64>,
    pub momentum: Option<f64>,
    pub buy_hold: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupRow {
    pub group: usize,
    pub symbol: String,
    pub mode: String,
    pub overrides: String,
    /// Seeds gated so far, of the group's seeds.
    pub gated: usize,
    pub seeds: usize,
    pub class: GateClass,
    pub flags: Vec<GateFlag>,
    pub median_seed: u64,
    pub median_fitness: f64,
    pub worst_seed: u64,
    pub worst_fitness: f64,
    pub median_run: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leaderboard {
    pub sweep: String,
    pub summary: String,
    /// Best first: walk-forward Sharpe, then gate fitness; unfinished tasks last.
    pub tasks: Vec<TaskRow>,
    /// Best median first.
    pub groups: Vec<GroupRow>,
}

/// The leaderboard of a sweep as its view and run directories stand.
pub fn build(paths: &Paths, view: &SweepView) -> Leaderboard {
    let mut rows = Vec::new();
    let mut grades: BTreeMap<usize, Vec<SeedGrade>> = BTreeMap::new();
    for t in &view.tasks {
        let (row, grade) = task_row(paths, t);
        if let Some(g) = grade {
            grades.entry(t.spec.group).or_default().push(g);
        }
        rows.push(row);
    }
    let seeds = view.plan.grid.seeds.len();
    let mut groups: Vec<GroupRow> = grades
        .into_iter()
        .filter_map(|(gid, g)| group_row(view, gid, g, seeds))
        .collect();
    groups.sort_by(|a, b| b.median_fitness.total_cmp(&a.median_fitness));
    rows.sort_by(|a, b| {
        rank(b)
            .partial_cmp(&rank(a))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Leaderboard {
        sweep: view.id.clone(),
        summary: view.summary.clone(),
        tasks: rows,
        groups,
    }
}

fn rank(r: &TaskRow) -> (bool, f64, bool, f64, i64) {
    (
        r.sharpe.is_some(),
        r.sharpe.unwrap_or(f64::NEG_INFINITY),
        r.fitness.is_some(),
        r.fitness.unwrap_or(f64::NEG_INFINITY),
        -(r.index as i64),
    )
}

fn task_row(paths: &Paths, t: &TaskView) -> (TaskRow, Option<SeedGrade>) {
    let runs = &t.history.runs;
    let train_run = runs.get(&Stage::Train).cloned();
    let gate = runs
        .get(&Stage::Gate)
        .and_then(|r| gate_result(paths, r))
        .filter(|(train, _)| Some(train) == train_run.as_ref());
    let walk = runs
        .get(&Stage::WalkForward)
        .and_then(|r| walk_result(paths, r));
    let mut row = TaskRow {
        index: t.spec.index,
        symbol: t.spec.symbol.clone(),
        seed: t.spec.seed,
        mode: t.spec.mode.clone(),
        overrides: t.spec.overrides_line(),
        group: t.spec.group,
        state: t.state.clone(),
        progress: train_run.as_deref().and_then(|r| progress(paths, r)),
        train_run: train_run.clone(),
        gate: gate.as_ref().map(|(_, g)| g.class),
        fitness: gate.as_ref().map(|(_, g)| g.metrics.fitness),
        decision: None,
        sharpe: None,
        momentum: None,
        buy_hold: None,
    };
    if let Some((decision, folds)) = walk {
        row.decision = Some(decision);
        row.sharpe = mean(folds.iter().map(|f| f.sharpe));
        let base = |b: Baseline| {
            mean(folds.iter().filter_map(|f| {
                f.baselines
                    .iter()
                    .find(|r| r.baseline == b)
                    .map(|r| r.sharpe)
            }))
        };
        row.momentum = base(Baseline::Momentum);
        row.buy_hold = base(Baseline::BuyHold);
    }
    let grade = gate.zip(train_run).map(|((_, result), run)| SeedGrade {
        run,
        seed: t.spec.seed,
        result,
    });
    (row, grade)
}

fn group_row(
    view: &SweepView,
    gid: usize,
    grades: Vec<SeedGrade>,
    seeds: usize,
) -> Option<GroupRow> {
    let first = view.tasks.iter().find(|t| t.spec.group == gid)?;
    let gated = grades.len();
    let res = grade_group(&format!("{}/{gid}", view.id), grades)?;
    let g = res.group.as_ref()?;
    let seed_of = |run: &str| g.seeds.iter().find(|s| s.run == run);
    let (median, worst) = (seed_of(&g.median)?, seed_of(&g.worst)?);
    Some(GroupRow {
        group: gid,
        symbol: first.spec.symbol.clone(),
        mode: first.spec.mode.clone(),
        overrides: first.spec.overrides_line(),
        gated,
        seeds,
        class: res.class,
        flags: res.flags.clone(),
        median_seed: median.seed,
        median_fitness: median.result.metrics.fitness,
        worst_seed: worst.seed,
        worst_fitness: worst.result.metrics.fitness,
        median_run: g.median.clone(),
    })
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, s) = v.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    (n > 0).then(|| s / n as f64)
}

/// A completed gate run's training run and result.
fn gate_result(paths: &Paths, run: &str) -> Option<(String, GateResult)> {
    let m = RunDir::open(paths, run).ok()?.read_manifest().ok()?;
    let parent = m.parent.clone()?;
    match m.summary {
        JobSummary::Gate { result, .. } => Some((parent, result)),
        _ => None,
    }
}

/// A completed walk-forward run's decision and folds.
fn walk_result(paths: &Paths, run: &str) -> Option<(Decision, Vec<FoldResult>)> {
    let dir = RunDir::open(paths, run).ok()?;
    let m = dir.read_manifest().ok()?;
    let JobSummary::WalkForward { report, .. } = m.summary else {
        return None;
    };
    let text = std::fs::read_to_string(dir.artifact("walkforward.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let folds: Vec<FoldResult> = serde_json::from_value(v.get("folds")?.clone()).ok()?;
    Some((report.decision, folds))
}

/// Updates done and planned: the manifest's outcome when training ended, else its newest
/// `update` event (read from the end of `events.jsonl`, which can be large).
pub fn progress(paths: &Paths, run: &str) -> Option<(usize, usize)> {
    let dir = RunDir::open(paths, run).ok()?;
    let last = last_update(&dir.events_path());
    if let Ok(m) = dir.read_manifest() {
        if let JobSummary::Train { updates, .. } = m.summary {
            let planned = last.map_or(updates, |(_, total)| total.max(updates));
            return Some((updates, planned));
        }
    }
    last
}

fn last_update(path: &std::path::Path) -> Option<(usize, usize)> {
    const TAIL: u64 = 256 * 1024;
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.lines().rev().find_map(|l| {
        let rec: EventRecord = serde_json::from_str(l).ok()?;
        match rec.event {
            crate::jobs::Event::Update(u) => Some((u.update, u.updates)),
            _ => None,
        }
    })
}

/// The leaderboard as text: the tasks, then the seed groups.
pub fn render(b: &Leaderboard) -> String {
    let mut out = vec![format!("sweep {} — {}", b.sweep, b.summary)];
    out.push(format!(
        "{:>4} {:<10} {:>5} {:<11} {:<29} {:>9} {:<8} {:>7} {:<8} {:>7} {:>7} {:>7}  SETTINGS",
        "TASK",
        "SYMBOL",
        "SEED",
        "MODE",
        "STATE",
        "PROGRESS",
        "GATE",
        "FITNESS",
        "WF",
        "SHARPE",
        "MOM",
        "B&H"
    ));
    let f2 = |v: Option<f64>| v.map_or("—".to_string(), |x| format!("{x:+.2}"));
    for r in &b.tasks {
        out.push(format!(
            "{:>4} {:<10} {:>5} {:<11} {:<29} {:>9} {:<8} {:>7} {:<8} {:>7} {:>7} {:>7}  {}",
            r.index,
            r.symbol,
            r.seed,
            r.mode,
            r.state.label(),
            r.progress.map_or("—".into(), |(d, t)| format!("{d}/{t}")),
            r.gate.map_or("—", |g| g.as_str()),
            r.fitness.map_or("—".into(), |x| format!("{x:+.3}")),
            r.decision.map_or("—", |d| d.as_str()),
            f2(r.sharpe),
            f2(r.momentum),
            f2(r.buy_hold),
            r.overrides
        ));
    }
    if !b.groups.is_empty() {
        out.push(String::new());
        out.push("seed groups (graded as the gate grades a group: the median seed, capped by the worst):".into());
        for g in &b.groups {
            out.push(format!(
                "  {} {}{}{}: {} — median seed {} fitness {:+.3}, worst seed {} fitness {:+.3} ({}/{} seeds gated){}",
                g.symbol,
                g.mode,
                if g.overrides.is_empty() { "" } else { " " },
                g.overrides,
                g.class.as_str(),
                g.median_seed,
                g.median_fitness,
                g.worst_seed,
                g.worst_fitness,
                g.gated,
                g.seeds,
                if g.flags.is_empty() {
                    String::new()
                } else {
                    format!(
                        " [{}]",
                        g.flags.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
                    )
                }
            ));
        }
    }
    out.join("\n")
}
