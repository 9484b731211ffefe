//! Running jobs: the lifecycle every job shares (run directory, heartbeat, `Started` and
//! `Finished` events, the manifest's outcome), on the calling thread ([`run`]) or on a thread of
//! its own ([`spawn`], so candle work never blocks the UI).

use super::ctx::Ctx;
use super::walkforward::EvalPeriod;
use super::{
    resolve_train_run, ActiveRun, CancelToken, Event, EventRecord, EventSink, JobKind, JobStatus,
    RunDir,
};
use crate::config::Config;
use crate::features::events::EventTable;
use crate::paths::Paths;
use anyhow::Result;
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// What to run. Symbols and run ids are the user's words; jobs validate them.
#[derive(Debug, Clone, PartialEq)]
pub enum JobRequest {
    /// Fetch (or regenerate) bars for these symbols; empty = the whole universe.
    Fetch { symbols: Vec<String> },
    /// Fetch (or regenerate) the configured portfolio universe at `portfolio.timeframe`.
    FetchPortfolio,
    Train {
        symbol: String,
        /// One seed of a group trained with `--seeds N` (graded together by the gate).
        group: Option<super::rundir::SeedGroup>,
    },
    /// Train one portfolio policy over the configured universe (`portfolio.*`).
    TrainPortfolio,
    /// Continue a training run in its directory from a training state: the newest of `run` (an
    /// id, a unique prefix or `latest`), or `checkpoint` (a state or model file of the run). The
    /// run's own configuration continues; `device` may change. With `expect`, a configuration
    /// the user gave explicitly, a different network layout is refused.
    ResumeTrain {
        run: Option<String>,
        checkpoint: Option<std::path::PathBuf>,
        device: Option<String>,
        expect: Option<Box<Config>>,
    },
    /// Gate a finished (or interrupted) training run.
    Gate { train_run: String },
    WalkForward {
        train_run: String,
        period: EvalPeriod,
    },
    /// A paper-trading session: one model per symbol, on the broker `live.broker` names. The
    /// same models on the same broker account continue the same session unless `new_session`.
    Paper {
        train_runs: Vec<String>,
        bars: Option<usize>,
        /// A window or a walk-forward fold to replay (simulated broker only; a new session).
        replay: Option<super::replay::ReplaySpec>,
        new_session: bool,
        /// The user confirmed trading on Alpaca's live host (also needs `live.allow_live`).
        confirm_live: bool,
    },
}

impl JobRequest {
    pub fn kind(&self) -> JobKind {
        match self {
            JobRequest::Fetch { .. } | JobRequest::FetchPortfolio => JobKind::Fetch,
            JobRequest::Train { .. }
            | JobRequest::TrainPortfolio
            | JobRequest::ResumeTrain { .. } => JobKind::Train,
            JobRequest::Gate { .. } => JobKind::Gate,
            JobRequest::WalkForward { .. } => JobKind::WalkForward,
            JobRequest::Paper { .. } => JobKind::Paper,
        }
    }
}

/// Observers a caller adds to a job's sink (the TUI's channel, a progress bar).
pub type Observer = Box<dyn Fn(&EventRecord) + Send + Sync>;

/// Runs `req` to completion on the calling thread; returns the run id.
pub fn run(
    paths: &Paths,
    cfg: &Config,
    req: &JobRequest,
    cancel: &CancelToken,
    observer: Option<Observer>,
) -> Result<String> {
    let events = EventTable::load(&paths.home);
    // A resumed training run continues with its own configuration, in its own directory.
    let resume = prepare_resume(paths, req, &events)?;
    let cfg = resume.as_ref().map_or(cfg, |(_, c)| c);
    let resume_point = resume.as_ref().map(|(p, _)| p);
    let (label, parent) = label_and_parent(paths, req)?;
    let kind = req.kind();
    let opened = open_dir(paths, cfg, req, &label, parent.clone(), resume_point)?;
    let label = if label.is_empty() {
        opened.manifest.label.clone()
    } else {
        label
    };
    let run = Arc::new(ActiveRun::new(opened.dir, opened.manifest));
    let events_lost = resume_point.is_some()
        && std::fs::metadata(run.dir.events_path()).map_or(true, |m| m.len() == 0);
    let sink = open_sink(&run, cfg, req, observer, resume_point)?;
    sink.emit(Event::Started {
        kind,
        label: label.clone(),
    });
    tracing::info!("job {} started", run.id());
    // A damaged user event table changes the features: said where the user looks.
    for w in &events.warnings {
        sink.warn(format!("event table: {w}"));
    }
    if resume_point.is_some() {
        super::resume::announce(&run.dir, &sink, opened.resume_note, events_lost);
    }
    // A paper daemon beats from its loop once it runs; until then (models, broker) this
    // thread beats as often, so a slow start does not look down.
    let every = match kind {
        JobKind::Paper => super::rundir::PAPER_BEAT_EVERY,
        _ => super::rundir::HEARTBEAT_EVERY,
    };
    let heartbeat = Heartbeat::start(run.clone(), every);
    let ctx = Ctx {
        paths,
        cfg,
        run: &run,
        sink: &sink,
        cancel,
        events,
    };
    let target = Target {
        parent: parent.unwrap_or_default(),
        resume_point,
        claimed: opened.claimed.as_ref(),
    };
    let result = dispatch(&ctx, req, &target);
    heartbeat.stop();
    let (status, message) = match &result {
        Ok(msg) if cancel.is_cancelled() => (JobStatus::Cancelled, format!("cancelled: {msg}")),
        Ok(msg) => (JobStatus::Completed, msg.clone()),
        Err(e) => (JobStatus::Failed, format!("{e:#}")),
    };
    if let Some(io) = sink.io_error() {
        tracing::error!("run {}: events.jsonl incomplete: {io}", run.id());
    }
    sink.emit(Event::Finished {
        status,
        message: message.clone(),
    });
    run.finish(status, &message)?;
    // Released only once the manifest says how the run ended.
    drop(opened.run_lock);
    tracing::info!("job {} {}: {message}", run.id(), status.as_str());
    match result {
        Ok(_) => Ok(run.id().to_string()),
        Err(e) => Err(e.context(format!("run {} failed", run.id()))),
    }
}

