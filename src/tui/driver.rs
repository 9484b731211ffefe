//! The event loop: the only part of the TUI that does I/O. It turns key presses, job channels,
//! run-directory scans and file tails into calls of `handle_key` / `apply_event`, performs the
//! returned commands and redraws when something changed.

use super::app::{App, FeatureView, LogLine};
use super::term::Term;
use super::update::{apply_event, handle_key, Command};
use super::view::view;
use crate::config::Config;
use crate::data::Store;
use crate::jobs::{self, EventTail, JobHandle, JobRequest, JobStatus, LogLevel};
use crate::paths::Paths;
use anyhow::Result;
use crossterm::event::{self, Event as TermEvent};
use std::collections::HashMap;
use std::sync::mpsc::TryRecvError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const INPUT_POLL: Duration = Duration::from_millis(50);
const FRAME: Duration = Duration::from_millis(100);
const TAIL_EVERY: Duration = Duration::from_millis(250);
const SCAN_EVERY: Duration = Duration::from_secs(1);
/// How long quitting waits for cancelled jobs to save their checkpoints.
const QUIT_GRACE: Duration = Duration::from_secs(15);

/// A job this TUI started.
struct Job {
    handle: Option<JobHandle>,
    /// Known from its first event.
    run_id: Option<String>,
    parent: Option<String>,
    what: &'static str,
}

pub struct Driver<'a> {
    paths: &'a Paths,
    cfg: &'a Config,
    pub app: App,
    jobs: Vec<Job>,
    tails: HashMap<String, EventTail>,
    pid: u32,
    dirty: bool,
    panics: Arc<Mutex<Vec<String>>>,
}

impl<'a> Driver<'a> {
    pub fn new(paths: &'a Paths, cfg: &'a Config, panics: Arc<Mutex<Vec<String>>>) -> Self {
        Driver {
            paths,
            cfg,
            app: App::new(),
            jobs: Vec::new(),
            tails: HashMap::new(),
            pid: std::process::id(),
            dirty: true,
            panics,
        }
    }

    pub fn run(&mut self, terminal: &mut Term) -> Result<()> {
        // Existing runs' whole history is read here, before the first frame.
        self.scan();
        let mut last_scan = Instant::now();
        let mut last_tail = Instant::now();
        let mut last_draw: Option<Instant> = None;
        let mut quit_deadline: Option<Instant> = None;
        loop {
            if event::poll(INPUT_POLL)? {
                // Take every input that is ready, so a burst of keys costs one frame.
                loop {
                    match event::read()? {
                        TermEvent::Key(key) => {
                            let cmds = handle_key(&mut self.app, key);
                            self.dirty = true;
                            for c in cmds {
                                self.exec(c);
                            }
                        }
                        TermEvent::Resize(..) => {
                            terminal.autoresize()?;
                            self.dirty = true;
                        }
                        _ => {}
                    }
                    if !event::poll(Duration::ZERO)? {
                        break;
                    }
                }
            }
            self.drain_jobs();
            self.drain_panics();
            if last_tail.elapsed() >= TAIL_EVERY {
                self.poll_tails();
                last_tail = Instant::now();
            }
            if last_scan.elapsed() >= SCAN_EVERY || self.app.store_stale {
                self.scan();
                last_scan = Instant::now();
            }
            self.refresh_features();
            if self.app.quitting {
                let deadline = *quit_deadline.get_or_insert_with(|| Instant::now() + QUIT_GRACE);
                let busy = self.jobs.iter().any(|j| j.handle.is_some());
                if !busy || Instant::now() >= deadline {
                    return Ok(());
                }
            }
            if self.dirty && last_draw.is_none_or(|t| t.elapsed() >= FRAME) {
                terminal.draw(|f| view(f, &self.app))?;
                self.dirty = false;
                last_draw = Some(Instant::now());
            }
        }
    }

    fn exec(&mut self, cmd: Command) {
        match cmd {
            Command::Start(req) => self.start(req),
            Command::Cancel(id) => {
                let job = self
                    .jobs
                    .iter()
                    .find(|j| j.run_id.as_deref() == Some(id.as_str()));
                let cancelled = job
                    .and_then(|j| j.handle.as_ref())
                    .map(|h| h.cancel.cancel());
                match cancelled {
                    Some(()) => self.log(LogLevel::Info, format!("cancel requested for {id}")),
                    None => self.app.message = format!("{id} was not started here"),
                }
            }
            Command::RefreshData => self.scan(),
            Command::Quit => self.app.quitting = true,
        }
        self.dirty = true;
    }

    fn start(&mut self, req: JobRequest) {
        let parent = match &req {
            JobRequest::Gate { train_run } | JobRequest::WalkForward { train_run, .. } => {
                Some(train_run.clone())
            }
            JobRequest::Paper { train_runs, .. } => train_runs.first().cloned(),
            JobRequest::Fetch { .. } | JobRequest::Train { .. } => None,
        };
        let what = req.kind().as_str();
        self.log(LogLevel::Info, format!("starting {what} job: {req:?}"));
        let handle = jobs::spawn(self.paths, self.cfg, req);
        self.jobs.push(Job {
            handle: Some(handle),
            run_id: None,
            parent,
            what,
        });
    }

