//! The one message type of the event loop. Key presses (from the input thread), events of the
//! jobs started here, what the watcher thread read from disk, and process signals all arrive as
//! [`Msg`]s on one channel, in the order they happened; `update::update` folds each into the
//! state.

use super::app::FeatureView;
use crate::data::SeriesInfo;
use crate::jobs::{EventRecord, JobKind, RunSummary};
use crate::signals::StopSignal;
use crossterm::event::KeyEvent;

/// A job started by this TUI, numbered in start order (its run id is known only from its first
/// event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub u64);

#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    /// The terminal changed size: redraw.
    Resize,
    /// An event of a job started here.
    Job {
        job: JobId,
        kind: JobKind,
        /// The training run it evaluates.
        parent: Option<String>,
        rec: Box<EventRecord>,
    },
    /// A job started here returned; `error` when it failed (or its thread panicked).
    JobEnded {
        job: JobId,
        kind: JobKind,
        run_id: Option<String>,
        error: Option<String>,
    },
    /// New lines of the `events.jsonl` of runs started elsewhere.
    Events(Vec<EventRecord>),
    /// Manifests that are new or changed since the last scan.
    Runs(Vec<RunSummary>),
    /// The bar store's series (sent when the list changed).
    Series(Vec<SeriesInfo>),
    /// The newest feature row of the series asked for.
    Features(FeatureView),
    /// The newest sweep's leaderboard (sent when it changed).
    Sweep(Box<crate::jobs::sweep::report::Leaderboard>),
    /// SIGINT, SIGTERM or SIGHUP.
    Signal(StopSignal),
    /// The terminal stopped answering (closed, or reading it failed).
    InputClosed(String),
    /// A job thread panicked (printing it would garble the screen).
    Panicked(String),
}
