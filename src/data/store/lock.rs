//! One advisory lock per series, held across a whole read-merge-write so that two writers (two
//! processes, or two threads of one) never lose each other's bars. The lock is the OS's (`flock`
//! on Unix) on a `.<stem>.lock` file beside the series: the kernel drops it when its holder exits,
//! so a killed writer never leaves a series locked. Lock files are kept, never deleted: deleting
//! one while another process waits on it would let two writers in.

use anyhow::{anyhow, bail, Context, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a writer waits by default: far longer than any one merge takes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// After this long a waiting writer says so in the log.
const SAY_AFTER: Duration = Duration::from_secs(1);

/// A held series lock; dropping it releases the lock.
#[derive(Debug)]
pub struct SeriesLock {
    _file: File,
    path: PathBuf,
}

impl SeriesLock {
    /// Waits for the lock, logging once when the wait passes a second, and fails with a message
    /// naming the lock file after `timeout`.
    pub fn acquire(path: &Path, timeout: Duration) -> Result<SeriesLock> {
        let t0 = Instant::now();
        let mut said = false;
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(lock) = Self::try_acquire(path)? {
                if said {
                    tracing::info!(
                        "got the lock {} after {:.1} s",
                        path.display(),
                        t0.elapsed().as_secs_f64()
                    );
                }
                return Ok(lock);
            }
            let waited = t0.elapsed();
            if waited >= timeout {
                bail!(
                    "timed out after {:.0} s waiting for the lock {}: another quantdeck process is writing this series. \
The lock is released when that process ends; if it is stuck, stop it and retry",
                    waited.as_secs_f64(),
                    path.display()
                );
            }
            if !said && waited >= SAY_AFTER {
                tracing::warn!(
                    "waiting for the lock {}: another process is writing this series",
                    path.display()
                );
                said = true;
            }
            std::thread::sleep(pause.min(timeout.saturating_sub(waited)));
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// The lock if it is free now, else `None`.
    pub fn try_acquire(path: &Path) -> Result<Option<SeriesLock>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(SeriesLock {
                _file: file,
                path: path.to_path_buf(),
            })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => {
                Err(anyhow!(e).context(format!("cannot lock {}", path.display())))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_waits_then_times_out_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x").join(".AAA.lock");
        let held = SeriesLock::acquire(&p, DEFAULT_TIMEOUT).unwrap();
        assert!(SeriesLock::try_acquire(&p).unwrap().is_none());
        let t0 = Instant::now();
        let e = format!(
            "{:#}",
            SeriesLock::acquire(&p, Duration::from_millis(300)).unwrap_err()
        );
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert!(e.contains(".AAA.lock") && e.contains("timed out"), "{e}");
        // Released by a holder on another thread: the waiter gets it.
        let waiter = std::thread::spawn(move || SeriesLock::acquire(&p, DEFAULT_TIMEOUT).is_ok());
        std::thread::sleep(Duration::from_millis(200));
        drop(held);
        assert!(waiter.join().unwrap());
    }
}
