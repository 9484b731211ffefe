//! The input thread: reads the terminal and sends key presses and resizes on the event loop's
//! channel, so the loop sleeps on that one channel instead of polling the terminal.

use super::msg::Msg;
use crossterm::event::{self, Event};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the thread checks whether it should stop (input itself arrives at once).
const STOP_CHECK: Duration = Duration::from_millis(50);
/// How long [`Input::stop`] waits for the reader.
const JOIN_WAIT: Duration = Duration::from_millis(200);

pub struct Input {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Input {
    pub fn spawn(tx: Sender<Msg>) -> std::io::Result<Input> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("tui-input".into())
            .spawn(move || read_loop(&flag, &tx))?;
        Ok(Input {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops reading before the terminal goes back to the shell, so no keystroke meant for the
    /// shell is swallowed. Waits a bounded time: a reader caught inside crossterm when the
    /// terminal vanished never returns, and must not keep the process from exiting.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let deadline = std::time::Instant::now() + JOIN_WAIT;
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                tracing::warn!("the terminal reader did not stop: leaving it behind");
            }
        }
    }
}

fn read_loop(stop: &AtomicBool, tx: &Sender<Msg>) {
    while !stop.load(Ordering::SeqCst) {
        // Never hand crossterm a hung-up terminal: its reader retries a failing read forever.
        // A hang-up while crossterm waits is caught by the TUI's terminal watch, which takes
        // the terminal away from the reader (`signals::detach_terminal`).
        if crate::signals::terminal_hung_up() {
            let _ = tx.send(Msg::InputClosed("the terminal hung up".into()));
            return;
        }
        if !drain(STOP_CHECK, tx) {
            return;
        }
    }
}

/// Sends every event crossterm has (waiting at most `wait` for the first); false when the loop
/// should end (the terminal failed, or nobody listens).
fn drain(mut wait: Duration, tx: &Sender<Msg>) -> bool {
    loop {
        let msg = match event::poll(wait).and_then(|ready| {
            if ready {
                event::read().map(Some)
            } else {
                Ok(None)
            }
        }) {
            Ok(Some(Event::Key(k))) => Msg::Key(k),
            Ok(Some(Event::Resize(..))) => Msg::Resize,
            Ok(Some(_)) => continue,
            Ok(None) => return true,
            Err(e) => {
                let _ = tx.send(Msg::InputClosed(e.to_string()));
                return false;
            }
        };
        if tx.send(msg).is_err() {
            return false;
        }
        wait = Duration::ZERO;
    }
}
