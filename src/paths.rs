//! Where quantdeck keeps its data, runs, models and logs.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Paths {
    pub home: PathBuf,
    pub data: PathBuf,
    pub runs: PathBuf,
    pub models: PathBuf,
    pub logs: PathBuf,
}

impl Paths {
    /// `QUANTDECK_HOME` if set, else the platform's data directory (e.g. `~/.local/share/quantdeck`).
    pub fn discover() -> Result<Self> {
        if let Some(home) = std::env::var_os("QUANTDECK_HOME") {
            return Ok(Self::under(Path::new(&home)));
        }
        let dirs = directories::ProjectDirs::from("dev", "quantdeck", "quantdeck")
            .context("cannot find a home directory: set QUANTDECK_HOME")?;
        Ok(Self::under(dirs.data_dir()))
    }

    pub fn under(home: &Path) -> Self {
        Paths {
            home: home.to_path_buf(),
            data: home.join("data"),
            runs: home.join("runs"),
            models: home.join("models"),
            logs: home.join("logs"),
        }
    }

    pub fn ensure(&self) -> Result<()> {
        for d in [&self.data, &self.runs, &self.models, &self.logs] {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically: a temp file in the same folder, fsync, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = tmp_path(path);
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// A sibling temp name unique to this process, so concurrent writers never share one.
pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Removes the temp files (`.<name>.<pid>.tmp`, see [`tmp_path`]) in `dir` that a killed write
/// left behind: only those whose writing process is gone, never a live writer's. Returns a note
/// per file removed and a problem per file that could not be.
pub fn remove_orphan_tmps(dir: &Path) -> (Vec<String>, Vec<String>) {
    let (mut notes, mut problems) = (Vec::new(), Vec::new());
    let Ok(files) = std::fs::read_dir(dir) else {
        return (notes, problems);
    };
    for f in files.flatten() {
        let name = f.file_name().to_string_lossy().to_string();
        let Some(pid) = tmp_writer_pid(&name) else {
            continue;
        };
        if pid == std::process::id() || pid_alive(pid) {
            continue;
        }
        let path = f.path();
        match std::fs::remove_file(&path) {
            Ok(()) => notes.push(format!(
                "removed {}, left by a write that did not finish (process {pid} is gone)",
                path.display()
            )),
            Err(e) => problems.push(format!("cannot remove {}: {e}", path.display())),
        }
    }
    (notes, problems)
}

/// The writer's pid in a temp file name made by [`tmp_path`].
pub fn tmp_writer_pid(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (_, pid) = inner.rsplit_once('.')?;
    pid.parse().ok()
}

/// Whether process `pid` exists (on this machine).
#[cfg(unix)]
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 delivers nothing; kill only reports whether the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    let exists = r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    // A zombie (killed, not yet reaped: an orphan waits for init, which in a container may
    // never come) has ended: its run is over and its temp files are orphans.
    exists && !is_zombie(pid)
}

#[cfg(unix)]
fn is_zombie(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        matches!(state, Some("Z" | "X"))
    })
}

#[cfg(not(unix))]
pub fn pid_alive(_pid: u32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_killed_process_not_yet_reaped_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not waited for: it stays a zombie once it exits.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while pid_alive(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "a zombie counted as alive"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "still a zombie"
        );
        child.wait().unwrap();
        assert!(pid_alive(std::process::id()));
    }

    #[test]
    fn reads_the_pid_of_temp_names_only() {
        assert_eq!(tmp_writer_pid(".BTC%2FUSD.parquet.4242.tmp"), Some(4242));
        assert_eq!(tmp_writer_pid(".A.json.7.tmp"), Some(7));
        assert_eq!(tmp_writer_pid(".A.lock"), None);
        assert_eq!(tmp_writer_pid("A.parquet"), None);
        assert_eq!(tmp_writer_pid(".A.parquet.x.tmp"), None);
    }

    #[test]
    fn only_a_dead_writers_temp_files_go() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir
            .path()
            .join(format!(".update_00008.safetensors.{}.tmp", u32::MAX - 7));
        let mine = tmp_path(&dir.path().join("model.safetensors"));
        std::fs::write(&dead, "x").unwrap();
        std::fs::write(&mine, "x").unwrap();
        let (notes, problems) = remove_orphan_tmps(dir.path());
        assert_eq!((notes.len(), problems.len()), (1, 0), "{notes:?}");
        assert!(!dead.exists() && mine.exists());
    }
}
