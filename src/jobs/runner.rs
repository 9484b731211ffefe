//! Starting jobs in the background: one OS thread per job (candle work must not block the UI),
//! events to the run directory and to a channel the caller drains.

use super::{CancelToken, EventRecord, EventSink, JobKind};
use crate::config::Config;
use crate::paths::Paths;
use anyhow::Result;
use std::sync::mpsc::{channel, Receiver};
use std::thread::JoinHandle;

/// What to run. Symbols and run ids are the user's words; jobs validate them.
#[derive(Debug, Clone, PartialEq)]
pub enum JobRequest {
    /// Fetch (or regenerate) bars for these symbols; empty = the whole universe.
    Fetch {
        symbols: Vec<String>,
    },
    Train {
        symbol: String,
    },
    /// Gate a finished training run.
    Gate {
        train_run: String,
    },
    WalkForward {
        train_run: String,
    },
    Paper {
        train_run: String,
        bars: Option<usize>,
    },
}

impl JobRequest {
    pub fn kind(&self) -> JobKind {
        match self {
            JobRequest::Fetch { .. } => JobKind::Fetch,
            JobRequest::Train { .. } => JobKind::Train,
            JobRequest::Gate { .. } => JobKind::Gate,
            JobRequest::WalkForward { .. } => JobKind::WalkForward,
            JobRequest::Paper { .. } => JobKind::Paper,
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
            super::work::run(&paths, &cfg, &req, &token, Some(Box::new(observer)))
        })
        .ok();
    JobHandle {
        kind,
        cancel,
        events: rx,
        thread,
    }
}

/// Observers a caller adds to a job's sink (the channel above, a progress bar).
pub type Observer = Box<dyn Fn(&EventRecord) + Send + Sync>;

pub(crate) fn attach(sink: EventSink, observer: Option<Observer>) -> EventSink {
    match observer {
        Some(o) => sink.observe(o),
        None => sink,
    }
}
