//! Starting a sweep (plan, fetch the bars once, hand the tasks to the backend), resuming one (only
//! what did not complete, never a live task) and cancelling one.

use super::dir::SweepDir;
use super::grid;
use super::record::{Grid, Launch, Submission, SweepPlan, TaskSpec, FORMAT};
use super::{local, slurm};
use crate::config::{self, BackendKind, Config, DataSource, SlurmConfig, Stage};
use crate::data::Store;
use crate::jobs::{self, CancelToken, JobRequest, Observer};
use crate::paths::Paths;
use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Most tasks one sweep may have (Slurm's default `MaxArraySize` is 1001; clusters raise it).
pub const MAX_TASKS: usize = 100_000;

/// What `quantdeck sweep` asks for (flags already merged over `[sweep]`).
#[derive(Debug, Clone)]
pub struct StartRequest {
    /// Empty: the universe.
    pub symbols: Vec<String>,
    pub seeds: usize,
    /// Empty: the configuration in force.
    pub modes: Vec<String>,
    pub set: Vec<(String, Vec<toml::Value>)>,
    pub stages: Vec<Stage>,
    pub backend: BackendKind,
    /// 0: from the machine.
    pub workers: usize,
    pub slurm: SlurmConfig,
    /// The user's `--config` file (applied over each mode of the grid).
    pub config_file: Option<PathBuf>,
    /// Fetch the bars first (else the store must hold them).
    pub fetch: bool,
    /// Plan and print, submit nothing.
    pub dry_run: bool,
    /// Local backend: supervise in this process instead of a detached one.
    pub foreground: bool,
}

/// A sweep that was started (or, with `dry_run`, only planned).
#[derive(Debug, Clone)]
pub struct Started {
    pub dir: Option<SweepDir>,
    pub tasks: Vec<TaskSpec>,
    pub plan: SweepPlan,
    /// The local supervisor's pid, or the Slurm job id.
    pub handle: String,
    pub script: Option<String>,
}

/// Plans the sweep, fetches its bars once on this host, writes its directory and starts it.
pub fn start(
    paths: &Paths,
    cfg: &Config,
    req: &StartRequest,
    observer: impl Fn() -> Option<Observer>,
) -> Result<Started> {
    let (grid, configs) = plan_grid(cfg, req)?;
    let tasks = grid::expand(&grid);
    if tasks.is_empty() || tasks.len() > MAX_TASKS {
        bail!(
            "the grid expands to {} tasks: a sweep needs between 1 and {MAX_TASKS}",
            tasks.len()
        );
    }
    check_tasks(&configs, &tasks, req.config_file.as_deref())?;
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let binary = if req.slurm.binary.is_empty() {
        exe.display().to_string()
    } else {
        req.slurm.binary.clone()
    };
    let cuda = configs.values().any(|c| c.ppo.device.starts_with("cuda"));
    let mut plan = SweepPlan {
        format: FORMAT,
        id: String::new(),
        created: Utc::now(),
        grid,
        stages: req.stages.clone(),
        backend: req.backend,
        workers: match req.workers {
            0 => local::default_workers(cuda),
            n => n,
        },
        slurm: req.slurm.clone(),
        configs: BTreeMap::new(),
        binary,
        submissions: Vec::new(),
        cancelled: None,
    };
    if req.dry_run {
        plan.configs = to_json(&configs)?;
        let script = (req.backend == BackendKind::Slurm)
            .then(|| slurm::script(&plan, &paths.runs.join("sweep-…"), &paths.home));
        return Ok(Started {
            dir: None,
            tasks,
            plan,
            handle: String::new(),
            script,
        });
    }
    let configs = fetch_once(paths, configs, &tasks, req.fetch, &observer)?;
    plan.configs = to_json(&configs)?;
    let label = label(&plan.grid);
    let (dir, _) = SweepDir::create(paths, &label, super::manifest_summary(&plan, tasks.len()))?;
    plan.id = dir.id.clone();
    dir.write_tasks(&tasks)?;
    dir.write_plan(&plan)?;
    let handle = launch(paths, &dir, &mut plan, &tasks, req.foreground, &exe)?;
    super::refresh_manifest(&dir);
    Ok(Started {
        dir: Some(dir),
        tasks,
        plan,
        handle,
        script: None,
    })
}

/// Hands every task to the backend. Local: starts the supervisor (detached, or here when
/// `foreground`, which then runs the whole sweep before returning).
fn launch(
    paths: &Paths,
    dir: &SweepDir,
    plan: &mut SweepPlan,
    tasks: &[TaskSpec],
    foreground: bool,
    exe: &Path,
) -> Result<String> {
    let all: Vec<usize> = tasks.iter().map(|t| t.index).collect();
    match plan.backend {
        BackendKind::Slurm => {
            let job_id = submit_slurm(paths, dir, plan, &all)?;
            Ok(job_id)
        }
        BackendKind::Local if foreground => {
            local::supervise(paths, dir, exe)?;
            Ok(std::process::id().to_string())
        }
        BackendKind::Local => Ok(local::spawn_supervisor(paths, dir, exe)?.to_string()),
    }
}

/// One `sbatch` of `tasks`, recorded in the plan (under the sweep's lock).
fn submit_slurm(
    paths: &Paths,
    dir: &SweepDir,
    plan: &mut SweepPlan,
    tasks: &[usize],
) -> Result<String> {
    let job_id = slurm::submit(plan, &dir.path, &paths.home, tasks, plan.submissions.len())?;
    let _l = dir.lock()?;
    let mut fresh = dir.read_plan()?;
    fresh.submissions.push(Submission {
        at: Utc::now(),
        tasks: tasks.to_vec(),
        via: Launch::Slurm {
            job_id: job_id.clone(),
        },
    });
    dir.write_plan(&fresh)?;
    *plan = fresh;
    Ok(job_id)
}

/// The grid (symbols resolved, seeds numbered, settings merged) and each mode's configuration.
fn plan_grid(cfg: &Config, req: &StartRequest) -> Result<(Grid, BTreeMap<String, Config>)> {
    let symbols: Vec<String> = if req.symbols.is_empty() {
        cfg.universe.symbols().into_iter().map(|s| s.name).collect()
    } else {
        req.symbols
            .iter()
            .map(|s| cfg.universe.resolve(s).map(|sym| sym.name))
            .collect::<Result<_>>()?
    };
    let mut unique = symbols.clone();
    unique.sort();
    unique.dedup();
    if unique.len() != symbols.len() {
        bail!("a symbol is listed twice: {}", symbols.join(", "));
    }
    let seeds: Vec<u64> = (0..req.seeds as u64).map(|k| cfg.ppo.seed + k).collect();
    let mut configs = BTreeMap::new();
    if req.modes.is_empty() {
        let name = if cfg.mode.is_empty() {
            "default".to_string()
        } else {
            cfg.mode.clone()
        };
        configs.insert(name, cfg.clone());
    } else {
        for m in &req.modes {
            let c = config::load(Some(m), req.config_file.as_deref())
                .with_context(|| format!("mode {m} of the sweep"))?;
            configs.insert(m.clone(), c);
        }
    }
    let grid = Grid {
        symbols,
        seeds,
        modes: configs.keys().cloned().collect(),
        set: req.set.clone(),
    };
    Ok((grid, configs))
}

/// Every task's configuration must build: an error names the task, the setting and — for a
/// `[sweep.set]` key — the file and line.
fn check_tasks(
    configs: &BTreeMap<String, Config>,
    tasks: &[TaskSpec],
    file: Option<&Path>,
) -> Result<()> {
    let json = to_json(configs)?;
    // Tasks of one group differ only in their seed: checking one per group suffices.
    let mut seen = std::collections::BTreeSet::new();
    for t in tasks.iter().filter(|t| seen.insert(t.group)) {
        let base = json
            .get(&t.mode)
            .ok_or_else(|| anyhow!("no configuration for mode {}", t.mode))?;
        if let Err(e) = grid::task_config(base, t) {
            let at = t
                .overrides
                .iter()
                .find_map(|(k, _)| file.and_then(|f| grid::locate_set_key(f, k)))
                .map(|l| format!(" ({l})"))
                .unwrap_or_default();
            bail!(
                "task {} ({} seed {}, mode {}{}){at}: {e:#}",
                t.index,
                t.symbol,
                t.seed,
                t.mode,
                if t.overrides.is_empty() {
                    String::new()
                } else {
                    format!(", {}", t.overrides_line())
                }
            );
        }
    }
    Ok(())
}

fn to_json(configs: &BTreeMap<String, Config>) -> Result<BTreeMap<String, serde_json::Value>> {
    configs
        .iter()
        .map(|(k, c)| Ok((k.clone(), serde_json::to_value(c)?)))
        .collect()
}

/// The bars every task needs, fetched once here (grouped by the data settings they use), so that
/// tasks only read the store; each mode's configuration then reads the store (`data.source =
/// "store"`). Without `fetch`, the store must already hold every series.
fn fetch_once(
    paths: &Paths,
    mut configs: BTreeMap<String, Config>,
    tasks: &[TaskSpec],
    fetch: bool,
    observer: &impl Fn() -> Option<Observer>,
) -> Result<BTreeMap<String, Config>> {
    // (data settings as JSON) → (a configuration with them, the symbols).
    let mut groups: BTreeMap<String, (Config, Vec<String>)> = BTreeMap::new();
    let json = to_json(&configs)?;
    for t in tasks {
        let c = grid::task_config(&json[&t.mode], t)?;
        // What the bars depend on (not how they are split between training and validation).
        let mut data = c.data.clone();
        data.train_split = 0.0;
        data.validation_split = 0.0;
        let key = serde_json::to_string(&(&data, &c.synthetic, &c.universe))?;
        let entry = groups.entry(key).or_insert_with(|| (c, Vec::new()));
        if !entry.1.contains(&t.symbol) {
            entry.1.push(t.symbol.clone());
        }
    }
    let store = Store::new(&paths.data);
    for (c, symbols) in groups.values() {
        if fetch && c.data.source != DataSource::Store {
            let req = JobRequest::Fetch {
                symbols: symbols.clone(),
            };
            jobs::run_job(paths, c, &req, &CancelToken::new(), observer())
                .context("fetching the sweep's bars")?;
        }
        let missing: Vec<&String> = symbols
            .iter()
            .filter(|s| {
                c.universe
                    .resolve(s)
                    .and_then(|sym| store.contains(&sym, c.data.timeframe))
                    .map_or(true, |has| !has)
            })
            .collect();
        if !missing.is_empty() {
            bail!(
                "the store has no {} bars for {}: fetch them first (or drop --no-fetch)",
                c.data.timeframe,
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    for c in configs.values_mut() {
        c.data.source = DataSource::Store;
    }
    Ok(configs)
}

/// `syna-synb-2x3`: symbols (up to three) and the grid's size.
fn label(g: &Grid) -> String {
    let mut s: Vec<String> = g
        .symbols
        .iter()
        .take(3)
        .map(|x| x.to_ascii_lowercase())
        .collect();
    if g.symbols.len() > 3 {
        s.push(format!("{}sym", g.symbols.len()));
    }
    s.push(format!("{}x{}", g.seeds.len(), grid::task_count(g)));
    s.join("-")
}

/// What `sweep resume` did.
#[derive(Debug, Clone)]
pub struct ResumeOutcome {
    pub tasks: Vec<usize>,
    /// Completed tasks (left alone) and live ones (waited for, not restarted).
    pub completed: usize,
    pub live: usize,
    /// The new supervisor's pid or the new Slurm job id ("" when there was nothing to do).
    pub handle: String,
}

/// Re-submits what did not complete: never a completed task, never one that still runs or waits
/// in the queue. A training run a task left unfinished continues from its last state.
/// `time`: a new Slurm time limit for what is re-submitted (a task that timed out).
pub fn resume(
    paths: &Paths,
    which: &str,
    foreground: bool,
    time: Option<&str>,
) -> Result<ResumeOutcome> {
    if let Some(t) = time {
        if crate::config::sweep::parse_time_limit(t).is_none() {
            bail!("--time {t:?} is not a Slurm time limit: minutes, HH:MM:SS, D-HH:MM:SS …");
        }
    }
    let dir = SweepDir::open(paths, which)?;
    let view = super::view(&dir, true)?;
    let tasks: Vec<usize> = view
        .tasks
        .iter()
        .filter(|t| t.state.needs_run())
        .map(|t| t.spec.index)
        .collect();
    let completed = view
        .tasks
        .iter()
        .filter(|t| t.state == super::TaskState::Completed)
        .count();
    let live = view.tasks.iter().filter(|t| t.state.is_live()).count();
    {
        let _l = dir.lock()?;
        let mut plan = dir.read_plan()?;
        plan.cancelled = None;
        if let Some(t) = time {
            plan.slurm.time = t.to_string();
        }
        dir.write_plan(&plan)?;
    }
    let mut out = ResumeOutcome {
        tasks: tasks.clone(),
        completed,
        live,
        handle: String::new(),
    };
    let exe = std::env::current_exe()?;
    match view.plan.backend {
        BackendKind::Slurm if tasks.is_empty() => {}
        BackendKind::Slurm => {
            let mut plan = dir.read_plan()?;
            out.handle = submit_slurm(paths, &dir, &mut plan, &tasks)?;
        }
        BackendKind::Local => {
            if tasks.is_empty() && live == 0 {
                super::refresh_manifest(&dir);
                return Ok(out);
            }
            if super::dir::DirLock::try_take(&dir.supervisor_lock_path())?.is_none() {
                bail!(
                    "sweep {} has a supervisor running; it runs what remains (cancel it first to restart)",
                    dir.id
                );
            }
            out.handle = if foreground {
                local::supervise(paths, &dir, &exe)?;
                std::process::id().to_string()
            } else {
                local::spawn_supervisor(paths, &dir, &exe)?.to_string()
            };
        }
    }
    super::refresh_manifest(&dir);
    Ok(out)
}

/// Cancels a sweep: no task starts any more; running tasks stop (saving their training state) —
/// `scancel` for Slurm, SIGTERM to the supervisor (and any task of this host) for local.
pub fn cancel(paths: &Paths, which: &str) -> Result<String> {
    let dir = SweepDir::open(paths, which)?;
    let plan = {
        let _l = dir.lock()?;
        let mut plan = dir.read_plan()?;
        plan.cancelled = Some(Utc::now());
        dir.write_plan(&plan)?;
        plan
    };
    let view = super::view(&dir, false)?;
    let mut said = Vec::new();
    match plan.backend {
        BackendKind::Slurm => {
            let jobs = super::slurm_jobs(&plan);
            slurm::cancel(&jobs)?;
            said.push(format!("scancel {}", jobs.join(" ")));
        }
        BackendKind::Local => {
            let here = crate::jobs::rundir::hostname();
            for s in &plan.submissions {
                if let Launch::Local { host, pid } = &s.via {
                    if *host == here && super::dir::pid_alive(*pid) && is_quantdeck(*pid) {
                        signal(*pid);
                        said.push(format!("stopped the supervisor (pid {pid})"));
                    }
                }
            }
            for t in view.tasks.iter().filter(|t| t.state.is_live()) {
                if let Some(b) = t.beat.as_ref().filter(|b| b.host == here) {
                    if super::dir::pid_alive(b.pid) && is_quantdeck(b.pid) {
                        signal(b.pid);
                    }
                }
            }
        }
    }
    super::refresh_manifest(&dir);
    said.push(format!(
        "{} task(s) were running or waiting",
        view.tasks.iter().filter(|t| t.state.is_live()).count()
    ));
    Ok(format!("sweep {} cancelled: {}", dir.id, said.join("; ")))
}

fn signal(pid: u32) {
    // SAFETY: kill with a pid read from our own records, checked alive and ours just before.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// Whether `pid` runs quantdeck (a pid in a record may have been reused since).
fn is_quantdeck(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("sweep-"))
}
