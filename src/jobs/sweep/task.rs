//! One task of a sweep, run by `quantdeck sweep-task SWEEP INDEX` in a process of its own (a local
//! worker, or a Slurm array task): train → gate → walk-forward as the plan says, each stage a
//! normal job with its own run directory. The task's log records every step as it happens, so a
//! later attempt skips what completed and continues a training run from its last state; a task
//! that completed is never run again.

use super::dir::SweepDir;
use super::grid::task_config;
use super::record::{Beat, StageOutcome, StopCause, TaskEntry, TaskOutcome, TaskRecord, TaskSpec};
use super::state::history;
use crate::config::{Config, Stage};
use crate::jobs::rundir::{hostname, HEARTBEAT_EVERY};
use crate::jobs::{self, CancelToken, Event, JobRequest, JobStatus, RunDir};
use crate::paths::Paths;
use anyhow::{anyhow, Result};
use chrono::Utc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// Exit codes of `sweep-task`.
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_CONFIG: i32 = 2;
pub const EXIT_STOPPED: i32 = 130;

/// Runs task `index` of sweep `id` to its end; returns the process exit code.
pub fn run(paths: &Paths, id: &str, index: usize) -> Result<i32> {
    let dir = SweepDir::open_exact(paths, id)?;
    let plan = dir.read_plan()?;
    let spec = dir
        .read_tasks()?
        .into_iter()
        .find(|t| t.index == index)
        .ok_or_else(|| anyhow!("sweep {id} has no task {index}"))?;
    let Some(_lock) = dir.try_task_lock(index)? else {
        eprintln!("task {index}: another process is running it; nothing to do");
        return Ok(0);
    };
    let past = history(&dir.records(index));
    if past.completed {
        eprintln!("task {index}: already completed; it is not run twice");
        return Ok(0);
    }
    let attempt = past.attempts + 1;
    let say = |entry: TaskEntry| {
        dir.append(
            index,
            &TaskRecord {
                at: Utc::now(),
                entry,
            },
        )
    };
    say(TaskEntry::Attempt {
        attempt,
        host: hostname(),
        pid: std::process::id(),
        slurm_job: std::env::var("SLURM_JOB_ID").ok(),
    })?;
    let stop = Stop::listen()?;
    let stage_now = Arc::new(Mutex::new(None));
    let beat = BeatThread::start(dir.clone(), index, attempt, stage_now.clone());
    eprintln!(
        "task {index} (attempt {attempt}): {} seed {} mode {} {}",
        spec.symbol,
        spec.seed,
        spec.mode,
        spec.overrides_line()
    );
    let outcome = match plan
        .configs
        .get(&spec.mode)
        .ok_or_else(|| anyhow!("the plan has no configuration for mode {}", spec.mode))
        .and_then(|c| task_config(c, &spec))
    {
        Ok(cfg) => {
            let ctx = TaskCtx {
                paths,
                dir: &dir,
                spec: &spec,
                cfg: &cfg,
                stop: &stop,
                stage_now: &stage_now,
            };
            ctx.stages(&plan.stages, past)
        }
        Err(e) => TaskOutcome::Failed {
            stage: Stage::Train,
            exit_code: EXIT_CONFIG,
            message: format!("{e:#}"),
        },
    };
    beat.stop();
    say(TaskEntry::Finished {
        outcome: outcome.clone(),
    })?;
    let code = exit_code(index, &outcome);
    super::refresh_manifest(&dir);
    Ok(code)
}

/// The task process's exit code for its outcome (what Slurm records), saying why on stderr.
fn exit_code(index: usize, outcome: &TaskOutcome) -> i32 {
    match outcome {
        TaskOutcome::Completed => 0,
        TaskOutcome::Failed {
            exit_code, message, ..
        } => {
            eprintln!("task {index} failed: {message}");
            *exit_code
        }
        TaskOutcome::Stopped { signal } => {
            eprintln!("task {index} stopped ({signal:?}); `quantdeck sweep resume` continues it");
            EXIT_STOPPED
        }
    }
}

