//! Removing the temp files (`.<name>.<pid>.tmp`) that a killed write leaves behind. A temp file
//! is removed only when the process that wrote it is gone: a live writer's file (another
//! process's, or another thread's of this one) is never touched.

use super::Scan;
use std::path::Path;

pub(super) fn remove_orphans(dir: &Path, scan: &mut Scan) {
    let Ok(files) = std::fs::read_dir(dir) else {
        return;
    };
    for f in files.flatten() {
        let name = f.file_name().to_string_lossy().to_string();
        let Some(pid) = writer_pid(&name) else {
            continue;
        };
        if pid == std::process::id() || pid_alive(pid) {
            continue;
        }
        let path = f.path();
        match std::fs::remove_file(&path) {
            Ok(()) => scan.notes.push(format!(
                "removed {}, left by a write that did not finish (process {pid} is gone)",
                path.display()
            )),
            Err(e) => scan
                .problems
                .push(format!("cannot remove {}: {e}", path.display())),
        }
    }
}

/// The writer's pid in a temp file name made by [`crate::paths::tmp_path`].
fn writer_pid(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (_, pid) = inner.rsplit_once('.')?;
    pid.parse().ok()
}

#[cfg(unix)]
fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 delivers nothing; kill only reports whether the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn pid_alive(_pid: u32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_pid_of_temp_names_only() {
        assert_eq!(writer_pid(".BTC%2FUSD.parquet.4242.tmp"), Some(4242));
        assert_eq!(writer_pid(".A.json.7.tmp"), Some(7));
        assert_eq!(writer_pid(".A.lock"), None);
        assert_eq!(writer_pid("A.parquet"), None);
        assert_eq!(writer_pid(".A.parquet.x.tmp"), None);
    }
}
