//! The TUI's whole state. Everything here is plain data: the event loop feeds it events, key
//! presses and directory scans, and the views only read it.

use crate::data::SeriesInfo;
use crate::jobs::events::{
    CheckpointReason, DecisionReport, EarlyStopInfo, FillView, FoldResult, GateResult, LogLevel,
    OrderView, PaperSnapshot, RestartReason, UpdateMetrics, ValidationMetrics,
};
use crate::jobs::{JobKind, JobStatus, RunSummary};
use crate::market::Timeframe;
use crate::tui::chooser::TrainModes;
use crate::tui::keymap::Mode;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Lines kept in the global log ring.
pub const LOG_CAPACITY: usize = 500;
/// Lines kept per run (the global ring has the rest of the story).
pub const RUN_LOG_CAPACITY: usize = 200;
/// Orders kept per paper run.
pub const ORDER_CAPACITY: usize = 200;
/// Equity points kept per paper run; older points are thinned rather than dropped so the
/// chart still starts at the beginning of the run.
pub const EQUITY_CAPACITY: usize = 4000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pane {
    #[default]
    Data,
    Training,
    Gating,
    WalkForward,
    Paper,
    Logs,
}

impl Pane {
    pub const ALL: [Pane; 6] = [
        Pane::Data,
        Pane::Training,
        Pane::Gating,
        Pane::WalkForward,
        Pane::Paper,
        Pane::Logs,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Data => "Data",
            Pane::Training => "Training",
            Pane::Gating => "Gating",
            Pane::WalkForward => "Walk-forward",
            Pane::Paper => "Paper",
            Pane::Logs => "Logs",
        }
    }

    pub fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }

    pub fn from_index(i: usize) -> Option<Pane> {
        Pane::ALL.get(i).copied()
    }

    pub fn next(self) -> Pane {
        Pane::ALL[(self.index() + 1) % Pane::ALL.len()]
    }

    pub fn prev(self) -> Pane {
        Pane::ALL[(self.index() + Pane::ALL.len() - 1) % Pane::ALL.len()]
    }

    /// The kind of run a pane shows, for panes that show one run at a time.
    pub fn run_kind(self) -> Option<JobKind> {
        match self {
            Pane::Training => Some(JobKind::Train),
            Pane::WalkForward => Some(JobKind::WalkForward),
            Pane::Paper => Some(JobKind::Paper),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub path: String,
    pub update: usize,
    pub reason: CheckpointReason,
}

/// A paper session as its daemon reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PaperView {
    /// The latest snapshot of the whole session.
    pub snapshot: Option<PaperSnapshot>,
    /// Snapshots seen (the equity curve's x axis).
    pub snapshots: u64,
    /// (snapshot number, equity).
    pub equity: Vec<(f64, f64)>,
    /// Order changes, oldest first.
    pub orders: VecDeque<OrderView>,
    /// Fills from the trade-updates stream, oldest first.
    pub fills: VecDeque<FillView>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub at: Option<DateTime<Utc>>,
    pub run_id: String,
    pub level: LogLevel,
    pub message: String,
}

/// What one fetch run reported about one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchStatus {
    pub run_id: String,
    pub timeframe: String,
    pub bars: usize,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    pub source: String,
    pub at: DateTime<Utc>,
}

/// Everything known about one run, from its manifest and its events.
#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    pub id: String,
    pub kind: Option<JobKind>,
    pub label: String,
    pub status: JobStatus,
    /// The manifest says running but the process is gone.
    pub stale: bool,
    /// The manifest's last heartbeat, and where its process runs.
    pub heartbeat: Option<DateTime<Utc>>,
    pub pid: u32,
    pub host: String,
    /// Started by this TUI (and so cancellable from it).
    pub ours: bool,
    /// The training run a gate / walk-forward / paper run evaluates.
    pub parent: Option<String>,
    pub created: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub last_at: Option<DateTime<Utc>>,
    /// Time of the `Finished` event (None until it was read).
    pub finished_at: Option<DateTime<Utc>>,
    pub message: String,
    pub progress: Option<Progress>,
    /// Sorted by update number.
    pub updates: Vec<UpdateMetrics>,
    /// Sorted by update number.
    pub validations: Vec<ValidationMetrics>,
    pub checkpoints: Vec<Checkpoint>,
    /// The latest restart of a training run (resume or drawdown retry) and where it went back to.
    pub restart: Option<(usize, RestartReason)>,
    pub early_stop: Option<EarlyStopInfo>,
    pub gate: Option<GateResult>,
    /// What a walk-forward run trades by (its rules, baselines' settings, the gate verdict).
    pub walk_setup: Option<crate::eval::walkforward::WalkSetup>,
    /// Sorted by fold number.
    pub folds: Vec<FoldResult>,
    pub decision: Option<DecisionReport>,
    pub paper: PaperView,
    /// Symbols this run fetched, in arrival order.
    pub fetched: Vec<String>,
    pub logs: VecDeque<LogLine>,
    /// Sequence numbers already applied, so a run seen both through a channel and a file tail
    /// (or a file that was rewritten) is not counted twice.
    pub seen: BTreeSet<u64>,
}

