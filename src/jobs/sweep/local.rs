//! The local backend: a supervisor process (`quantdeck sweep-run SWEEP`, started in a session of
//! its own so that closing the terminal never stops it) keeps N workers busy, each task a
//! `quantdeck sweep-task` child. A child gets SIGTERM when the supervisor dies (it saves its
//! training state and records the stop), so `sweep resume` after a `kill -9` finds every task
//! either completed or resumable, never one still running unsupervised.

use super::dir::{DirLock, SweepDir};
use super::record::{Launch, Submission};
use crate::jobs::rundir::hostname;
use crate::paths::Paths;
use anyhow::{bail, Context, Result};
use chrono::Utc;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Workers when none are asked for: one per core, or one per GPU when training on CUDA.
pub fn default_workers(cuda: bool) -> usize {
    match gpu_count() {
        n if cuda && n > 0 => n,
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// The GPUs `nvidia-smi` lists (0 without one).
fn gpu_count() -> usize {
    Command::new("nvidia-smi")
        .args(["--query-gpu=index", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
        .unwrap_or(0)
}

/// Whether the sweep trains on CUDA (a mode's `ppo.device`, or a device in its settings).
fn uses_cuda(plan: &super::record::SweepPlan) -> bool {
    let cuda = |s: &str| s.starts_with("cuda");
    plan.configs
        .values()
        .any(|c| c["ppo"]["device"].as_str().is_some_and(cuda))
        || plan
            .grid
            .set
            .iter()
            .any(|(k, vs)| k == "ppo.device" && vs.iter().any(|v| v.as_str().is_some_and(cuda)))
}

/// The lowest worker slot no running task holds.
fn free_slot(slots: &BTreeMap<usize, usize>, workers: usize) -> usize {
    (0..workers)
        .find(|s| !slots.values().any(|x| x == s))
        .unwrap_or(0)
}

/// Starts the supervisor of sweep `id` detached (new session, output to `supervisor.out`).
pub fn spawn_supervisor(paths: &Paths, dir: &SweepDir, exe: &Path) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path.join("supervisor.out"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--home")
        .arg(&paths.home)
        .args(["sweep-run", &dir.id])
        .env_remove("QUANTDECK_HOME")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches nothing of the parent's; it runs in the
    // child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the sweep's supervisor")?;
    let pid = child.id();
    // Reap it if it ends while this process still runs (the TUI); a CLI exits first.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(pid)
}

/// Runs the sweep's tasks on this machine until every one has ended or the sweep is cancelled.
/// Returns the exit code: 0 when every task completed.
pub fn supervise(paths: &Paths, dir: &SweepDir, exe: &Path) -> Result<i32> {
    // A moment's wait: another process may be checking the lock (`sweep resume`, `--wait`).
    let Ok(_held) = DirLock::take(&dir.supervisor_lock_path(), Duration::from_secs(5)) else {
        bail!(
            "sweep {} already has a supervisor running (it holds {})",
            dir.id,
            dir.supervisor_lock_path().display()
        );
    };
    let stop = Arc::new(AtomicBool::new(false));
    listen(stop.clone())?;
    let (workers, gpus) = record_submission(dir)?;
    super::own_manifest(dir)?;
    let beat = super::ManifestBeat::start(dir.clone());
    println!("supervisor {}: {workers} worker(s)", std::process::id());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut pool = Pool {
        paths,
        dir,
        exe,
        workers,
        gpus,
        threads: (cores / workers).max(1),
        running: BTreeMap::new(),
        slots: BTreeMap::new(),
        started: BTreeSet::new(),
    };
    let mut last_look: Option<Instant> = None;
    let cancelled = loop {
        let exited = pool.reap();
        if stop.load(Ordering::SeqCst) || dir.read_plan().is_ok_and(|p| p.cancelled.is_some()) {
            break true;
        }
        if exited || last_look.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
            last_look = Some(Instant::now());
            if !pool.step()? {
                break false;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if cancelled {
        println!("cancelled: stopping {} running task(s)", pool.running.len());
        stop_children(&mut pool.running);
    }
    beat.stop();
    super::finish_manifest(dir, cancelled)
}

/// Records this supervisor's submission (the tasks that need a run); returns the workers and
/// the GPUs to share between them (0 when the sweep does not train on CUDA).
fn record_submission(dir: &SweepDir) -> Result<(usize, usize)> {
    let _l = dir.lock()?;
    let mut plan = dir.read_plan()?;
    let tasks: Vec<usize> = super::states(dir, false)?
        .iter()
        .filter(|(_, s)| s.needs_run())
        .map(|(t, _)| t.index)
        .collect();
    plan.submissions.push(Submission {
        at: Utc::now(),
        tasks,
        via: Launch::Local {
            host: hostname(),
            pid: std::process::id(),
        },
    });
    dir.write_plan(&plan)?;
    let gpus = if uses_cuda(&plan) { gpu_count() } else { 0 };
    Ok((plan.workers.max(1), gpus))
}

/// The supervisor's workers: the task processes it runs, each in a worker slot.
struct Pool<'a> {
    paths: &'a Paths,
    dir: &'a SweepDir,
    exe: &'a Path,
    workers: usize,
    gpus: usize,
    threads: usize,
    running: BTreeMap<usize, Child>,
    /// Task → worker slot; on CUDA, slot k trains on GPU k mod the GPUs.
    slots: BTreeMap<usize, usize>,
    /// Tasks this supervisor started (each at most once).
    started: BTreeSet<usize>,
}

impl Pool<'_> {
    fn reap(&mut self) -> bool {
        let exited = reap(&mut self.running);
        let running = &self.running;
        self.slots.retain(|t, _| running.contains_key(t));
        exited
    }

    /// One look at the tasks: starts those waiting, up to the free workers. Returns whether
    /// anything is left: a task running here, one waiting, or one live elsewhere (a task of an
    /// earlier supervisor still finishing, which may need a run once it has stopped).
    fn step(&mut self) -> Result<bool> {
        let states = super::states(self.dir, false)?;
        let live_elsewhere = states
            .iter()
            .any(|(t, s)| s.is_live() && !self.running.contains_key(&t.index));
        let todo: Vec<usize> = states
            .iter()
            .filter(|(t, s)| {
                s.needs_run()
                    && !self.running.contains_key(&t.index)
                    && !self.started.contains(&t.index)
            })
            .map(|(t, _)| t.index)
            .collect();
        let free = self.workers.saturating_sub(self.running.len());
        for &index in todo.iter().take(free) {
            self.start(index);
        }
        Ok(!(self.running.is_empty() && todo.is_empty() && !live_elsewhere))
    }

    fn start(&mut self, index: usize) {
        let slot = free_slot(&self.slots, self.workers);
        let gpu = (self.gpus > 0).then(|| slot % self.gpus);
        match start_task(self.paths, self.dir, self.exe, index, self.threads, gpu) {
            Ok(child) => {
                println!("task {index}: started (pid {}, worker {slot})", child.id());
                self.running.insert(index, child);
                self.slots.insert(index, slot);
            }
            Err(e) => println!("task {index}: cannot start: {e:#}"),
        }
        self.started.insert(index);
    }
}

fn start_task(
    paths: &Paths,
    dir: &SweepDir,
    exe: &Path,
    index: usize,
    threads: usize,
    gpu: Option<usize>,
) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    std::fs::create_dir_all(dir.task_dir(index))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.task_dir(index).join("out.log"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--home")
        .arg(&paths.home)
        .args(["sweep-task", &dir.id, &index.to_string()])
        .env_remove("QUANTDECK_HOME")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // The cores shared out between the workers (unless the user chose).
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        cmd.env("RAYON_NUM_THREADS", threads.to_string());
    }
    if let Some(g) = gpu {
        cmd.env("CUDA_VISIBLE_DEVICES", g.to_string());
    }
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl and getppid are async-signal-safe; this runs in the child before exec. The
    // child is told to stop (SIGTERM) when the supervisor dies, and does not start at all if it
    // already has.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0
                || libc::getppid() != parent
            {
                return Err(std::io::Error::other("the supervisor is gone"));
            }
            Ok(())
        });
    }
    cmd.spawn()
        .with_context(|| format!("cannot start task {index}"))
}

