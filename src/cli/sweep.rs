//! `quantdeck sweep`: start a grid of training pipelines (locally or as a Slurm job array), and
//! follow, report, cancel and resume it. `sweep-task` and `sweep-run` are what the backends run.

use super::jobs_cmd::Common;
use super::progress::{Display, Verbosity};
use crate::config::{BackendKind, Config, Stage};
use crate::jobs::sweep::{self, grid, report, StartRequest, SweepDir, SweepView};
use crate::paths::Paths;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub action: Option<SweepAction>,
    /// Symbols to train (default: sweep.symbols, else the universe).
    pub symbols: Vec<String>,
    /// Seeds per setting: ppo.seed … ppo.seed + N − 1, graded as one group (sweep.seeds).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub seeds: Option<u64>,
    /// Training modes to cross, comma-separated (sweep.modes; default: the mode in force).
    #[arg(long, value_delimiter = ',')]
    pub modes: Vec<String>,
    /// A setting to cross: KEY=V1,V2,… (TOML values; repeat for more keys). Over [sweep.set].
    #[arg(long = "set", value_name = "KEY=V1,V2")]
    pub set: Vec<String>,
    /// The stages each task runs, comma-separated: train[,gate][,walk-forward] (sweep.stages).
    #[arg(long, value_delimiter = ',', value_parser = parse_stage)]
    pub stages: Vec<Stage>,
    /// local (worker processes here) or slurm (one sbatch job array) (sweep.backend).
    #[arg(long, value_parser = ["local", "slurm"])]
    pub backend: Option<String>,
    /// Local: worker processes (sweep.workers; default one per core, per GPU on CUDA).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub workers: Option<u64>,
    /// Slurm: tasks at once, the %N of --array (slurm.max_parallel).
    #[arg(long)]
    pub max_parallel: Option<u32>,
    /// Slurm: --partition (slurm.partition).
    #[arg(long)]
    pub partition: Option<String>,
    /// Slurm: --time per task (slurm.time), e.g. 2:00:00.
    #[arg(long)]
    pub time: Option<String>,
    /// Slurm: --gres (slurm.gres), e.g. gpu:1.
    #[arg(long)]
    pub gres: Option<String>,
    /// Do not fetch: the store must already hold every series the tasks read.
    #[arg(long)]
    pub no_fetch: bool,
    /// Print the tasks (and the sbatch script) without starting anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Stay and show progress until every task has ended (exit 0 when all completed).
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Subcommand)]
pub enum SweepAction {
    /// Every task's state (the run directories and heartbeats; squeue only for queued vs lost).
    Status(Which),
    /// The leaderboard: per task and per seed group.
    Report(Which),
    /// Stop the sweep: no task starts any more, running ones save their state and stop.
    Cancel(Which),
    /// Re-submit what did not complete (never a completed task; training continues from its
    /// last state).
    Resume(Which),
}

#[derive(Debug, Args)]
pub struct Which {
    /// Sweep id or unique prefix (default: the newest sweep).
    #[arg(default_value = "latest")]
    pub sweep: String,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Resume: stay and show progress until every task has ended.
    #[arg(long)]
    pub wait: bool,
    /// Resume (Slurm): a new time limit per task for what is re-submitted, e.g. 4:00:00.
    #[arg(long)]
    pub time: Option<String>,
}

fn parse_stage(s: &str) -> Result<Stage, String> {
    Stage::parse(s).ok_or_else(|| format!("{s:?}: use train, gate or walk-forward"))
}

/// `quantdeck sweep …`.
pub fn run(paths: &Paths, cfg: &Config, config_file: Option<&Path>, a: SweepArgs) -> Result<i32> {
    match a.action {
        Some(SweepAction::Status(w)) => status(paths, &w),
        Some(SweepAction::Report(w)) => report_cmd(paths, &w),
        Some(SweepAction::Cancel(w)) => {
            println!("{}", sweep::cancel(paths, &w.sweep)?);
            Ok(0)
        }
        Some(SweepAction::Resume(w)) => resume(paths, &w),
        None => start(paths, cfg, config_file, a),
    }
}