    fn log(&mut self, level: LogLevel, message: String) {
        self.app.push_log(LogLine {
            at: None,
            run_id: String::new(),
            level,
            message,
        });
    }

    /// Applies what our jobs sent and reaps the ones that ended.
    fn drain_jobs(&mut self) {
        let mut ended = Vec::new();
        for (i, job) in self.jobs.iter_mut().enumerate() {
            let Some(h) = &job.handle else { continue };
            loop {
                match h.events.try_recv() {
                    Ok(rec) => {
                        if job.run_id.is_none() {
                            job.run_id = Some(rec.run_id.clone());
                            self.app.mark_ours(&rec.run_id, h.kind, job.parent.clone());
                            self.tails.remove(&rec.run_id);
                        }
                        apply_event(&mut self.app, &rec);
                        self.dirty = true;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        if h.is_finished() {
                            ended.push(i);
                        }
                        break;
                    }
                }
            }
        }
        for i in ended {
            let Some(handle) = self.jobs[i].handle.take() else {
                continue;
            };
            let (what, run_id) = (self.jobs[i].what, self.jobs[i].run_id.clone());
            if let Err(e) = handle.join() {
                let text = format!("{what} job failed: {e:#}");
                // A job that died without its Finished event (a panic) must not look running.
                if let Some(run) = run_id.as_ref().and_then(|id| self.app.runs.get_mut(id)) {
                    if run.status == JobStatus::Running {
                        run.status = JobStatus::Failed;
                        run.message = text.clone();
                    }
                }
                self.log(LogLevel::Error, text.clone());
                self.app.message = text;
            }
            self.dirty = true;
        }
        self.jobs.retain(|j| j.handle.is_some());
    }

    fn drain_panics(&mut self) {
        let msgs: Vec<String> = {
            let mut p = self.panics.lock().unwrap_or_else(|e| e.into_inner());
            p.drain(..).collect()
        };
        for m in msgs {
            self.log(LogLevel::Error, format!("job thread panicked: {m}"));
            self.dirty = true;
        }
    }

    /// Re-reads the run directories and the bar store, and starts tailing runs that this
    /// TUI did not start (headless runs, runs of other machines on a shared disk).
    /// Keeps the Data pane's feature view on the selected series (recomputed when the selection
    /// or the stored series changes).
    fn refresh_features(&mut self) {
        if !self.app.show_features {
            return;
        }
        let Some(s) = self.app.selected_series().cloned() else {
            return;
        };
        let key = (s.symbol.clone(), s.timeframe.to_string());
        let fresh = self
            .app
            .features
            .as_ref()
            .is_some_and(|f| f.key() == key && f.at == s.last);
        if fresh {
            return;
        }
        let table = crate::features::events::EventTable::load(&self.paths.home);
        let spec = crate::features::FeatureSpec::current(self.cfg.features.window, &table);
        let sym = s.symbol();
        let mut view = FeatureView {
            symbol: key.0,
            timeframe: key.1,
            at: s.last,
            layout: spec.describe(),
            values: Vec::new(),
            error: None,
        };
        match Store::new(&self.paths.data).read(&sym, s.timeframe) {
            Ok(bars) => {
                view.values = crate::features::latest_vector(&spec, &sym, &bars, &table);
                if view.values.is_empty() {
                    view.error = Some(format!(
                        "needs {} bars of history, the store has {}",
                        spec.warmup + 1,
                        bars.len()
                    ));
                }
            }
            Err(e) => view.error = Some(format!("{e:#}")),
        }
        self.app.features = Some(view);
        self.dirty = true;
    }

    fn scan(&mut self) {
        for s in jobs::list_runs(self.paths) {
            self.dirty |= self.app.note_run(&s);
            let id = &s.manifest.id;
            let ours = self.app.runs.get(id).is_some_and(|r| r.ours)
                || (s.manifest.pid == self.pid && s.manifest.status == JobStatus::Running);
            if !ours && !self.tails.contains_key(id) {
                let tail = EventTail::new(&s.path.join("events.jsonl"));
                self.tails.insert(id.clone(), tail);
            }
        }
        self.poll_tails();
        let series = Store::new(&self.paths.data).list();
        self.dirty |= self.app.set_series(series);
        self.app.store_stale = false;
    }

    fn poll_tails(&mut self) {
        let app = &mut self.app;
        // A run whose Finished event was read has nothing more to say.
        self.tails
            .retain(|id, _| app.runs.get(id).is_none_or(|r| r.finished_at.is_none()));
        for tail in self.tails.values_mut() {
            for rec in tail.poll() {
                apply_event(app, &rec);
                self.dirty = true;
            }
        }
    }
}