/// A training resume's point and the run's own configuration (None for every other job).
fn prepare_resume(
    paths: &Paths,
    req: &JobRequest,
    events: &EventTable,
) -> Result<Option<(super::resume::ResumePoint, Config)>> {
    let JobRequest::ResumeTrain {
        run,
        checkpoint,
        device,
        expect,
    } = req
    else {
        return Ok(None);
    };
    super::resume::prepare(
        paths,
        (run.as_deref(), checkpoint.as_deref()),
        device.as_deref(),
        expect.as_deref(),
        events,
    )
    .map(Some)
}

/// The run's label (empty: taken from the manifest it reopens) and the training run it evaluates.
fn label_and_parent(paths: &Paths, req: &JobRequest) -> Result<(String, Option<String>)> {
    Ok(match req {
        JobRequest::Fetch { symbols } if symbols.is_empty() => ("universe".to_string(), None),
        JobRequest::FetchPortfolio => ("portfolio".to_string(), None),
        JobRequest::Fetch { symbols } => (symbols.join("-"), None),
        JobRequest::Train { symbol, .. } => (symbol.clone(), None),
        JobRequest::TrainPortfolio => (super::PORTFOLIO_LABEL.to_string(), None),
        JobRequest::Gate { train_run } | JobRequest::WalkForward { train_run, .. } => {
            let id = resolve_train_run(paths, train_run)?;
            let m = RunDir::open(paths, &id)?.read_manifest()?;
            (m.label, Some(id))
        }
        JobRequest::Paper { .. } | JobRequest::ResumeTrain { .. } => (String::new(), None),
    })
}

/// The job's run directory, and what is held while it runs.
struct Opened {
    dir: RunDir,
    manifest: super::Manifest,
    claimed: Option<super::paper_claim::Claimed>,
    resume_note: Option<String>,
    /// Held until the job ends: a training run is written by one process at a time.
    run_lock: Option<crate::data::store::SeriesLock>,
}

/// A paper session may continue in its existing directory, a resume reopens its run; every other
/// job gets a new one.
fn open_dir(
    paths: &Paths,
    cfg: &Config,
    req: &JobRequest,
    label: &str,
    parent: Option<String>,
    resume_point: Option<&super::resume::ResumePoint>,
) -> Result<Opened> {
    let mut opened = match req {
        JobRequest::Paper {
            train_runs,
            new_session,
            replay,
            ..
        } => {
            // A replayed window is a session of its own.
            let fresh = *new_session || replay.is_some();
            let c = super::paper_claim::claim(paths, cfg, train_runs, fresh)?;
            Opened {
                dir: c.dir.clone(),
                manifest: c.manifest.clone(),
                claimed: Some(c),
                resume_note: None,
                run_lock: None,
            }
        }
        JobRequest::ResumeTrain { .. } => {
            let point = resume_point.ok_or_else(|| anyhow::anyhow!("resume point not located"))?;
            let r = super::resume::open_run(paths, point)?;
            Opened {
                dir: r.dir,
                manifest: r.manifest,
                claimed: None,
                resume_note: r.note,
                run_lock: Some(r.lock),
            }
        }
        _ => {
            let (dir, manifest) =
                RunDir::create(paths, req.kind(), label, serde_json::to_value(cfg)?, parent)?;
            Opened {
                dir,
                manifest,
                claimed: None,
                resume_note: None,
                run_lock: None,
            }
        }
    };
    if req.kind() == JobKind::Train && opened.run_lock.is_none() {
        opened.run_lock = Some(opened.dir.lock()?);
    }
    Ok(opened)
}

