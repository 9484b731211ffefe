//! The event loop. It sleeps on one channel of [`Msg`]s (keys from the input thread, job events,
//! what the watcher read, signals), folds each into the state with `update`, performs the
//! returned commands, and redraws at most every [`FRAME`] when something changed. It does no
//! file I/O: the watcher thread does the scans and reads, jobs run on threads of their own.

use super::app::{LogLine, SeriesKey};
use super::msg::{JobId, Msg};
use super::term::Term;
use super::update::{update, Command};
use super::view::view;
use super::watcher::Request;
use crate::config::Config;
use crate::jobs::{self, CancelToken, EventRecord, JobKind, JobRequest, LogLevel};
use crate::paths::Paths;
use anyhow::Result;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// At most ~10 frames per second.
const FRAME: Duration = Duration::from_millis(100);
/// How long quitting waits for cancelled jobs to save their checkpoints.
pub(super) const QUIT_GRACE: Duration = Duration::from_secs(15);
/// Messages handled between two chances to draw, so a flood of events cannot freeze the screen.
const BATCH: usize = 1024;

/// A job this TUI started.
struct Job {
    /// Known from its first event.
    run_id: Option<String>,
    cancel: CancelToken,
    thread: JoinHandle<()>,
}

pub struct Driver<'a> {
    paths: &'a Paths,
    cfg: &'a Config,
    /// The configurations the training-mode chooser offers, by name.
    modes: Vec<(String, Config)>,
    pub app: super::App,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    watcher: Sender<Request>,
    jobs: BTreeMap<JobId, Job>,
    next_job: u64,
    /// The feature request last sent to the watcher.
    sent_features: Option<SeriesKey>,
    dirty: bool,
}

impl<'a> Driver<'a> {
    pub fn new(
        paths: &'a Paths,
        cfg: &'a Config,
        modes: super::Modes,
        (tx, rx): (Sender<Msg>, Receiver<Msg>),
        watcher: Sender<Request>,
    ) -> Self {
        let mut app = super::App::new();
        app.train = super::chooser::train_modes(
            &modes.list,
            modes.preselect,
            modes.user_file,
            jobs::rundir::hostname(),
        );
        Driver {
            paths,
            cfg,
            modes: modes.list,
            app,
            tx,
            rx,
            watcher,
            jobs: BTreeMap::new(),
            next_job: 0,
            sent_features: None,
            dirty: true,
        }
    }

    /// Runs until the user quits or a signal arrives. However the loop ends, the jobs started
    /// here are cancelled and given [`QUIT_GRACE`] to save (unless a second signal came).
    pub fn run(&mut self, terminal: &mut Term) -> Result<()> {
        let result = self.event_loop(terminal);
        if !self.jobs.is_empty() && !self.app.exit_now {
            self.cancel_all();
            self.wait_for_jobs(Instant::now() + QUIT_GRACE);
        }
        result
    }

