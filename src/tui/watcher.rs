//! The watcher thread: everything the screen shows that comes from disk. It scans the run
//! directories, tails the `events.jsonl` of runs started elsewhere (headless, other machines on
//! a shared disk), lists the bar store and computes the feature view, and sends what it found
//! as [`Msg`]s on the event loop's channel. The UI asks it for things with [`Request`]s.

use super::app::{FeatureView, SeriesKey};
use super::msg::Msg;
use crate::config::Config;
use crate::data::{SeriesInfo, Store};
use crate::features::events::EventTable;
use crate::features::{latest_vector, FeatureSpec};
use crate::jobs::rundir::hostname;
use crate::jobs::{scan_runs, Event, EventRecord, EventTail, LogLevel, Manifest};
use crate::paths::Paths;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

const TAIL_EVERY: Duration = Duration::from_millis(250);
const SCAN_EVERY: Duration = Duration::from_secs(1);

/// What the UI asks of the watcher.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Scan runs and the store now (the user pressed `r`, or a fetch stored bars).
    Rescan,
    /// Keep the feature view of this series computed (None: stop).
    Features(Option<SeriesKey>),
    /// Queue a command for a paper session's daemon.
    PaperCommand {
        run: String,
        command: crate::live::view::Command,
    },
    /// Start a paper daemon as a process of its own (detached: closing the TUI or the SSH
    /// session never stops trading), with this configuration (TOML).
    StartDaemon { train_run: String, config: String },
}

/// Starts the watcher; it stops when the returned sender, or the message channel, is dropped.
pub fn spawn(paths: &Paths, cfg: &Config, tx: Sender<Msg>) -> std::io::Result<Sender<Request>> {
    let (req_tx, req_rx) = channel();
    let w = Watcher {
        paths: paths.clone(),
        window: cfg.features.window,
        tx,
        host: hostname(),
        pid: std::process::id(),
        started: Utc::now(),
        known: HashMap::new(),
        tails: HashMap::new(),
        read_to_end: HashSet::new(),
        damaged: HashSet::new(),
        series: None,
        features_for: None,
        features_done: None,
        sweep_read: None,
        closed: false,
    };
    std::thread::Builder::new()
        .name("tui-watcher".into())
        .spawn(move || w.run(req_rx))?;
    Ok(req_tx)
}

struct Watcher {
    paths: Paths,
    window: usize,
    tx: Sender<Msg>,
    /// This process, to tell the runs it started (their events come through channels).
    host: String,
    pid: u32,
    started: DateTime<Utc>,
    /// The last manifest (and staleness) sent for each run.
    known: HashMap<String, (Manifest, bool)>,
    tails: HashMap<String, EventTail>,
    /// Runs whose `Finished` event was read: their files have nothing more to say.
    read_to_end: HashSet<String>,
    /// Damaged runs already reported in the Logs pane.
    damaged: HashSet<String>,
    series: Option<Vec<SeriesInfo>>,
    features_for: Option<SeriesKey>,
    /// The series and newest bar the last feature view was computed for.
    features_done: Option<(SeriesKey, Option<DateTime<Utc>>)>,
    /// The sweep whose leaderboard was sent last, its manifest then, and when.
    sweep_read: Option<(Manifest, Instant)>,
    /// The UI is gone.
    closed: bool,
}