/// The run's events.jsonl, with the caller's observer and, for training, TensorBoard's file.
fn open_sink(
    run: &ActiveRun,
    cfg: &Config,
    req: &JobRequest,
    observer: Option<Observer>,
    resume_point: Option<&super::resume::ResumePoint>,
) -> Result<EventSink> {
    let mut sink = EventSink::to_file(run.id(), &run.dir.events_path())?;
    if let Some(o) = observer {
        sink = sink.observe(o);
    }
    if req.kind() == JobKind::Train {
        // Every training run also writes TensorBoard's event file (`tensorboard`).
        let portfolio = matches!(req, JobRequest::TrainPortfolio)
            || resume_point.is_some_and(|p| p.meta.layout.portfolio.is_some());
        let episode_len = super::tensorboard::episode_len(cfg, portfolio);
        sink = sink.observe(super::tensorboard::observer(&run.dir.path, episode_len));
    }
    Ok(sink)
}

/// What a job works on beyond its request: the evaluated run, the resume point, the claimed
/// paper session.
struct Target<'a> {
    parent: String,
    resume_point: Option<&'a super::resume::ResumePoint>,
    claimed: Option<&'a super::paper_claim::Claimed>,
}

fn dispatch(ctx: &Ctx, req: &JobRequest, t: &Target) -> Result<String> {
    if req.kind() == JobKind::Train {
        // Training reuses its minibatch buffers; other jobs (a paper daemon that runs for weeks)
        // keep the allocator's default of handing freed memory back.
        crate::engine::device::keep_freed_memory();
    }
    match req {
        JobRequest::Fetch { symbols } => super::fetch::fetch(ctx, symbols),
        JobRequest::FetchPortfolio => super::fetch::fetch_portfolio(ctx),
        JobRequest::Train { symbol, group } => {
            if let Some(g) = group {
                ctx.run.update(|m| m.group = Some(g.clone()))?;
            }
            super::train::train(ctx, symbol)
        }
        JobRequest::TrainPortfolio => super::train_portfolio::train(ctx),
        JobRequest::ResumeTrain { .. } => match t.resume_point {
            Some(point) if point.meta.layout.portfolio.is_some() => {
                super::train_portfolio::resume(ctx, point)
            }
            Some(point) => super::train::resume(ctx, point),
            None => Err(anyhow::anyhow!("resume point not located")),
        },
        JobRequest::Gate { .. } => super::gate::gate(ctx, &t.parent),
        JobRequest::WalkForward { period, .. } => {
            super::walkforward::walk_forward(ctx, &t.parent, period)
        }
        JobRequest::Paper {
            bars,
            replay,
            confirm_live,
            ..
        } => match t.claimed {
            Some(c) => super::paper::paper(ctx, c, *bars, replay.as_ref(), *confirm_live),
            None => Err(anyhow::anyhow!("paper session not claimed")),
        },
    }
}

/// Rewrites the run's heartbeat every few seconds until stopped.
struct Heartbeat {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    fn start(run: Arc<ActiveRun>, every: std::time::Duration) -> Self {
        let (stop, rx) = channel::<()>();
        let thread = std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    if run.loop_beats() {
                        continue;
                    }
                    if let Err(e) = run.beat() {
                        tracing::warn!("run {}: heartbeat not written: {e:#}", run.id());
                    }
                }
            })
            .ok();
        Heartbeat { stop, thread }
    }

    fn stop(mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A job running on its own thread.
pub struct JobHandle {
    pub kind: JobKind,
    pub cancel: CancelToken,
    pub events: Receiver<EventRecord>,
    thread: Option<JoinHandle<Result<String>>>,
}

impl JobHandle {
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the job; returns its run id.
    pub fn join(mut self) -> Result<String> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("job thread panicked"))?,
            None => anyhow::bail!("job already joined"),
        }
    }
}

/// Starts `req` on a new thread. The first event on `events` is `Started` with the run id.
pub fn spawn(paths: &Paths, cfg: &Config, req: JobRequest) -> JobHandle {
    let (tx, rx) = channel();
    let cancel = CancelToken::new();
    let (paths, cfg, token) = (paths.clone(), cfg.clone(), cancel.clone());
    let kind = req.kind();
    let thread = std::thread::Builder::new()
        .name(format!("job-{}", kind.as_str()))
        .spawn(move || {
            let observer = move |rec: &EventRecord| {
                let _ = tx.send(rec.clone());
            };
            run(&paths, &cfg, &req, &token, Some(Box::new(observer)))
        })
        .ok();
    JobHandle {
        kind,
        cancel,
        events: rx,
        thread,
    }
}
