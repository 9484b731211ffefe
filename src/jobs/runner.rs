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
    let mut resume_point = None;
    let mut resume_cfg = None;
    if let JobRequest::ResumeTrain {
        run,
        checkpoint,
        device,
        expect,
    } = req
    {
        let (point, c) = super::resume::prepare(
            paths,
            (run.as_deref(), checkpoint.as_deref()),
            device.as_deref(),
            expect.as_deref(),
            &events,
        )?;
        resume_cfg = Some(c);
        resume_point = Some(point);
    }
    let cfg = resume_cfg.as_ref().unwrap_or(cfg);
    let (label, parent) = match req {
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
    };
    let kind = req.kind();
    // A paper session may continue in its existing directory; every other job gets a new one.
    let mut claimed = None;
    let mut resume_note = None;
    // Held until the job ends: a training run is written by one process at a time.
    let mut run_lock = None;
    let (dir, manifest) = match req {
        JobRequest::Paper {
            train_runs,
            new_session,
            replay,
            ..
        } => {
            // A replayed window is a session of its own.
            let fresh = *new_session || replay.is_some();
            let c = super::paper_claim::claim(paths, cfg, train_runs, fresh)?;
            let dm = (c.dir.clone(), c.manifest.clone());
            claimed = Some(c);
            dm
        }
        JobRequest::ResumeTrain { .. } => {
            let point = resume_point
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("resume point not located"))?;
            let r = super::resume::open_run(paths, point)?;
            resume_note = r.note;
            run_lock = Some(r.lock);
            (r.dir, r.manifest)
        }
        _ => {
            let (dir, manifest) = RunDir::create(
                paths,
                kind,
                &label,
                serde_json::to_value(cfg)?,
                parent.clone(),
            )?;
            if kind == JobKind::Train {
                run_lock = Some(dir.lock()?);
            }
            (dir, manifest)
        }
    };
    let label = if label.is_empty() {
        manifest.label.clone()
    } else {
        label
    };
    let run = Arc::new(ActiveRun::new(dir, manifest));
    let events_lost = resume_point.is_some()
        && std::fs::metadata(run.dir.events_path()).map_or(true, |m| m.len() == 0);
    let mut sink = EventSink::to_file(run.id(), &run.dir.events_path())?;
    if let Some(o) = observer {
        sink = sink.observe(o);
    }
    if kind == JobKind::Train {
        // Every training run also writes TensorBoard's event file (`tensorboard`).
        let portfolio = matches!(req, JobRequest::TrainPortfolio)
            || resume_point
                .as_ref()
                .is_some_and(|p| p.meta.layout.portfolio.is_some());
        let episode_len = super::tensorboard::episode_len(cfg, portfolio);
        sink = sink.observe(super::tensorboard::observer(&run.dir.path, episode_len));
    }
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
        super::resume::announce(&run.dir, &sink, resume_note, events_lost);
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
    let parent = parent.unwrap_or_default();
    let result = match req {
        JobRequest::Fetch { symbols } => super::fetch::fetch(&ctx, symbols),
        JobRequest::FetchPortfolio => super::fetch::fetch_portfolio(&ctx),
        JobRequest::Train { symbol, group } => {
            if let Some(g) = group {
                run.update(|m| m.group = Some(g.clone()))?;
            }
            super::train::train(&ctx, symbol)
        }
        JobRequest::TrainPortfolio => super::train_portfolio::train(&ctx),
        JobRequest::ResumeTrain { .. } => match &resume_point {
            Some(point) if point.meta.layout.portfolio.is_some() => {
                super::train_portfolio::resume(&ctx, point)
            }
            Some(point) => super::train::resume(&ctx, point),
            None => Err(anyhow::anyhow!("resume point not located")),
        },
        JobRequest::Gate { .. } => super::gate::gate(&ctx, &parent),
        JobRequest::WalkForward { period, .. } => {
            super::walkforward::walk_forward(&ctx, &parent, period)
        }
        JobRequest::Paper {
            bars,
            replay,
            confirm_live,
            ..
        } => match &claimed {
            Some(c) => super::paper::paper(&ctx, c, *bars, replay.as_ref(), *confirm_live),
            None => Err(anyhow::anyhow!("paper session not claimed")),
        },
    };
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
    drop(run_lock);
    tracing::info!("job {} {}: {message}", run.id(), status.as_str());
    match result {
        Ok(_) => Ok(run.id().to_string()),
        Err(e) => Err(e.context(format!("run {} failed", run.id()))),
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