impl Watcher {
    fn run(mut self, requests: Receiver<Request>) {
        // Existing runs' whole history is read first, so it is on screen within a frame or two.
        self.scan();
        let mut next_scan = Instant::now() + SCAN_EVERY;
        let mut next_tail = Instant::now() + TAIL_EVERY;
        while !self.closed {
            let wait = next_scan
                .min(next_tail)
                .saturating_duration_since(Instant::now());
            match requests.recv_timeout(wait) {
                Ok(Request::Rescan) => {
                    self.scan();
                    next_scan = Instant::now() + SCAN_EVERY;
                }
                Ok(Request::Features(key)) => {
                    self.features_for = key;
                    self.refresh_features();
                }
                Ok(Request::PaperCommand { run, command }) => {
                    let dir = self.paths.runs.join(&run);
                    let (level, text) = match crate::live::commands::send(&dir, command, "tui") {
                        Ok(_) => (
                            LogLevel::Info,
                            format!("{} queued for {run}", command.as_str()),
                        ),
                        Err(e) => (
                            LogLevel::Error,
                            format!("cannot send {} to {run}: {e:#}", command.as_str()),
                        ),
                    };
                    self.say(level, text);
                }
                Ok(Request::StartDaemon { train_run, config }) => {
                    let text = match start_daemon(&self.paths, &train_run, &config) {
                        Ok(pid) => (LogLevel::Info, format!("paper daemon for {train_run} started (pid {pid}); it keeps trading after this screen closes — stop it with X in the Paper pane or `quantdeck paper stop`")),
                        Err(e) => (LogLevel::Error, format!("cannot start the paper daemon: {e:#}")),
                    };
                    self.say(text.0, text.1);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if now >= next_tail {
                self.poll_tails();
                next_tail = now + TAIL_EVERY;
            }
            if now >= next_scan {
                self.scan();
                next_scan = now + SCAN_EVERY;
            }
        }
    }

    /// A line for the Logs pane.
    fn say(&mut self, level: LogLevel, message: String) {
        let rec = EventRecord {
            seq: u64::MAX,
            at: Utc::now(),
            run_id: String::new(),
            event: Event::Log { level, message },
        };
        self.send(Msg::Events(vec![rec]));
    }

    fn send(&mut self, msg: Msg) {
        if self.tx.send(msg).is_err() {
            self.closed = true;
        }
    }

    /// A run this process created after the TUI started: a job started here, whose events come
    /// through its channel. (Comparing the pid alone would hide the runs of an earlier process
    /// that had the same pid.)
    fn ours(&self, m: &Manifest) -> bool {
        m.pid == self.pid && m.host == self.host && m.created >= self.started
    }

    /// Re-reads the manifests and the store; starts tailing runs that are new.
    fn scan(&mut self) {
        let mut changed = Vec::new();
        let mut listed = HashSet::new();
        let scan = scan_runs(&self.paths);
        for d in scan.damaged {
            if self.damaged.insert(d.id.clone()) {
                self.say(LogLevel::Error, d.describe());
            }
        }
        for s in scan.runs {
            let id = s.manifest.id.clone();
            listed.insert(id.clone());
            // A finished run resumed elsewhere runs again: follow its file again (events are
            // numbered, so the lines read before are recognised and skipped).
            if s.manifest.status == crate::jobs::JobStatus::Running
                && !s.stale
                && self.read_to_end.remove(&id)
            {
                tracing::debug!("run {id} runs again: tailing it again");
            }
            let tail_it = !self.ours(&s.manifest)
                && !self.read_to_end.contains(&id)
                && !self.tails.contains_key(&id);
            if tail_it {
                let tail = EventTail::new(&s.path.join("events.jsonl"));
                self.tails.insert(id.clone(), tail);
            }
            let same = self
                .known
                .get(&id)
                .is_some_and(|(m, stale)| *m == s.manifest && *stale == s.stale);
            if !same {
                self.known.insert(id, (s.manifest.clone(), s.stale));
                changed.push(s);
            }
        }
        // Runs whose directory was removed.
        self.tails.retain(|id, _| listed.contains(id));
        self.known.retain(|id, _| listed.contains(id));
        if !changed.is_empty() {
            self.send(Msg::Runs(changed));
        }
        self.refresh_sweep();
        self.poll_tails();
        let series = Store::new(&self.paths.data).list();
        if self.series.as_ref() != Some(&series) {
            self.series = Some(series.clone());
            self.send(Msg::Series(series));
            self.refresh_features();
        }
    }

    fn poll_tails(&mut self) {
        let mut recs = Vec::new();
        let mut finished = Vec::new();
        for (id, tail) in self.tails.iter_mut() {
            for rec in tail.poll() {
                if matches!(rec.event, Event::Finished { .. }) {
                    finished.push(id.clone());
                }
                recs.push(rec);
            }
        }
        for id in finished {
            self.tails.remove(&id);
            self.read_to_end.insert(id);
        }
        if !recs.is_empty() {
            self.send(Msg::Events(recs));
        }
    }

    /// Re-reads the newest sweep's leaderboard when it changed, or every few seconds while it
    /// runs (its tasks' progress). The scheduler is not asked from here.
    fn refresh_sweep(&mut self) {
        let newest = self
            .known
            .values()
            .filter(|(m, _)| m.kind == crate::jobs::JobKind::Sweep)
            .max_by(|a, b| (a.0.created, &a.0.id).cmp(&(b.0.created, &b.0.id)))
            .map(|(m, _)| m.clone());
        let Some(m) = newest else { return };
        let due = match &self.sweep_read {
            None => true,
            Some((old, at)) => {
                *old != m
                    || (m.status == crate::jobs::JobStatus::Running
                        && at.elapsed() >= Duration::from_secs(3))
            }
        };
        if !due {
            return;
        }
        self.sweep_read = Some((m.clone(), Instant::now()));
        let board = crate::jobs::sweep::SweepDir::open_exact(&self.paths, &m.id)
            .and_then(|d| crate::jobs::sweep::view(&d, false))
            .map(|v| crate::jobs::sweep::report::build(&self.paths, &v));
        match board {
            Ok(b) => self.send(Msg::Sweep(Box::new(b))),
            Err(e) => tracing::warn!("sweep {}: leaderboard not read: {e:#}", m.id),
        }
    }

    /// Computes the feature view of the wanted series when it, or its newest bar, changed.
    fn refresh_features(&mut self) {
        let Some(key) = self.features_for.clone() else {
            self.features_done = None;
            return;
        };
        let info = self
            .series
            .iter()
            .flatten()
            .find(|s| s.symbol == key.symbol && s.timeframe == key.timeframe)
            .cloned();
        let last = info.as_ref().and_then(|s| s.last);
        if self.features_done.as_ref() == Some(&(key.clone(), last)) {
            return;
        }
        self.features_done = Some((key.clone(), last));
        let table = EventTable::load(&self.paths.home);
        let spec = FeatureSpec::current(self.window, &table);
        let mut view = FeatureView {
            symbol: key.symbol.clone(),
            timeframe: key.timeframe,
            at: last,
            layout: spec.describe(),
            values: Vec::new(),
            error: None,
        };
        match info {
            None => {
                view.error = Some(format!(
                    "{} {} is not in the store",
                    key.symbol, key.timeframe
                ))
            }
            Some(s) => match Store::new(&self.paths.data).read(&s.symbol(), s.timeframe) {
                Ok(bars) => {
                    view.values = latest_vector(&spec, &s.symbol(), &bars, &table);
                    if view.values.is_empty() {
                        view.error = Some(format!(
                            "needs {} bars of history, the store has {}",
                            spec.warmup + 1,
                            bars.len()
                        ));
                    }
                }
                Err(e) => view.error = Some(format!("{e:#}")),
            },
        }
        self.send(Msg::Features(view));
    }
}

/// Starts `quantdeck paper TRAIN_RUN` as a process of its own session (`setsid`): it outlives
/// this screen and the terminal, ignores SIGHUP, and writes to `logs/paper-daemon.out`. The
/// TUI's configuration goes with it in a file of its own. Returns the daemon's pid.
fn start_daemon(paths: &Paths, train_run: &str, config: &str) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    let dir = paths.home.join("daemons");
    std::fs::create_dir_all(&dir)?;
    let cfg = dir.join(format!(
        "{}-{}.toml",
        Utc::now().format("%Y%m%d-%H%M%S%.3f"),
        train_run
    ));
    crate::paths::write_atomic(&cfg, config.as_bytes())?;
    std::fs::create_dir_all(&paths.logs)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.logs.join("paper-daemon.out"))?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("--home")
        .arg(&paths.home)
        .arg("--config")
        .arg(&cfg)
        .args(["paper", train_run])
        .env_remove("QUANTDECK_HOME")
        .stdin(std::process::Stdio::null())
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
    let mut child = cmd.spawn()?;
    let pid = child.id();
    // Reap it when it ends (it is still our child while this TUI runs).
    std::thread::Builder::new()
        .name("paper-daemon-reaper".into())
        .spawn(move || {
            let _ = child.wait();
        })?;
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{EventSink, JobKind, RunDir};
    use crate::market::Timeframe;