fn request(cfg: &Config, config_file: Option<&Path>, a: &SweepArgs) -> Result<StartRequest> {
    let s = &cfg.sweep;
    let flags: Vec<(String, Vec<toml::Value>)> = a
        .set
        .iter()
        .map(|x| grid::parse_set(x))
        .collect::<Result<_>>()?;
    let set = grid::merge_sets(&s.set, flags)?;
    let stages = if a.stages.is_empty() {
        s.stages.clone()
    } else {
        a.stages.clone()
    };
    crate::config::sweep::check_stages(&stages).map_err(|e| anyhow::anyhow!("--stages {e}"))?;
    let backend = match a.backend.as_deref() {
        Some("slurm") => BackendKind::Slurm,
        Some(_) => BackendKind::Local,
        None => s.backend,
    };
    let mut slurm = cfg.slurm.clone();
    if let Some(m) = a.max_parallel {
        slurm.max_parallel = m;
    }
    // Flags pass the same checks as the file's values.
    let mut extra = toml::Table::new();
    for (k, v) in [
        ("partition", &a.partition),
        ("time", &a.time),
        ("gres", &a.gres),
    ] {
        if let Some(v) = v {
            extra.insert(k.into(), toml::Value::String(v.clone()));
        }
    }
    if !extra.is_empty() {
        let mut t = toml::Value::try_from(&slurm)?;
        crate::config::merge_values(&mut t, toml::Value::Table(extra));
        slurm = t
            .try_into()
            .map_err(|e| anyhow::anyhow!("--partition/--time/--gres: {e}"))?;
    }
    Ok(StartRequest {
        symbols: if a.symbols.is_empty() {
            s.symbols.clone()
        } else {
            a.symbols.clone()
        },
        seeds: a.seeds.map_or(s.seeds, |n| n as usize),
        modes: if a.modes.is_empty() {
            s.modes.clone()
        } else {
            a.modes.clone()
        },
        set,
        stages,
        backend,
        workers: a.workers.map_or(s.workers, |n| n as usize),
        slurm,
        config_file: config_file.map(Path::to_path_buf),
        fetch: !a.no_fetch,
        dry_run: a.dry_run,
        foreground: false,
    })
}

fn start(paths: &Paths, cfg: &Config, config_file: Option<&Path>, a: SweepArgs) -> Result<i32> {
    let req = request(cfg, config_file, &a)?;
    if req.backend == BackendKind::Slurm && !req.dry_run && !sweep::slurm::available() {
        bail!("backend slurm: sbatch is not on the PATH of this machine (submit from a login node, or use --backend local)");
    }
    let display = Display::new(a.common.json, Verbosity::Quiet);
    let started = sweep::start(paths, cfg, &req, || Some(display.observer()))?;
    display.finish();
    let n = started.tasks.len();
    if req.dry_run {
        println!(
            "{n} task(s), stages {}, backend {}:",
            stage_list(&req.stages),
            req.backend.as_str()
        );
        for t in &started.tasks {
            println!(
                "  {:>4}  {} seed {} mode {} {}",
                t.index,
                t.symbol,
                t.seed,
                t.mode,
                t.overrides_line()
            );
        }
        if let Some(s) = started.script {
            println!("\nsbatch script (array index = task index):\n{s}");
        }
        return Ok(0);
    }
    let Some(dir) = started.dir else {
        bail!("the sweep was not created");
    };
    match req.backend {
        BackendKind::Local => println!(
            "sweep {}: {n} task(s) on {} worker(s), supervisor pid {} (survives this terminal); follow with `quantdeck sweep status`",
            dir.id, started.plan.workers, started.handle
        ),
        BackendKind::Slurm => println!(
            "sweep {}: {n} task(s) submitted as Slurm job {} (array {}); follow with `quantdeck sweep status`",
            dir.id,
            started.handle,
            sweep::slurm::array_spec(
                &started.tasks.iter().map(|t| t.index).collect::<Vec<_>>(),
                started.plan.slurm.max_parallel
            )
        ),
    }
    if a.wait {
        return wait(&dir);
    }
    Ok(0)
}

fn stage_list(s: &[Stage]) -> String {
    s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" → ")
}

fn status(paths: &Paths, w: &Which) -> Result<i32> {
    let dir = SweepDir::open(paths, &w.sweep)?;
    let v = sweep::view(&dir, true)?;
    sweep::refresh_manifest(&dir);
    if w.json {
        let mut j = serde_json::to_value(&v)?;
        // Each mode's full configuration stays in sweep.json.
        if let Some(p) = j.get_mut("plan").and_then(|p| p.as_object_mut()) {
            p.remove("configs");
        }
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(0);
    }
    println!("{}", status_text(&v));
    Ok(0)
}

