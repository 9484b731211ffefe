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
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

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
            .spawn(move || forward_signals(&signals, &tx))?;
    }
    {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("tui-tty-watch".into())
            .spawn(move || watch_tty(&tx))?;
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
    // A terminal that is gone takes no more writes (see `signals::detach_terminal`).
    crate::signals::detach_terminal(false);
    input.stop();
    session.leave();
    result
}

/// How long after a stop signal (or a lost terminal) the process is ended whatever it is doing:
/// the jobs' grace to save, and a little more.
const FORCE_EXIT_AFTER: Duration = Duration::from_secs(driver::QUIT_GRACE.as_secs() + 5);
/// How often the terminal is checked for a hang-up.
const TTY_CHECK: Duration = Duration::from_millis(200);

/// Sends each stop signal to the event loop. A second signal — or the first one not obeyed
/// within [`FORCE_EXIT_AFTER`] — ends the process from here, so that SIGTERM is always honoured
/// even if the loop is stuck.
fn forward_signals(signals: &Receiver<crate::signals::StopSignal>, tx: &Sender<Msg>) {
    let mut first: Option<Instant> = None;
    loop {
        let wait = first.map_or(Duration::from_secs(3600), |t| {
            (t + FORCE_EXIT_AFTER).saturating_duration_since(Instant::now())
        });
        match signals.recv_timeout(wait) {
            Ok(sig) if first.is_some() => force_exit(&format!("{} again", sig.name())),
            Ok(sig) => {
                if sig == crate::signals::StopSignal::Hangup {
                    crate::signals::detach_terminal(false);
                }
                first = Some(Instant::now());
                let _ = tx.send(Msg::Signal(sig));
            }
            Err(RecvTimeoutError::Timeout) if first.is_some() => {
                force_exit("the stop signal was not obeyed in time")
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Watches the terminal: when it hangs up (SSH dropped, tmux killed) the loop is told at once,
/// and if the process is still here [`FORCE_EXIT_AFTER`] later, it is ended.
fn watch_tty(tx: &Sender<Msg>) {
    while !crate::signals::terminal_hung_up() {
        std::thread::sleep(TTY_CHECK);
    }
    crate::signals::detach_terminal(false);
    if tx
        .send(Msg::InputClosed("the terminal hung up".into()))
        .is_err()
    {
        return;
    }
    std::thread::sleep(FORCE_EXIT_AFTER);
    force_exit("the terminal is gone and the screen did not close in time");
}

/// Ends the process now: the terminal restored as far as it still can be.
fn force_exit(why: &str) -> ! {
    tracing::warn!("{why}: exiting at once");
    term::restore_terminal();
    std::process::exit(130);
}