impl RunView {
    pub fn new(id: &str) -> Self {
        RunView {
            id: id.to_string(),
            kind: kind_from_id(id),
            label: String::new(),
            status: JobStatus::Running,
            stale: false,
            heartbeat: None,
            pid: 0,
            host: String::new(),
            ours: false,
            parent: None,
            created: None,
            started_at: None,
            last_at: None,
            finished_at: None,
            message: String::new(),
            progress: None,
            updates: Vec::new(),
            validations: Vec::new(),
            checkpoints: Vec::new(),
            restart: None,
            early_stop: None,
            gate: None,
            walk_setup: None,
            folds: Vec::new(),
            decision: None,
            paper: PaperView::default(),
            fetched: Vec::new(),
            logs: VecDeque::new(),
            seen: BTreeSet::new(),
        }
    }

    pub fn is_running(&self) -> bool {
        self.status == JobStatus::Running && !self.stale
    }

    /// "running", "completed", … or "interrupted" for a run whose process died.
    pub fn state(&self) -> &'static str {
        if self.stale && self.status == JobStatus::Running {
            "interrupted"
        } else {
            self.status.as_str()
        }
    }

    /// Sort key: creation time where known, then the id (ids embed their start time).
    pub fn order_key(&self) -> (Option<DateTime<Utc>>, &str) {
        (self.created.or(self.started_at), self.id.as_str())
    }
}

/// Run ids are `<kind>-<timestamp>-<label>`: a run seen before its `Started` event still lands
/// in the right pane.
pub fn kind_from_id(id: &str) -> Option<JobKind> {
    // Longest prefix first: "walk-forward" must not be read as anything shorter.
    [
        JobKind::WalkForward,
        JobKind::Fetch,
        JobKind::Train,
        JobKind::Gate,
        JobKind::Paper,
        JobKind::Sweep,
    ]
    .into_iter()
    .find(|k| {
        id.strip_prefix(k.as_str())
            .is_some_and(|rest| rest.starts_with('-'))
    })
}

/// Per-pane selection. Run panes remember a run id (None = follow the newest run).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    pub data: usize,
    pub train: Option<String>,
    pub gate: usize,
    pub walk: Option<String>,
    pub paper: Option<String>,
    /// Lines scrolled up from the newest log line.
    pub log_scroll: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct App {
    pub pane: Pane,
    pub sel: Selection,
    pub show_help: bool,
    pub confirm_quit: bool,
    /// The paper session the user asked to flatten, awaiting y/n.
    pub confirm_flatten: Option<String>,
    /// The paper session whose daemon the user asked to stop, awaiting y/n.
    pub confirm_stop: Option<String>,
    /// The time the screen is drawn at; `None`: the wall clock (tests pin it).
    pub now: Option<DateTime<Utc>>,
    pub message: String,
    pub runs: BTreeMap<String, RunView>,
    pub series: Vec<SeriesInfo>,
    /// Latest fetch report per symbol.
    pub fetch: BTreeMap<String, FetchStatus>,
    pub logs: VecDeque<LogLine>,
    /// A fetch reported new bars: the loop should re-read the store.
    pub store_stale: bool,
    /// The watcher has listed the store at least once (until then "no data" would be a guess).
    pub store_read: bool,
    /// Set once the user confirmed quitting (or a signal came); the loop winds down.
    pub quitting: bool,
    /// A second signal while winding down: leave without waiting for jobs.
    pub exit_now: bool,
    /// The terminal is gone (SIGHUP, or reading it failed): nothing more is drawn.
    pub no_terminal: bool,
    /// The Data pane shows the selected series' latest feature vector (`v` toggles).
    pub show_features: bool,
    /// What the model would see at the selected series' newest bar (filled by the loop).
    pub features: Option<FeatureView>,
    /// The Training pane charts the reward components' shares instead of the metrics (`R`).
    pub show_reward_parts: bool,
    /// The training modes `t` offers, the runs' speeds, and the chooser when open.
    pub train: TrainModes,
    /// The newest sweep's leaderboard, a view of the Training pane (`S`).
    pub sweep: crate::tui::sweep::SweepPane,
}