fn status_text(v: &SweepView) -> String {
    let mut out = vec![format!(
        "sweep {} ({}, stages {}): {} — {}",
        v.id,
        v.plan.backend.as_str(),
        stage_list(&v.plan.stages),
        v.status.as_str(),
        v.summary
    )];
    if v.plan.backend == BackendKind::Slurm && !v.asked_scheduler {
        out.push("  (squeue did not answer: queued and lost tasks cannot be told apart)".into());
    }
    for t in &v.tasks {
        let runs: Vec<String> = t.history.runs.values().cloned().collect();
        out.push(format!(
            "  {:>4}  {:<29} {} seed {} {} {}{}{}",
            t.spec.index,
            t.state.label(),
            t.spec.symbol,
            t.spec.seed,
            t.spec.mode,
            t.spec.overrides_line(),
            t.slurm_job
                .as_ref()
                .map(|j| format!("  [slurm {j}]"))
                .unwrap_or_default(),
            if runs.is_empty() {
                String::new()
            } else {
                format!("  runs: {}", runs.join(", "))
            }
        ));
        if let sweep::TaskState::Failed { message, .. } = &t.state {
            out.push(format!("        {}", message.lines().next().unwrap_or("")));
        }
    }
    out.join("\n")
}

fn report_cmd(paths: &Paths, w: &Which) -> Result<i32> {
    let dir = SweepDir::open(paths, &w.sweep)?;
    let v = sweep::view(&dir, true)?;
    let board = report::build(paths, &v);
    if w.json {
        println!("{}", serde_json::to_string_pretty(&board)?);
    } else {
        println!("{}", report::render(&board));
    }
    Ok(0)
}

fn resume(paths: &Paths, w: &Which) -> Result<i32> {
    let out = sweep::resume(paths, &w.sweep, false, w.time.as_deref())?;
    let dir = SweepDir::open(paths, &w.sweep)?;
    if out.tasks.is_empty() && out.live == 0 {
        println!(
            "sweep {}: nothing to resume ({} completed)",
            dir.id, out.completed
        );
        return Ok(0);
    }
    println!(
        "sweep {}: resumed {} task(s) ({}); {} completed (not run again), {} still running or queued{}",
        dir.id,
        out.tasks.len(),
        out.tasks
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        out.completed,
        out.live,
        if out.handle.is_empty() {
            String::new()
        } else {
            format!("; {}", out.handle)
        }
    );
    if w.wait {
        return wait(&dir);
    }
    Ok(0)
}

/// Follows a sweep until no task is live or waiting, printing each change of its tally.
fn wait(dir: &SweepDir) -> Result<i32> {
    let mut last = String::new();
    loop {
        let mut v = sweep::view(dir, true)?;
        let stopped = v.status == crate::jobs::JobStatus::Running
            && v.plan.backend == BackendKind::Local
            && !v.tasks.iter().any(|t| t.state.is_live())
            && supervisor_gone(dir);
        if stopped {
            // It may have finished everything while we looked: read the tasks again.
            v = sweep::view(dir, true)?;
        }
        if v.summary != last {
            println!("{}", v.summary);
            last = v.summary.clone();
        }
        if v.status != crate::jobs::JobStatus::Running || stopped {
            sweep::refresh_manifest(dir);
            if stopped && v.status == crate::jobs::JobStatus::Running {
                println!(
                    "the sweep's supervisor is gone: `quantdeck sweep resume` runs what remains"
                );
            }
            let done = v
                .tasks
                .iter()
                .all(|t| t.state == sweep::TaskState::Completed);
            return Ok(if done { 0 } else { 1 });
        }
        std::thread::sleep(Duration::from_millis(match v.plan.backend {
            BackendKind::Local => 250,
            BackendKind::Slurm => 1000,
        }));
    }
}

/// No supervisor holds the sweep (it ended, or was killed) — checked twice, a moment apart, so a
/// supervisor that is just starting is not taken for a dead one.
fn supervisor_gone(dir: &SweepDir) -> bool {
    let free =
        || sweep::dir::DirLock::try_take(&dir.supervisor_lock_path()).is_ok_and(|l| l.is_some());
    free() && {
        std::thread::sleep(Duration::from_secs(2));
        free()
    }
}

/// `quantdeck sweep-task SWEEP INDEX` (what a worker or a Slurm array task runs).
pub fn task(paths: &Paths, a: TaskArgs) -> Result<i32> {
    sweep::task::run(paths, &a.sweep, a.index)
}

/// `quantdeck sweep-run SWEEP` (the local backend's supervisor).
pub fn supervise(paths: &Paths, a: SuperviseArgs) -> Result<i32> {
    let dir = SweepDir::open_exact(paths, &a.sweep)?;
    let exe = std::env::current_exe()?;
    sweep::local::supervise(paths, &dir, &exe)
}

#[derive(Debug, Args)]
pub struct TaskArgs {
    /// The sweep's id.
    pub sweep: String,
    /// The task's index ($SLURM_ARRAY_TASK_ID).
    pub index: usize,
}

#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// The sweep's id.
    pub sweep: String,
}
