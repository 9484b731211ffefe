//! The terminal UI: one screen with six panes (data, training, gating, walk-forward, paper,
//! logs) showing every job live — jobs started here through their channels, jobs started
//! elsewhere by tailing their `events.jsonl`.
//!
//! Elm-like: [`App`] is the state, [`update`] (with [`apply_event`] and [`handle_key`]) is the
//! pure transition from a [`Msg`] (keys return [`Command`]s instead of doing anything), [`view`]
//! draws the state, and [`keymap`] declares every key once. Threads feed one channel: the input
//! thread (keys), the watcher (run scans, file tails, the bar store, features), the jobs started
//! here, and the signal listener. Only the event loop in `driver` touches the terminal.

pub mod app;
pub mod chooser;
mod driver;
mod input;
pub mod keymap;
pub mod msg;
pub mod sweep;
mod term;
pub mod update;
pub mod view;
mod watcher;

pub use app::{App, Pane, RunView};
pub use msg::{JobId, Msg};
pub use update::{apply_event, handle_key, update, Command, Effects};
pub use view::view;

use crate::config::Config;
use crate::paths::Paths;
use std::path::Path;
use std::sync::mpsc::channel;

/// The training modes `t` offers (see [`chooser::mode_configs`]).
pub struct Modes {
    pub list: Vec<(String, Config)>,
    pub preselect: usize,
    /// A `--config` file applies over every mode.
    pub user_file: bool,
}

impl Modes {
    /// From the command line: `explicit` when `--mode` or `--config` was given.
    pub fn from_flags(startup: &Config, explicit: bool, user_file: Option<&Path>) -> Modes {
        let (list, preselect) = chooser::mode_configs(startup, explicit, user_file);
        Modes {
            list,
            preselect,
            user_file: user_file.is_some(),
        }
    }
}

/// Runs the TUI until the user quits or a signal (SIGINT, SIGTERM, SIGHUP) stops it. Jobs
/// started here are cancelled and given a bounded time to save. The terminal is restored on
/// every way out: normal exit, signal, error, and panic. Returns normally (exit status 0) after
/// a signal too.
pub fn run(paths: &Paths, cfg: &Config, modes: Modes) -> anyhow::Result<()> {
    let (tx, rx) = channel();
    // Handlers first, so no signal in between can kill us with the terminal in raw mode.
    let signals = crate::signals::listen()?;
    {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("tui-signals".into())
            .spawn(move || {
                for sig in signals {
                    if tx.send(Msg::Signal(sig)).is_err() {
                        break;
                    }
                }
            })?;
    }
    let watcher = watcher::spawn(paths, cfg, tx.clone())?;
    let panic_tx = tx.clone();
    let mut session = term::Session::enter(move |m| {
        let _ = panic_tx.send(Msg::Panicked(m));
    })?;
    let input = match input::Input::spawn(tx.clone()) {
        Ok(i) => i,
        Err(e) => {
            session.leave();
            return Err(e.into());
        }
    };
    let result =
        driver::Driver::new(paths, cfg, modes, (tx, rx), watcher).run(&mut session.terminal);
    input.stop();
    session.leave();
    result
}
