//! Sweeps through the real binary, on the local backend (worker processes under a detached
//! supervisor) and on a real Slurm cluster (`sweep_slurm`): every task runs once, a failing task
//! shows failed with its exit code, cancel cancels, and resume runs only what remains — a
//! training run a task left unfinished continues from its last state.

use crate::common::{qd, text};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Small enough to train in a second or two; validations every few updates, so a stopped run
/// has a state to continue from.
pub const CONFIG: &str = "[universe]\nequities = [\"SYNA\", \"SYNB\"]\ncrypto = []\n\
[data]\nend = \"2024-03-28\"\n[features]\nwindow = 8\n\
[ppo]\ndevice = \"cpu\"\nn_envs = 8\nn_steps = 32\nminibatch = 64\nepochs = 1\n\
validation_interval = 5\nhidden_dims = [16]\ntotal_timesteps = 2048\nkeep_every = 1\n\
[gating]\nmin_trades = 1\nmin_days = 2\n[live]\nconfidence_threshold = 0.0\n\
[walk_forward]\nfolds = 2\n[slurm]\ncpus_per_task = 1\nsignal_grace_s = 30\n";

pub struct Home {
    _tmp: tempfile::TempDir,
    pub path: PathBuf,
    cfg: String,
}

impl Home {
    pub fn new() -> Home {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().to_path_buf();
        let cfg = path.join("small.toml");
        std::fs::write(&cfg, CONFIG).unwrap();
        Home {
            cfg: cfg.display().to_string(),
            _tmp: tmp,
            path,
        }
    }

