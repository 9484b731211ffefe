fn main() {
    // Rust ignores SIGPIPE, which turns `quantdeck … | head` into a panic on the next print;
    // restore the default so a closed pipe simply ends the process, as for any CLI tool.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; only resets a disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // SAFETY: still single-threaded (see above).
    unsafe { quantdeck::engine::device::prefer_single_threaded_elementwise() };
    match quantdeck::cli::main() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // Not eprintln!, which panics when stderr is a terminal that went away.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            std::process::exit(2);
        }
    }
}
