//! The terminal UI: one screen with six panes (data, training, gating, walk-forward, paper,
//! logs) showing every job live — jobs started here through their channels, jobs started
//! elsewhere by tailing their `events.jsonl`.
//!
//! Elm-like: [`App`] is the state, [`apply_event`] and [`handle_key`] are the pure transitions
//! (keys return [`Command`]s instead of doing anything), [`view`] draws the state. Only the
//! event loop in `driver` touches the terminal, the disk and the clock.

pub mod app;
mod driver;
mod term;
pub mod update;
pub mod view;

pub use app::{App, Pane, RunView};
pub use update::{apply_event, handle_key, Command};
pub use view::view;

use crate::config::Config;
use crate::paths::Paths;

/// Runs the TUI until the user quits. The terminal is restored on every way out: normal exit,
/// error, and panic.
pub fn run(paths: &Paths, cfg: &Config) -> anyhow::Result<()> {
    let mut session = term::Session::enter()?;
    let result = driver::Driver::new(paths, cfg, session.panics.clone()).run(&mut session.terminal);
    session.leave();
    result
}
