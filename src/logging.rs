//! Logs go to a daily rolling file under the logs directory, never to the terminal (the TUI owns
//! it, and headless output is for progress). `RUST_LOG`-style level via `QUANTDECK_LOG`.

use std::path::Path;
use tracing_appender::non_blocking::WorkerGuard;

/// Starts file logging; keep the guard alive for the program's life so lines are flushed.
pub fn init(logs_dir: &Path) -> Option<WorkerGuard> {
    std::fs::create_dir_all(logs_dir).ok()?;
    let appender = tracing_appender::rolling::daily(logs_dir, "quantdeck.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let level = std::env::var("QUANTDECK_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_max_level(level)
        .try_init()
        .ok()?;
    Some(guard)
}