    fn event_loop(&mut self, terminal: &mut Term) -> Result<()> {
        let mut last_draw: Option<Instant> = None;
        let mut quit_deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let mut wake = now + Duration::from_secs(1);
            if self.dirty {
                wake = wake.min(last_draw.map_or(now, |t| t + FRAME));
            }
            if let Some(d) = quit_deadline {
                wake = wake.min(d);
            }
            match self.rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(msg) => {
                    self.handle(msg);
                    for _ in 0..BATCH {
                        let Ok(msg) = self.rx.try_recv() else { break };
                        self.handle(msg);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The loop holds a sender itself, so this cannot happen; leaving is the answer.
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            self.sync_watcher();
            if self.app.quitting {
                let deadline = *quit_deadline.get_or_insert_with(|| Instant::now() + QUIT_GRACE);
                if self.jobs.is_empty() || self.app.exit_now || Instant::now() >= deadline {
                    return Ok(());
                }
            }
            let frame_due = last_draw.is_none_or(|t| t.elapsed() >= FRAME);
            if self.dirty && frame_due && !self.app.no_terminal {
                let drawn = terminal.draw(|f| view(f, &self.app));
                // While winding down, a terminal that went away must not keep jobs from saving.
                if let Err(e) = drawn {
                    if !self.app.quitting {
                        return Err(e.into());
                    }
                }
                self.dirty = false;
                last_draw = Some(Instant::now());
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        match &msg {
            Msg::Job { job, rec, .. } => {
                if let Some(j) = self.jobs.get_mut(job) {
                    j.run_id.get_or_insert_with(|| rec.run_id.clone());
                }
            }
            Msg::JobEnded { job, .. } => {
                if let Some(j) = self.jobs.remove(job) {
                    // It sent its last message: the thread is returning.
                    let _ = j.thread.join();
                }
            }
            _ => {}
        }
        let fx = update(&mut self.app, msg);
        self.dirty |= fx.redraw;
        for c in fx.commands {
            self.exec(c);
        }
    }

    /// Tells the watcher what the state now wants from disk.
    fn sync_watcher(&mut self) {
        if self.app.store_stale {
            self.app.store_stale = false;
            let _ = self.watcher.send(Request::Rescan);
        }
        let want = self.app.wanted_features();
        if want != self.sent_features {
            let _ = self.watcher.send(Request::Features(want.clone()));
            self.sent_features = want;
        }
    }

    fn exec(&mut self, cmd: Command) {
        match cmd {
            Command::Start(req) => self.start(req, self.cfg.clone()),
            Command::Train { symbol, mode } => {
                let cfg = self.modes.iter().find(|(n, _)| *n == mode);
                match cfg.map(|(_, c)| c.clone()) {
                    Some(cfg) => {
                        self.log(LogLevel::Info, format!("training {symbol} in mode {mode}"));
                        self.start(
                            JobRequest::Train {
                                symbol,
                                group: None,
                            },
                            cfg,
                        );
                    }
                    None => self.app.message = format!("no training mode named {mode}"),
                }
            }
            Command::Cancel(id) => {
                let job = self
                    .jobs
                    .values()
                    .find(|j| j.run_id.as_deref() == Some(id.as_str()));
                match job {
                    Some(j) => {
                        j.cancel.cancel();
                        self.log(LogLevel::Info, format!("cancel requested for {id}"));
                    }
                    None => self.app.message = format!("{id} was not started here"),
                }
            }
            Command::RefreshData => {
                let _ = self.watcher.send(Request::Rescan);
            }
            Command::Paper { run, command } => {
                let _ = self.watcher.send(Request::PaperCommand { run, command });
            }
            Command::Quit => {
                self.app.quitting = true;
                // Also the jobs that have not sent their first event yet.
                self.cancel_all();
            }
        }
        self.dirty = true;
    }

    fn cancel_all(&self) {
        for j in self.jobs.values() {
            j.cancel.cancel();
        }
    }

    /// Handles messages (without drawing) until every job ended or the deadline passed.
    fn wait_for_jobs(&mut self, deadline: Instant) {
        while !self.jobs.is_empty() && !self.app.exit_now {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(msg) => self.handle(msg),
                Err(_) => return,
            }
        }
    }

    /// Starts a job with `cfg` (the TUI's configuration, or the training mode chosen).
    fn start(&mut self, req: JobRequest, cfg: Config) {
        // A paper daemon runs as a process of its own: closing this screen never stops trading.
        if let JobRequest::Paper { train_runs, .. } = &req {
            let config = match toml::to_string(&cfg) {
                Ok(c) => c,
                Err(e) => {
                    self.log(
                        LogLevel::Error,
                        format!("cannot pass the configuration on: {e}"),
                    );
                    return;
                }
            };
            for train_run in train_runs {
                let _ = self.watcher.send(Request::StartDaemon {
                    train_run: train_run.clone(),
                    config: config.clone(),
                });
            }
            return;
        }
        let job = JobId(self.next_job);
        self.next_job += 1;
        let kind = req.kind();
        self.log(
            LogLevel::Info,
            format!("starting {} job: {req:?}", kind.as_str()),
        );
        let cancel = CancelToken::new();
        let (paths, token, tx) = (self.paths.clone(), cancel.clone(), self.tx.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("job-{}", kind.as_str()))
            .spawn(move || run_job(&paths, &cfg, req, job, &token, &tx));
        match spawned {
            Ok(thread) => {
                self.jobs.insert(
                    job,
                    Job {
                        run_id: None,
                        cancel,
                        thread,
                    },
                );
            }
            Err(e) => {
                let text = format!("cannot start the {} job: {e}", kind.as_str());
                self.log(LogLevel::Error, text.clone());
                self.app.message = text;
            }
        }
    }

    fn log(&mut self, level: LogLevel, message: String) {
        self.app.push_log(LogLine {
            at: None,
            run_id: String::new(),
            level,
            message,
        });
    }
}

/// A job's thread: runs it with an observer that forwards its events to the loop, then says
/// that it ended (also when it panicked).
fn run_job(
    paths: &Paths,
    cfg: &Config,
    req: JobRequest,
    job: JobId,
    cancel: &CancelToken,
    tx: &Sender<Msg>,
) {
    let kind: JobKind = req.kind();
    let parent = match &req {
        JobRequest::Gate { train_run } | JobRequest::WalkForward { train_run, .. } => {
            Some(train_run.clone())
        }
        JobRequest::Paper { train_runs, .. } => train_runs.first().cloned(),
        JobRequest::Fetch { .. }
        | JobRequest::FetchPortfolio
        | JobRequest::Train { .. }
        | JobRequest::TrainPortfolio
        | JobRequest::ResumeTrain { .. } => None,
    };
    let run_id = Arc::new(OnceLock::new());
    let observer = {
        let (tx, run_id) = (tx.clone(), run_id.clone());
        move |rec: &EventRecord| {
            let _ = run_id.set(rec.run_id.clone());
            let _ = tx.send(Msg::Job {
                job,
                kind,
                parent: parent.clone(),
                rec: Box::new(rec.clone()),
            });
        }
    };
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        jobs::run_job(paths, cfg, &req, cancel, Some(Box::new(observer)))
    }));
    let error = match result {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(_) => Some("its thread panicked".to_string()),
    };
    let _ = tx.send(Msg::JobEnded {
        job,
        kind,
        run_id: run_id.get().cloned(),
        error,
    });
}
