//! Owning the terminal: raw mode and the alternate screen on entry, and a guaranteed way back
//! — on normal exit, on error (Drop) and on a panic of the UI thread (panic hook).

use anyhow::{Context, Result};
use crossterm::cursor::{Hide, Show};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::io::{stdout, Stdout};
use std::mem::ManuallyDrop;
use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

type Hook = Arc<Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>>;

pub type Term = Terminal<CrosstermBackend<Stdout>>;

pub struct Session {
    /// Never dropped: ratatui's `Drop` shows the cursor and `eprintln!`s a failure, which
    /// panics when the terminal is gone; [`restore_terminal`] shows the cursor instead.
    pub terminal: ManuallyDrop<Term>,
    active: Arc<AtomicBool>,
    prev_hook: Hook,
}

/// Raw mode off, the normal screen back, the cursor shown (each best effort: on a terminal
/// that is gone they fail at once, with EIO).
pub(super) fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(stdout(), LeaveAlternateScreen, Show);
}

impl Session {
    /// Takes the terminal. A panic of another thread (a job) while the session is active goes to
    /// `on_thread_panic` instead of the screen, where printing it would garble the frame.
    pub fn enter(on_thread_panic: impl Fn(String) + Send + Sync + 'static) -> Result<Session> {
        // Sizing the terminal changes nothing yet, so it may fail before any cleanup is due.
        let terminal = ManuallyDrop::new(
            Terminal::new(CrosstermBackend::new(stdout())).context("cannot open the terminal")?,
        );
        let active = Arc::new(AtomicBool::new(false));
        let prev_hook: Hook = Arc::new(std::panic::take_hook());
        {
            let (active, prev) = (active.clone(), prev_hook.clone());
            let ui_thread = std::thread::current().id();
            std::panic::set_hook(Box::new(move |info| {
                let ui = std::thread::current().id() == ui_thread;
                if !ui && active.load(Ordering::SeqCst) {
                    tracing::error!("thread panicked: {info}");
                    on_thread_panic(info.to_string());
                    return;
                }
                if ui && active.swap(false, Ordering::SeqCst) {
                    restore_terminal();
                }
                prev(info);
            }));
        }
        let session = Session {
            terminal,
            active,
            prev_hook,
        };
        session.active.store(true, Ordering::SeqCst);
        // On failure `session` drops here and puts everything back.
        enable_raw_mode().context("cannot switch the terminal to raw mode")?;
        // A plain clear: `Terminal::clear` would query the cursor position, which not every
        // terminal (or pty) answers.
        execute!(stdout(), EnterAlternateScreen, Hide, Clear(ClearType::All))
            .context("cannot enter the alternate screen")?;
        Ok(session)
    }

    /// Gives the terminal back and reinstates the previous panic hook.
    pub fn leave(&mut self) {
        if self.active.swap(false, Ordering::SeqCst) {
            restore_terminal();
        }
        let prev = self.prev_hook.clone();
        let _ = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| prev(info)));
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.active.load(Ordering::SeqCst) {
            self.leave();
        }
    }
}