    /// Collects messages until `done` holds for everything received so far (bounded).
    fn until(rx: &Receiver<Msg>, got: &mut Vec<Msg>, done: impl Fn(&[Msg]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(got) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(m) => got.push(m),
                Err(_) => panic!("watcher never reported it; got {got:#?}"),
            }
        }
    }

    fn runs_listed(got: &[Msg], id: &str) -> bool {
        got.iter()
            .any(|m| matches!(m, Msg::Runs(v) if v.iter().any(|s| s.manifest.id == id)))
    }

    fn logged(got: &[Msg], run: &str, text: &str) -> bool {
        got.iter().any(|m| {
            matches!(m, Msg::Events(v) if v.iter().any(|r| r.run_id == run
                && matches!(&r.event, Event::Log { message, .. } if message == text)))
        })
    }

    #[test]
    fn reports_runs_tails_foreign_ones_and_leaves_ours_to_their_channels() {
        let home = tempfile::tempdir().expect("tmp");
        let paths = Paths::under(home.path());
        paths.ensure().expect("dirs");
        let cfg = crate::config::load(None, None).expect("default config");
        // A run from before the TUI started: another process's, to be tailed.
        let (old, _) = RunDir::create(&paths, JobKind::Train, "SYNA", Default::default(), None)
            .expect("run dir");
        let old_sink = EventSink::to_file(&old.id, &old.events_path()).expect("sink");
        old_sink.info("from elsewhere");

        let (tx, rx) = channel();
        let requests = spawn(&paths, &cfg, tx).expect("watcher");
        let mut got = Vec::new();
        until(&rx, &mut got, |g| {
            runs_listed(g, &old.id)
                && logged(g, &old.id, "from elsewhere")
                && g.iter()
                    .any(|m| matches!(m, Msg::Series(s) if s.is_empty()))
        });

        // A run this process starts now is reported, but its events come through its job's
        // channel: the watcher does not tail it.
        let (ours, _) = RunDir::create(&paths, JobKind::Gate, "SYNA", Default::default(), None)
            .expect("run dir");
        EventSink::to_file(&ours.id, &ours.events_path())
            .expect("sink")
            .info("ours");
        old_sink.info("later");
        requests.send(Request::Rescan).expect("watcher alive");
        until(&rx, &mut got, |g| {
            runs_listed(g, &ours.id) && logged(g, &old.id, "later")
        });
        // Whatever a tail of our run would have sent arrives right after its scan.
        while let Ok(m) = rx.recv_timeout(2 * TAIL_EVERY) {
            got.push(m);
        }
        assert!(!logged(&got, &ours.id, "ours"), "our own run was tailed");

        // The feature view of a series the store lacks says so instead of hanging.
        let key = SeriesKey {
            symbol: "SYNA".into(),
            timeframe: Timeframe::Minute(15),
        };
        requests
            .send(Request::Features(Some(key)))
            .expect("watcher alive");
        until(&rx, &mut got, |g| {
            g.iter().any(|m| {
                matches!(m, Msg::Features(f) if f.symbol == "SYNA"
                    && f.error.as_deref() == Some("SYNA 15Min is not in the store"))
            })
        });
    }
}