/// Collects the children that ended; returns whether any did.
fn reap(running: &mut BTreeMap<usize, Child>) -> bool {
    let done: Vec<usize> = running
        .iter_mut()
        .filter_map(|(i, c)| match c.try_wait() {
            Ok(Some(status)) => {
                println!("task {i}: exited ({status})");
                Some(*i)
            }
            Ok(None) => None,
            Err(e) => {
                println!("task {i}: cannot wait: {e}");
                Some(*i)
            }
        })
        .collect();
    for i in &done {
        running.remove(i);
    }
    !done.is_empty()
}

/// SIGTERM to every child (each saves its state), then waits; a child still there after a minute
/// is killed.
fn stop_children(running: &mut BTreeMap<usize, Child>) {
    for c in running.values() {
        // SAFETY: kill with a pid we spawned and have not reaped.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let t0 = Instant::now();
    while !running.is_empty() && t0.elapsed() < Duration::from_secs(60) {
        reap(running);
        std::thread::sleep(Duration::from_millis(100));
    }
    for (i, c) in running.iter_mut() {
        println!("task {i}: did not stop within a minute; killed");
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// SIGINT / SIGTERM stop the supervisor (and its tasks, which save first); SIGHUP is ignored: the
/// sweep survives the terminal that started it.
fn listen(stop: Arc<AtomicBool>) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("supervisor-signals".into())
        .spawn(move || {
            for s in signals.forever() {
                if s != SIGHUP {
                    stop.store(true, Ordering::SeqCst);
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_take_the_lowest_free_slot() {
        let mut slots = BTreeMap::new();
        assert_eq!(free_slot(&slots, 3), 0);
        slots.insert(7, 0);
        slots.insert(9, 2);
        assert_eq!(free_slot(&slots, 3), 1);
        slots.insert(4, 1);
        // All taken (a worker count lowered while tasks ran): slot 0 again.
        assert_eq!(free_slot(&slots, 3), 0);
    }

    #[test]
    fn gpus_are_shared_out_only_when_a_mode_or_a_setting_trains_on_cuda() {
        let mut plan = super::super::record::SweepPlan {
            format: 1,
            id: "sweep-x".into(),
            created: Utc::now(),
            grid: super::super::record::Grid {
                symbols: vec!["SYNA".into()],
                seeds: vec![1],
                modes: vec!["default".into()],
                set: vec![],
            },
            stages: vec![],
            backend: crate::config::BackendKind::Local,
            workers: 2,
            slurm: Default::default(),
            configs: [(
                "default".into(),
                serde_json::json!({"ppo": {"device": "cpu"}}),
            )]
            .into(),
            binary: "quantdeck".into(),
            submissions: vec![],
            cancelled: None,
        };
        assert!(!uses_cuda(&plan));
        plan.grid.set = vec![("ppo.device".into(), vec!["cpu".into(), "cuda:0".into()])];
        assert!(uses_cuda(&plan));
        plan.grid.set.clear();
        plan.configs
            .insert("big".into(), serde_json::json!({"ppo": {"device": "cuda"}}));
        assert!(uses_cuda(&plan));
    }
}