struct TaskCtx<'a> {
    paths: &'a Paths,
    dir: &'a SweepDir,
    spec: &'a TaskSpec,
    cfg: &'a Config,
    stop: &'a Stop,
    stage_now: &'a Arc<Mutex<Option<Stage>>>,
}

impl TaskCtx<'_> {
    /// Runs the stages that are still to do; stops at the first that does not complete.
    fn stages(&self, stages: &[Stage], past: super::state::History) -> TaskOutcome {
        let mut train_run = past.runs.get(&Stage::Train).cloned();
        for &stage in stages {
            if self.stop.token.is_cancelled() {
                return self.stop.outcome();
            }
            if past.done.contains(&stage) {
                eprintln!("{}: done in an earlier attempt, skipped", stage.as_str());
                continue;
            }
            if let Ok(mut s) = self.stage_now.lock() {
                *s = Some(stage);
            }
            let req = match (stage, train_run.clone()) {
                (Stage::Train, prior) => self.train_request(prior),
                (Stage::Gate, Some(run)) => JobRequest::Gate { train_run: run },
                (Stage::WalkForward, Some(run)) => JobRequest::WalkForward {
                    train_run: run,
                    period: Default::default(),
                },
                (_, None) => {
                    return TaskOutcome::Failed {
                        stage,
                        exit_code: EXIT_FAILED,
                        message: "no training run to evaluate".into(),
                    }
                }
            };
            match self.stage(stage, &req) {
                Ok((run, JobStatus::Completed)) => {
                    if stage == Stage::Train {
                        train_run = Some(run);
                    }
                }
                Ok((_, _)) => return self.stop.outcome(),
                Err(message) => {
                    return TaskOutcome::Failed {
                        stage,
                        exit_code: EXIT_FAILED,
                        message,
                    }
                }
            }
        }
        TaskOutcome::Completed
    }

    /// A new training run, or — when an earlier attempt left one unfinished with a training
    /// state — that run continued from its last state.
    fn train_request(&self, prior: Option<String>) -> JobRequest {
        let fresh = JobRequest::Train {
            symbol: self.spec.symbol.clone(),
            group: None,
        };
        let Some(run) = prior else { return fresh };
        match jobs::resume::locate(self.paths, Some(&run), None) {
            Ok(point) => {
                eprintln!(
                    "train: continuing {run} from its state at update {}",
                    point.update()
                );
                JobRequest::ResumeTrain {
                    run: Some(run),
                    checkpoint: None,
                    device: None,
                    expect: None,
                }
            }
            Err(e) => {
                eprintln!("train: {run} cannot be continued ({e:#}); training afresh");
                fresh
            }
        }
    }

    /// Runs one stage's job; records its run as soon as it exists and its outcome at the end.
    fn stage(
        &self,
        stage: Stage,
        req: &JobRequest,
    ) -> std::result::Result<(String, JobStatus), String> {
        let (dir, index) = (self.dir.clone(), self.spec.index);
        let started: Arc<Mutex<Option<String>>> = Arc::default();
        let seen = started.clone();
        let observer = move |rec: &jobs::EventRecord| match &rec.event {
            Event::Started { .. } => {
                if let Ok(mut s) = seen.lock() {
                    *s = Some(rec.run_id.clone());
                }
                let entry = TaskEntry::StageStarted {
                    stage,
                    run: rec.run_id.clone(),
                };
                if let Err(e) = dir.append(index, &TaskRecord { at: rec.at, entry }) {
                    eprintln!("cannot record the {} run: {e:#}", stage.as_str());
                }
                eprintln!("{}: run {}", stage.as_str(), rec.run_id);
            }
            Event::Log { level, message } if *level >= jobs::LogLevel::Warn => {
                eprintln!("{}: {}: {message}", stage.as_str(), level.as_str());
            }
            Event::Finished { status, message } => {
                eprintln!("{}: {} — {message}", stage.as_str(), status.as_str());
            }
            _ => {}
        };
        let result = jobs::run_job(
            self.paths,
            self.cfg,
            req,
            &self.stop.token,
            Some(Box::new(observer)),
        );
        let record = |run: &str, outcome| {
            let entry = TaskEntry::StageDone {
                stage,
                run: run.to_string(),
                outcome,
            };
            if let Err(e) = self.dir.append(
                self.spec.index,
                &TaskRecord {
                    at: Utc::now(),
                    entry,
                },
            ) {
                eprintln!("cannot record the end of {}: {e:#}", stage.as_str());
            }
        };
        match result {
            Ok(run) => {
                let status = RunDir::open(self.paths, &run)
                    .and_then(|d| d.read_manifest())
                    .map(|m| m.status)
                    .unwrap_or(JobStatus::Failed);
                let outcome = match status {
                    JobStatus::Completed => StageOutcome::Completed,
                    JobStatus::Cancelled | JobStatus::Running => StageOutcome::Cancelled,
                    JobStatus::Failed => StageOutcome::Failed,
                };
                record(&run, outcome);
                Ok((run, status))
            }
            Err(e) => {
                let message = format!("{e:#}");
                let run = started.lock().ok().and_then(|s| s.clone());
                if let Some(run) = run {
                    record(&run, StageOutcome::Failed);
                }
                Err(message)
            }
        }
    }
}

