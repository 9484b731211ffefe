//! Process signals as messages. SIGINT (Ctrl+C), SIGTERM (kill, systemd) and SIGHUP (a dropped SSH
//! session) all ask for the same clean stop: jobs save their state first, the TUI gives the
//! terminal back. A listener thread turns each signal into a [`StopSignal`] on a channel, so no
//! work happens inside a signal handler.

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::sync::mpsc::{channel, Receiver};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Interrupt,
    Terminate,
    Hangup,
}

impl StopSignal {
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
            StopSignal::Hangup => "SIGHUP",
        }
    }
}

/// Starts listening for SIGINT, SIGTERM and SIGHUP; each one that arrives is sent on the returned
/// channel. The default disposition (die at once) is replaced for the rest of the process.
pub fn listen() -> Result<Receiver<StopSignal>> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("cannot install signal handlers")?;
    let (tx, rx) = channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for s in signals.forever() {
                let sig = match s {
                    SIGINT => StopSignal::Interrupt,
                    SIGTERM => StopSignal::Terminate,
                    _ => StopSignal::Hangup,
                };
                if tx.send(sig).is_err() {
                    break;
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(rx)
}