    /// `quantdeck --config small.toml ARGS…`: (exit code, stdout + stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String) {
        let mut all = vec!["--config", self.cfg.as_str()];
        all.extend_from_slice(args);
        let o = qd(&self.path, &all);
        (o.status.code().unwrap_or(-1), text(&o))
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {out}");
        out
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["sweep", "status", "--json"])).unwrap()
    }

    /// Polls `sweep status` until `done` holds. The deadline only keeps a broken sweep from
    /// hanging the suite; nothing is asserted about how long it took.
    pub fn wait_for(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let t0 = Instant::now();
        loop {
            let s = self.status();
            if done(&s) {
                return s;
            }
            if t0.elapsed() > Duration::from_secs(900) {
                panic!("gave up waiting for {what}: {s:#}");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    pub fn runs(&self, prefix: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.path.join("runs"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .collect();
        v.sort();
        v
    }
}

pub fn state(s: &Value, task: usize) -> String {
    s["tasks"][task]["state"]["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

pub fn states(s: &Value) -> Vec<String> {
    (0..s["tasks"].as_array().map_or(0, |t| t.len()))
        .map(|i| state(s, i))
        .collect()
}

/// A process runs a task, or the scheduler holds one.
pub fn busy(s: &Value) -> bool {
    states(s).iter().any(|x| x == "running" || x == "queued")
}

pub fn train_run(s: &Value, task: usize) -> Option<String> {
    s["tasks"][task]["history"]["runs"]["train"]
        .as_str()
        .map(String::from)
}

pub fn attempts(s: &Value, task: usize) -> u64 {
    s["tasks"][task]["history"]["attempts"]
        .as_u64()
        .unwrap_or(0)
}

/// The task's training run has written a training state (something to resume from).
pub fn has_state(home: &Path, s: &Value, task: usize) -> bool {
    train_run(s, task).is_some_and(|r| {
        std::fs::read_dir(home.join("runs").join(r).join("state"))
            .is_ok_and(|mut d| d.next().is_some())
    })
}

/// After a stop and `sweep resume`: the finished tasks ran once, the stopped one continued its
/// own training run from its state, and the one that never started ran once.
pub fn check_resumed(home: &Home, before: &Value, after: &Value) {
    assert!(states(after).iter().all(|s| s == "completed"), "{after:#}");
    for t in [0, 1, 3] {
        assert_eq!(attempts(after, t), 1, "task {t} ran once: {after:#}");
    }
    assert_eq!(attempts(after, 2), 2, "{after:#}");
    let run = train_run(before, 2).unwrap();
    assert_eq!(train_run(after, 2).as_deref(), Some(run.as_str()));
    let events =
        std::fs::read_to_string(home.path.join("runs").join(&run).join("events.jsonl")).unwrap();
    assert!(
        events.contains("\"type\":\"restart\""),
        "task 2's training continued from its state"
    );
    // Never more training runs than tasks: nothing ran twice.
    assert_eq!(home.runs("train-").len(), 4);
    assert_eq!(home.runs("fetch-").len(), 1, "the bars were fetched once");
}

/// Each seed group's median and worst are its own seeds' gate figures; the worst is the lowest.
fn check_groups(tasks: &[Value], groups: &[Value]) {
    for g in groups {
        let fitness = |seed: &Value| {
            tasks
                .iter()
                .find(|t| t["group"] == g["group"] && t["seed"] == *seed)
                .and_then(|t| t["fitness"].as_f64())
                .unwrap_or_else(|| panic!("no gated seed {seed} in group {g:#}"))
        };
        assert_eq!(
            g["median_fitness"].as_f64(),
            Some(fitness(&g["median_seed"]))
        );
        let worst = fitness(&g["worst_seed"]);
        assert_eq!(g["worst_fitness"].as_f64(), Some(worst));
        let lowest = tasks
            .iter()
            .filter(|t| t["group"] == g["group"])
            .filter_map(|t| t["fitness"].as_f64())
            .fold(f64::INFINITY, f64::min);
        assert_eq!(worst, lowest, "{g:#}");
    }
}

#[test]
fn a_local_sweep_runs_every_task_once_with_a_leaderboard_and_tensorboard_files() {
    let h = Home::new();
    let out = h.ok(&[
        "sweep",
        "SYNA",
        "SYNB",
        "--seeds",
        "2",
        "--workers",
        "2",
        "--wait",
    ]);
    assert!(out.contains("4 tasks: 4 completed"), "{out}");
    let s = h.status();
    assert_eq!(s["status"], "completed");
    assert_eq!(h.runs("train-").len(), 4);
    assert_eq!(h.runs("gate-").len(), 4);
    assert_eq!(h.runs("walk-forward-").len(), 4);
    assert_eq!(h.runs("fetch-").len(), 1, "the bars were fetched once");
    for r in h.runs("train-") {
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(r.join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(
            m["config"]["data"]["source"], "store",
            "tasks read the store"
        );
        assert_eq!(
            quantdeck::jobs::tensorboard::event_files(&r).len(),
            1,
            "{}",
            r.display()
        );
    }
    let board: Value = serde_json::from_str(&h.ok(&["sweep", "report", "--json"])).unwrap();
    let tasks = board["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 4);
    for t in tasks {
        assert!(t["gate"].is_string() && t["decision"].is_string(), "{t:#}");
        assert!(t["sharpe"].is_number() && t["momentum"].is_number() && t["buy_hold"].is_number());
        assert_eq!(t["progress"][0], t["progress"][1]);
    }
    let groups = board["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "one seed group per symbol");
    assert!(groups.iter().all(|g| g["gated"] == 2 && g["seeds"] == 2));
    check_groups(tasks, groups);
    let text = h.ok(&["sweep", "report"]);
    assert!(
        text.contains("seed groups") && text.contains("SYNB"),
        "{text}"
    );
    // Nothing left to resume: a completed task is never run again.
    let out = h.ok(&["sweep", "resume"]);
    assert!(out.contains("nothing to resume"), "{out}");
    assert_eq!(h.runs("train-").len(), 4);
    let runs = h.ok(&["runs"]);
    assert!(
        runs.contains("sweep") && runs.contains("4 tasks: 4 completed"),
        "{runs}"
    );
}

/// The session id of a live process (None once it has ended, zombies included).
fn session(pid: u64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command's closing parenthesis: state, ppid, pgrp, session.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    (!matches!(fields.first(), Some(&"Z") | Some(&"X"))).then(|| fields.get(3)?.parse().ok())?
}

#[test]
fn a_local_sweep_survives_its_terminal_and_kill_9_of_its_supervisor_and_resumes_what_remains() {
    let h = Home::new();
    // Two short tasks, then two long ones; one worker, so task 2 runs alone when killed.
    let out = h.ok(&[
        "sweep",
        "SYNA",
        "--seeds",
        "2",
        "--set",
        "ppo.total_timesteps=2048,102400",
        "--workers",
        "1",
    ]);
    assert!(out.contains("supervisor pid"), "{out}");
    let pid = h.wait_for("the supervisor's record", |s| {
        s["plan"]["submissions"][0]["via"]["pid"].is_u64()
    })["plan"]["submissions"][0]["via"]["pid"]
        .as_u64()
        .unwrap();
    // It runs in a session of its own and ignores SIGHUP: the sweep survives its terminal. The
    // hang-up comes early, so that the kill below can follow task 2's first state at once (a
    // short task finishes within a second or two on a quiet machine).
    assert_ne!(session(pid), session(u64::from(std::process::id())));
    // SAFETY (both kills): the supervisor this test started (its pid from the sweep's record).
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGHUP) }, 0);
    let before = h.wait_for("task 2 to save a training state", |s| {
        state(s, 2) == "running" && has_state(&h.path, s, 2)
    });
    assert!(session(pid).is_some(), "SIGHUP ended the supervisor");
    assert_eq!(
        states(&before)[..2],
        ["completed", "completed"],
        "SIGHUP stopped a task: {before:#}"
    );
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    // Its task learns of it (SIGTERM on the supervisor's death), saves and stops.
    let stopped = h.wait_for("the tasks to stop", |s| !busy(s));
    assert_eq!(
        states(&stopped),
        ["completed", "completed", "stopped", "pending"],
        "{stopped:#}"
    );
    let (code, out) = h.run(&["sweep", "resume", "--wait"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("resumed 2 task(s) (2, 3)"), "{out}");
    check_resumed(&h, &before, &h.status());
}

#[test]
fn sweep_settings_are_checked_before_anything_runs() {
    let h = Home::new();
    let (code, out) = h.run(&["sweep", "SYNA", "--set", "ppo.gamma=0.9,2"]);
    assert_ne!(code, 0);
    assert!(
        out.contains("ppo.gamma") && out.contains("out of range"),
        "{out}"
    );
    let (code, out) = h.run(&["sweep", "SYNA", "--set", "ppo.seed=1,2"]);
    assert_ne!(code, 0);
    assert!(out.contains("--seeds"), "{out}");
    // A [sweep.set] key that is no setting: the file and its line.
    let bad = h.path.join("bad.toml");
    std::fs::write(
        &bad,
        format!("{CONFIG}[sweep.set]\n\"ppo.actor_lrr\" = [0.001]\n"),
    )
    .unwrap();
    let o = qd(
        &h.path,
        &[
            "--config",
            &bad.display().to_string(),
            "sweep",
            "SYNA",
            "--dry-run",
        ],
    );
    let out = text(&o);
    assert!(!o.status.success());
    let line = CONFIG.lines().count() + 2;
    assert!(
        out.contains("bad.toml")
            && out.contains(&format!("line {line}"))
            && out.contains("actor_lrr"),
        "{out}"
    );
    // A bad [slurm] value fails while the file is read, with its line and field.
    std::fs::write(&bad, CONFIG.replace("cpus_per_task = 1", "time = \"soon\"")).unwrap();
    let o = qd(
        &h.path,
        &["--config", &bad.display().to_string(), "sweep", "--dry-run"],
    );
    let out = text(&o);
    assert!(
        !o.status.success() && out.contains("bad.toml") && out.contains("time"),
        "{out}"
    );
    // A dry run lists the tasks and the script, and starts nothing.
    let out = h.ok(&[
        "sweep",
        "SYNA",
        "SYNB",
        "--seeds",
        "3",
        "--set",
        "ppo.actor_lr=1e-4,3e-4",
        "--backend",
        "slurm",
        "--dry-run",
    ]);
    assert!(out.contains("12 task(s)"), "{out}");
    assert!(
        out.contains("sweep-task") && out.contains("#SBATCH --cpus-per-task=1"),
        "{out}"
    );
    assert!(!h.path.join("runs").exists() || h.runs("sweep-").is_empty());
}

#[test]
fn a_sweep_table_in_the_config_file_expands_to_its_grid() {
    let h = Home::new();
    // [sweep]: symbols × seeds; [sweep.set]: the settings to cross.
    let table = h.path.join("table.toml");
    std::fs::write(
        &table,
        format!("{CONFIG}[sweep]\nsymbols = [\"SYNB\"]\nseeds = 2\n[sweep.set]\n\"ppo.actor_lr\" = [1e-4, 3e-4]\n"),
    )
    .unwrap();
    let table = table.display().to_string();
    let o = qd(&h.path, &["--config", &table, "sweep", "--dry-run"]);
    let out = text(&o);
    assert!(o.status.success() && out.contains("4 task(s)"), "{out}");
    for lr in ["0.0001", "0.0003"] {
        assert_eq!(
            out.matches(&format!("SYNB seed 2 mode default ppo.actor_lr={lr}"))
                .count(),
            1,
            "{out}"
        );
    }
    assert!(h.runs("sweep-").is_empty(), "a dry run starts nothing");
}
