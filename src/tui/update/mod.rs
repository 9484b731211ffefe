//! State transitions: messages in, new state and side effects out. Nothing here touches the
//! terminal, the disk or the clock.

mod events;
mod keys;

pub use events::apply_event;
pub use keys::{handle_key, target_train_run};

use super::app::{App, LogLine};
use super::msg::Msg;
use crate::jobs::{JobRequest, JobStatus, LogLevel};
use crate::signals::StopSignal;

/// Side effects the event loop performs for `handle_key` and `update`.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Start(JobRequest),
    /// Train `symbol` with the configuration of the chooser's `mode` (a name from `TrainModes`).
    Train {
        symbol: String,
        mode: String,
    },
    Cancel(String),
    /// Re-read the run directories and the bar store now.
    RefreshData,
    /// Quit: cancel every job started here and wait (bounded) for them to save.
    Quit,
    /// A command to a paper session's daemon (through its run directory).
    Paper {
        run: String,
        command: crate::live::view::Command,
    },
}

/// What one message asks of the loop.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    /// The screen may have changed.
    pub redraw: bool,
    pub commands: Vec<Command>,
}

impl Effects {
    fn redraw() -> Self {
        Effects::redraw_if(true)
    }

    /// No commands; a redraw when `redraw` (the message changed something on screen).
    fn redraw_if(redraw: bool) -> Self {
        Effects {
            redraw,
            commands: Vec::new(),
        }
    }
}

/// Folds one message into the state.
pub fn update(app: &mut App, msg: Msg) -> Effects {
    match msg {
        Msg::Key(k) => Effects {
            redraw: true,
            commands: handle_key(app, k),
        },
        Msg::Resize => Effects::redraw(),
        Msg::Job {
            kind, parent, rec, ..
        } => {
            if !app.runs.get(&rec.run_id).is_some_and(|r| r.ours) {
                app.mark_ours(&rec.run_id, kind, parent);
            }
            apply_event(app, &rec);
            Effects::redraw()
        }
        Msg::JobEnded {
            kind,
            run_id,
            error,
            ..
        } => {
            let Some(e) = error else {
                return Effects::default();
            };
            let text = format!("{} job failed: {e}", kind.as_str());
            // A job that died without its Finished event (a panic) must not look running.
            if let Some(run) = run_id.as_ref().and_then(|id| app.runs.get_mut(id)) {
                if run.status == JobStatus::Running {
                    run.status = JobStatus::Failed;
                    run.message = text.clone();
                }
            }
            log(app, LogLevel::Error, text.clone());
            app.message = text;
            Effects::redraw()
        }
        Msg::Events(recs) => {
            for rec in &recs {
                apply_event(app, rec);
            }
            Effects::redraw_if(!recs.is_empty())
        }
        Msg::Runs(runs) => {
            app.train.note_runs(&runs);
            let mut redraw = false;
            for s in &runs {
                redraw |= app.note_run(s);
            }
            Effects::redraw_if(redraw)
        }
        Msg::Series(series) => {
            let first = !app.store_read;
            app.store_read = true;
            Effects::redraw_if(app.set_series(series) || first)
        }
        Msg::Features(fv) => {
            app.features = Some(fv);
            Effects::redraw_if(app.show_features)
        }
        Msg::Sweep(board) => {
            let changed = app.sweep.set_board(*board);
            Effects::redraw_if(changed && app.sweep.show)
        }
        Msg::Signal(sig) => stop(app, sig.name(), sig == StopSignal::Hangup),
        Msg::InputClosed(e) => stop(app, &format!("terminal lost ({e})"), true),
        Msg::Panicked(m) => {
            log(app, LogLevel::Error, format!("job thread panicked: {m}"));
            Effects::redraw()
        }
    }
}

/// A signal (or a lost terminal) quits like a confirmed `q`: the jobs started here are cancelled
/// and waited for. A second one leaves at once.
fn stop(app: &mut App, why: &str, terminal_gone: bool) -> Effects {
    app.no_terminal |= terminal_gone;
    if app.quitting {
        app.exit_now = true;
        log(app, LogLevel::Warn, format!("{why} again: leaving at once"));
        return Effects::redraw();
    }
    log(app, LogLevel::Warn, format!("{why}: quitting"));
    Effects {
        redraw: true,
        commands: keys::quit_cancelling(app, format!("{why}: cancelling jobs and quitting…")),
    }
}

fn log(app: &mut App, level: LogLevel, message: String) {
    app.push_log(LogLine {
        at: None,
        run_id: String::new(),
        level,
        message,
    });
}