/// The signals that stop a task: SIGINT, SIGTERM, SIGHUP (cancel, scancel, a dying supervisor)
/// and SIGUSR1 (Slurm's warning before the time limit). The first one cancels the running job,
/// which saves its state; a second SIGINT exits at once.
struct Stop {
    token: CancelToken,
    cause: Arc<AtomicU8>,
}

const CAUSE_NONE: u8 = 0;
const CAUSE_TERM: u8 = 1;
const CAUSE_TIME: u8 = 2;

impl Stop {
    fn listen() -> Result<Stop> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGUSR1])
            .map_err(|e| anyhow!("cannot install signal handlers: {e}"))?;
        let token = CancelToken::new();
        let cause = Arc::new(AtomicU8::new(CAUSE_NONE));
        let (t, c) = (token.clone(), cause.clone());
        std::thread::Builder::new()
            .name("task-signals".into())
            .spawn(move || {
                for s in signals.forever() {
                    let why = if s == SIGUSR1 { CAUSE_TIME } else { CAUSE_TERM };
                    // A second Ctrl+C leaves at once; a scheduler's repeated TERM waits for the
                    // state to be saved (it kills after its own grace anyway).
                    if t.is_cancelled() && s == SIGINT {
                        std::process::exit(EXIT_STOPPED);
                    }
                    // The time-limit warning is the more precise reason; keep it.
                    let _ = c.compare_exchange(CAUSE_NONE, why, Ordering::SeqCst, Ordering::SeqCst);
                    eprintln!(
                        "signal {s}: stopping (training saves its state first){}",
                        if why == CAUSE_TIME {
                            " — the time limit is near"
                        } else {
                            ""
                        }
                    );
                    t.cancel();
                }
            })?;
        Ok(Stop { token, cause })
    }

    fn outcome(&self) -> TaskOutcome {
        let signal = if self.cause.load(Ordering::SeqCst) == CAUSE_TIME {
            StopCause::TimeLimit
        } else {
            StopCause::Terminated
        };
        TaskOutcome::Stopped { signal }
    }
}

/// Rewrites the task's `beat.json` every few seconds until stopped.
struct BeatThread {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BeatThread {
    fn start(
        dir: SweepDir,
        index: usize,
        attempt: u32,
        stage: Arc<Mutex<Option<Stage>>>,
    ) -> BeatThread {
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        let (host, pid) = (hostname(), std::process::id());
        let beat = move || {
            let b = Beat {
                at: Utc::now(),
                host: host.clone(),
                pid,
                attempt,
                stage: stage.lock().ok().and_then(|s| *s),
            };
            if let Err(e) = dir.write_beat(index, &b) {
                eprintln!("task {index}: heartbeat not written: {e:#}");
            }
        };
        let thread = std::thread::Builder::new()
            .name("task-beat".into())
            .spawn(move || {
                beat();
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    rx.recv_timeout(HEARTBEAT_EVERY)
                {
                    beat();
                }
            })
            .ok();
        BeatThread { stop, thread }
    }

    fn stop(mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
