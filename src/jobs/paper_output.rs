//! The paper daemon's output, as `jobs` implements it: everything the daemon reports becomes an
//! event in the session's `events.jsonl` (what the screen and `paper status` read), and its
//! alerts go to the notification queue, which never waits.

use super::{CancelToken, Event, EventSink, LogLevel};
use crate::live::output::{Alert, Level, Output};
use crate::live::view::{Command, DecidedBar, FillView, OrderView, PaperSnapshot};
use crate::notify::{Notice, Notifier};
use chrono::Utc;

pub struct PaperOutput<'a> {
    sink: &'a EventSink,
    cancel: &'a CancelToken,
    notifier: Option<Notifier>,
    run: Option<&'a super::rundir::ActiveRun>,
}

impl<'a> PaperOutput<'a> {
    pub fn new(sink: &'a EventSink, cancel: &'a CancelToken) -> Self {
        PaperOutput {
            sink,
            cancel,
            notifier: None,
            run: None,
        }
    }

    /// The daemon's loop beats into this run's manifest.
    pub fn with_run(mut self, run: &'a super::rundir::ActiveRun) -> Self {
        self.run = Some(run);
        self
    }

    /// Alerts also go to this queue.
    pub fn with_notifier(mut self, n: Option<Notifier>) -> Self {
        self.notifier = n;
        self
    }

    pub fn notifier(&self) -> Option<&Notifier> {
        self.notifier.as_ref()
    }
}

impl Output for PaperOutput<'_> {
    fn log(&self, level: Level, message: String) {
        let level = match level {
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.sink.log(level, message);
    }

    fn snapshot(&self, s: &PaperSnapshot) {
        self.sink.emit(Event::Paper(Box::new(s.clone())));
    }

    fn decided(&self, d: &DecidedBar) {
        self.sink.emit(Event::Decided(Box::new(d.clone())));
    }

    fn order(&self, o: &OrderView) {
        self.sink.emit(Event::Order(o.clone()));
    }

    fn fill(&self, f: &FillView) {
        self.sink.emit(Event::Fill(f.clone()));
    }

    fn command_done(&self, command: Command, from: &str, message: &str) {
        self.sink.emit(Event::CommandDone {
            command,
            from: from.to_string(),
            message: message.to_string(),
        });
    }

    fn alert(&self, a: &Alert) {
        if let Some(n) = &self.notifier {
            n.send(Notice {
                session: self.sink.run_id().to_string(),
                kind: a.kind().to_string(),
                urgent: a.urgent(),
                text: a.text(),
                at: Utc::now(),
            });
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    fn beat(&self) {
        if let Some(run) = self.run {
            if let Err(e) = run.loop_beat(super::rundir::PAPER_BEAT_EVERY) {
                tracing::warn!("run {}: heartbeat not written: {e:#}", run.id());
            }
        }
    }
}
