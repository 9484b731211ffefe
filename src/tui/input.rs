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
const JOIN_WAIT: Duration = Duration::from_millis(500);

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
    // SAFETY: isatty only inspects the descriptor.
    let stdin_tty = unsafe { libc::isatty(libc::STDIN_FILENO) } == 1;
    while !stop.load(Ordering::SeqCst) {
        // Wait on the terminal ourselves and hand crossterm only a terminal that is still there
        // (and with no wait of its own): its reader spins forever on a hung-up one.
        let hung_up = if stdin_tty {
            wait_stdin(STOP_CHECK)
        } else {
            super::term::hung_up()
        };
        if hung_up {
            let _ = tx.send(Msg::InputClosed("the terminal hung up".into()));
            return;
        }
        let wait = if stdin_tty {
            Duration::ZERO
        } else {
            STOP_CHECK
        };
        if !drain(wait, tx) {
            return;
        }
    }
}

/// Waits up to `timeout` for input on stdin; true when the terminal hung up.
fn wait_stdin(timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n > 0 && p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
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
