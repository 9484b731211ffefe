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

/// Whether descriptor `fd` is a terminal that hung up (the SSH connection dropped, the tmux pane
/// or session was killed): the kernel reports POLLHUP (or POLLERR / POLLNVAL) for it. Asks
/// without reading or waiting.
fn fd_hung_up(fd: libc::c_int) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(fd) } != 1 {
        return false;
    }
    let mut p = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a zero timeout: poll only reports the state.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

/// Whether stdin, stdout or stderr is a terminal that hung up.
pub fn terminal_hung_up() -> bool {
    [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO]
        .into_iter()
        .any(fd_hung_up)
}

/// Takes a terminal that is gone away from stdin, stdout and stderr, so that what still runs (a
/// job saving its model, the paper daemon that keeps trading, the TUI putting the screen back)
/// neither spins nor panics on it: Rust's `println!` panics when a write fails, and a hung-up
/// terminal fails every write (EIO); crossterm's reader retries a failing read forever without
/// sleeping. stdout and stderr go to /dev/null (the log file keeps the record); stdin becomes a
/// pipe nobody writes to, so a reader blocked on it sleeps. With `hangup` (SIGHUP arrived: the
/// terminal is going, whether or not the kernel says so yet — tmux signals before it closes the
/// pane) every terminal descriptor is taken; otherwise only those that already hung up.
pub fn detach_terminal(hangup: bool) {
    // SAFETY: isatty only inspects the descriptor.
    let gone = |fd| fd_hung_up(fd) || (hangup && unsafe { libc::isatty(fd) } == 1);
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        if gone(fd) {
            // SAFETY: open, dup2 and close act on descriptors owned here.
            unsafe {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                if null >= 0 {
                    libc::dup2(null, fd);
                    libc::close(null);
                }
            }
        }
    }
    if gone(libc::STDIN_FILENO) {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: as above; the pipe's write end stays open (leaked) so a read blocks, not EOF.
        unsafe {
            if libc::pipe(fds.as_mut_ptr()) == 0 {
                libc::dup2(fds[0], libc::STDIN_FILENO);
                libc::close(fds[0]);
            }
        }
    }
}