/// One stored series: what the Data pane selects and the feature view is computed for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    pub symbol: String,
    pub timeframe: Timeframe,
}

/// The latest observation row of one series, as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureView {
    pub symbol: String,
    pub timeframe: Timeframe,
    pub at: Option<DateTime<Utc>>,
    pub layout: String,
    pub values: Vec<(String, f32)>,
    pub error: Option<String>,
}

impl FeatureView {
    /// Which series this view was computed for.
    pub fn key(&self) -> SeriesKey {
        SeriesKey {
            symbol: self.symbol.clone(),
            timeframe: self.timeframe,
        }
    }
}

impl App {
    pub fn new() -> Self {
        App {
            message: "press ? for help".to_string(),
            ..App::default()
        }
    }

    /// Runs of one kind, oldest first.
    pub fn runs_of(&self, kind: JobKind) -> Vec<&RunView> {
        let mut v: Vec<&RunView> = self
            .runs
            .values()
            .filter(|r| r.kind == Some(kind))
            .collect();
        v.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        v
    }

    fn sel_slot(&self, kind: JobKind) -> Option<&Option<String>> {
        match kind {
            JobKind::Train => Some(&self.sel.train),
            JobKind::WalkForward => Some(&self.sel.walk),
            JobKind::Paper => Some(&self.sel.paper),
            _ => None,
        }
    }

    pub(crate) fn sel_slot_mut(&mut self, kind: JobKind) -> Option<&mut Option<String>> {
        match kind {
            JobKind::Train => Some(&mut self.sel.train),
            JobKind::WalkForward => Some(&mut self.sel.walk),
            JobKind::Paper => Some(&mut self.sel.paper),
            _ => None,
        }
    }

    /// The run a run pane shows: the one the user picked, else the newest of that kind.
    /// The time the screen is drawn at.
    pub fn clock(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }

    pub fn selected_run(&self, kind: JobKind) -> Option<&RunView> {
        let picked = self
            .sel_slot(kind)
            .and_then(|s| s.as_ref())
            .and_then(|id| self.runs.get(id))
            .filter(|r| r.kind == Some(kind));
        picked.or_else(|| self.runs_of(kind).last().copied())
    }

    /// Gate runs in table order (oldest first).
    pub fn gate_rows(&self) -> Vec<&RunView> {
        self.runs_of(JobKind::Gate)
    }

    /// Which keys apply now: a question, else the mode chooser, else the help overlay, else the
    /// main screen.
    pub fn mode(&self) -> Mode {
        if self.confirm_quit {
            Mode::Confirm
        } else if self.confirm_flatten.is_some() {
            Mode::ConfirmFlatten
        } else if self.confirm_stop.is_some() {
            Mode::ConfirmStop
        } else if self.train.open.is_some() {
            Mode::ChooseTrain
        } else if self.show_help {
            Mode::Help
        } else {
            Mode::Main
        }
    }

    /// The series whose features the watcher should compute (None while the view is hidden).
    pub fn wanted_features(&self) -> Option<SeriesKey> {
        if !self.show_features {
            return None;
        }
        self.selected_series().map(|s| SeriesKey {
            symbol: s.symbol.clone(),
            timeframe: s.timeframe,
        })
    }

    /// The feature view, if it was computed for the series selected now.
    pub fn current_features(&self) -> Option<&FeatureView> {
        let want = self.wanted_features()?;
        self.features.as_ref().filter(|f| f.key() == want)
    }

    pub fn selected_series(&self) -> Option<&SeriesInfo> {
        self.series
            .get(self.sel.data.min(self.series.len().saturating_sub(1)))
    }

    pub fn any_synthetic(&self) -> bool {
        self.series.iter().any(|s| s.source == "synthetic")
    }

