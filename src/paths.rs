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