    /// Runs this TUI started that are still going.
    pub fn running_ours(&self) -> Vec<&RunView> {
        self.runs
            .values()
            .filter(|r| r.ours && r.is_running())
            .collect()
    }

    pub fn running_count(&self) -> usize {
        self.runs.values().filter(|r| r.is_running()).count()
    }

    pub fn run_mut(&mut self, id: &str) -> &mut RunView {
        self.runs
            .entry(id.to_string())
            .or_insert_with(|| RunView::new(id))
    }

    /// Marks a run as started by this TUI, with the training run it evaluates.
    pub fn mark_ours(&mut self, id: &str, kind: JobKind, parent: Option<String>) {
        let run = self.run_mut(id);
        run.ours = true;
        run.kind = Some(kind);
        if parent.is_some() {
            run.parent = parent;
        }
    }

    /// Folds a manifest from a directory scan into the run. Events stay authoritative for
    /// what they carry; the manifest adds what events do not (parent, creation time, and the
    /// final status of a run whose `Finished` event we never read). Returns whether anything
    /// changed.
    pub fn note_run(&mut self, summary: &RunSummary) -> bool {
        let m = &summary.manifest;
        let run = self.run_mut(&m.id);
        let before = (
            run.kind,
            run.label.clone(),
            run.parent.clone(),
            run.created,
            run.status,
            run.stale,
            run.heartbeat,
        );
        run.kind = Some(m.kind);
        if run.label.is_empty() {
            run.label = m.label.clone();
        }
        if run.parent.is_none() {
            run.parent = m.parent.clone();
        }
        run.created = Some(m.created);
        run.heartbeat = m.heartbeat;
        run.pid = m.pid;
        run.host = m.host.clone();
        // A finished run started again (a paper session continued after a stop): its
        // manifest beats again, newer than the end its events said.
        let again = m.status == JobStatus::Running
            && !summary.stale
            && m.heartbeat
                .zip(run.finished_at)
                .is_some_and(|(beat, end)| beat > end);
        if again {
            run.status = JobStatus::Running;
            run.finished_at = None;
        }
        // `finished_at` stays event-only: it tells the loop the event file has been read to
        // its end.
        if run.finished_at.is_none() && m.status != JobStatus::Running {
            run.status = m.status;
            if run.message.is_empty() {
                run.message = m.message.clone();
            }
        }
        run.stale = summary.stale && !run.ours;
        before
            != (
                run.kind,
                run.label.clone(),
                run.parent.clone(),
                run.created,
                run.status,
                run.stale,
                run.heartbeat,
            )
    }

    /// Replaces the series list, keeping the selected symbol selected. Returns whether the
    /// list changed.
    pub fn set_series(&mut self, series: Vec<SeriesInfo>) -> bool {
        if series == self.series {
            return false;
        }
        let keep = self
            .selected_series()
            .map(|s| (s.symbol.clone(), s.timeframe));
        self.series = series;
        self.sel.data = keep
            .and_then(|(sym, tf)| {
                self.series
                    .iter()
                    .position(|s| s.symbol == sym && s.timeframe == tf)
            })
            .unwrap_or(0);
        true
    }

    /// Adds a line to the global log ring.
    pub fn push_log(&mut self, line: LogLine) {
        if self.logs.len() >= LOG_CAPACITY {
            self.logs.pop_front();
        }
        // Keep a scrolled-up view on the same lines while new ones arrive.
        if self.sel.log_scroll > 0 {
            self.sel.log_scroll += 1;
        }
        // Histories read at startup arrive run by run: keep the ring in time order. Lines
        // without a time (the TUI's own) go last. Searching from the back is cheap because
        // live lines almost always belong there.
        let pos = match line.at {
            None => self.logs.len(),
            Some(at) => self
                .logs
                .iter()
                .rposition(|l| l.at.is_none_or(|t| t <= at))
                .map_or(0, |i| i + 1),
        };
        self.logs.insert(pos, line);
        self.sel.log_scroll = self.sel.log_scroll.min(self.logs.len().saturating_sub(1));
    }

    /// A line from the TUI itself (no event time: shown without one).
    pub fn note(&mut self, message: impl Into<String>) {
        let message = message.into();
        self.push_log(LogLine {
            at: None,
            run_id: String::new(),
            level: LogLevel::Info,
            message: message.clone(),
        });
        self.message = message;
    }
}
