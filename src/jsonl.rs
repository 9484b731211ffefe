//! Append-only JSON-lines files — a run's `events.jsonl` and `validations.jsonl`, a paper
//! session's order journal. A line is whole or it is not there: a process killed mid-append
//! leaves a torn last line (bytes after the last newline), and every writer repairs that tail
//! before its first append — truncating the file to its last complete line and keeping the torn
//! bytes beside it in `<file>.torn-<time>` — so a new line is never glued onto a fragment, and
//! the damage is reported rather than spread. Readers skip a torn tail (it was never committed)
//! but report damage anywhere else.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A torn tail that was cut off a file before appending.
#[derive(Debug, Clone, PartialEq)]
pub struct Repaired {
    pub file: PathBuf,
    /// The bytes removed (everything after the last newline).
    pub torn_bytes: u64,
    /// Where they were kept.
    pub kept: PathBuf,
}

impl Repaired {
    /// `events.jsonl: a torn last line (37 bytes, an interrupted write) was cut off and kept in …`
    pub fn message(&self) -> String {
        format!(
            "{}: a torn last line ({} bytes, from an interrupted write) was cut off before appending; the bytes are kept in {}",
            self.file.display(),
            self.torn_bytes,
            self.kept.display()
        )
    }
}

/// Bytes the file holds after its last newline (0 when it ends with one, or is empty).
fn torn_len(f: &mut File) -> Result<u64> {
    let len = f.metadata()?.len();
    let mut pos = len;
    let mut buf = [0u8; 4096];
    while pos > 0 {
        let n = buf.len().min(pos as usize);
        pos -= n as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            return Ok(len - (pos + i as u64 + 1));
        }
    }
    Ok(len)
}

/// Cuts a torn tail off `path` (keeping the bytes beside it); `None` when the file is whole or
/// absent.
pub fn repair_tail(path: &Path) -> Result<Option<Repaired>> {
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let torn = torn_len(&mut f).with_context(|| format!("cannot read {}", path.display()))?;
    if torn == 0 {
        return Ok(None);
    }
    let len = f.metadata()?.len();
    let mut bytes = Vec::with_capacity(torn as usize);
    f.seek(SeekFrom::Start(len - torn))?;
    f.read_to_end(&mut bytes)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kept = path.with_file_name(format!(
        "{name}.torn-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
    ));
    crate::paths::write_atomic(&kept, &bytes)?;
    f.set_len(len - torn)
        .and_then(|_| f.sync_data())
        .with_context(|| format!("cannot cut the torn tail of {}", path.display()))?;
    Ok(Some(Repaired {
        file: path.to_path_buf(),
        torn_bytes: torn,
        kept,
    }))
}

/// Opens `path` for appending (creating it), after repairing a torn tail.
pub fn open_append(path: &Path) -> Result<(File, Option<Repaired>)> {
    let repaired = repair_tail(path)?;
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    Ok((f, repaired))
}

/// Appends one line (`line` without its newline) in one write.
pub fn append_line(f: &mut File, line: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line);
    buf.push(b'\n');
    f.write_all(&buf)
}

/// The records of an append-only file: each complete line parsed, a torn tail skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Records<T> {
    /// `(line number, record)`, 1-based, oldest first.
    pub items: Vec<(usize, T)>,
    /// Bytes after the last newline: a write cut by a kill, never committed.
    pub torn_bytes: usize,
}

impl<T> Records<T> {
    pub fn into_values(self) -> Vec<T> {
        self.items.into_iter().map(|(_, v)| v).collect()
    }
}

/// Reads every record of `path`, or `None` when there is no such file. Only the bytes after the
/// last newline can be a torn write, and they are skipped (a whole line always ends with its
/// newline, written in the same call). Anything else that does not parse — a garbled line, bytes
/// that are not UTF-8, a complete last line — is damage: an error naming the file, the line and
/// what is wrong, never a silently shorter history. Blank lines are skipped.
pub fn read_records<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
) -> Result<Option<Records<T>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let (whole, torn_bytes) = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(i) => (&bytes[..i], bytes.len() - i - 1),
        None => (&bytes[..0], bytes.len()),
    };
    let mut items = Vec::new();
    if bytes.len() > torn_bytes {
        for (i, line) in whole.split(|b| *b == b'\n').enumerate() {
            let n = i + 1;
            let text = std::str::from_utf8(line).map_err(|e| {
                anyhow::anyhow!(
                    "{}:{n}: damaged {what} line: not UTF-8 text ({e}); only a torn last line can be skipped, so this file needs a look",
                    path.display()
                )
            })?;
            if text.trim().is_empty() {
                continue;
            }
            let v = serde_json::from_str(text).map_err(|e| {
                anyhow::anyhow!(
                    "{}:{n}: damaged {what} line ({}): {e}; only a torn last line can be skipped, so this file needs a look",
                    path.display(),
                    clip(text, 60)
                )
            })?;
            items.push((n, v));
        }
    }
    Ok(Some(Records { items, torn_bytes }))
}

/// `text` cut to `max` characters, saying how long it was.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => format!("{}… ({} bytes)", &text[..at], text.len()),
    }
}

/// The complete lines of a file's text, and whether a torn tail followed them.
pub fn complete_lines(text: &str) -> (Vec<&str>, bool) {
    match text.rfind('\n') {
        None => (Vec::new(), !text.is_empty()),
        Some(i) => (text[..i].split('\n').collect(), i + 1 < text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_tail_is_cut_kept_and_the_next_append_starts_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        std::fs::write(&p, "{\"a\":1}\n{\"a\":2}\n{\"a\":").unwrap();
        let (mut f, repaired) = open_append(&p).unwrap();
        let r = repaired.expect("a repair");
        assert_eq!(r.torn_bytes, 5);
        assert_eq!(std::fs::read_to_string(&r.kept).unwrap(), "{\"a\":");
        append_line(&mut f, b"{\"a\":3}").unwrap();
        drop(f);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
        assert!(r.message().contains("5 bytes"));
        // Whole files and absent ones need nothing.
        assert_eq!(repair_tail(&p).unwrap(), None);
        assert_eq!(repair_tail(&dir.path().join("none")).unwrap(), None);
    }

    #[test]
    fn a_file_of_one_torn_line_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        let long = "x".repeat(10_000);
        std::fs::write(&p, &long).unwrap();
        let r = repair_tail(&p).unwrap().unwrap();
        assert_eq!(r.torn_bytes, 10_000);
        assert_eq!(std::fs::read(&p).unwrap().len(), 0);
    }

    #[test]
    fn readers_skip_a_torn_tail_and_name_damage_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.jsonl");
        let read = |p: &Path| read_records::<serde_json::Value>(p, "validation");
        assert_eq!(read(&dir.path().join("none")).unwrap(), None);
        std::fs::write(&p, "{\"a\":1}\n\n{\"a\":2}\n{\"a\":").unwrap();
        let r = read(&p).unwrap().unwrap();
        assert_eq!((r.items.len(), r.items[1].0, r.torn_bytes), (2, 3, 5));
        // A garbled complete line is damage, the last one included.
        for text in ["{\"a\":1}\n{\"a\n{\"a\":2}\n", "{\"a\":1}\n{\"a\":2\n"] {
            std::fs::write(&p, text).unwrap();
            let e = read(&p).unwrap_err().to_string();
            assert!(e.contains("v.jsonl:2: damaged validation line"), "{e}");
        }
        std::fs::write(&p, b"{\"a\":1}\n\xff\xfe\n").unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("v.jsonl:2") && e.contains("UTF-8"), "{e}");
        // One torn line alone: nothing was committed.
        std::fs::write(&p, "{\"a\"").unwrap();
        let r = read(&p).unwrap().unwrap();
        assert_eq!((r.items.len(), r.torn_bytes), (0, 4));
        // A huge garbled line is not echoed whole.
        std::fs::write(&p, format!("{}\n", "x".repeat(100_000))).unwrap();
        assert!(read(&p).unwrap_err().to_string().len() < 500);
    }

    #[test]
    fn complete_lines_tell_a_torn_tail() {
        assert_eq!(complete_lines("a\nb\n"), (vec!["a", "b"], false));
        assert_eq!(complete_lines("a\nb"), (vec!["a"], true));
        assert_eq!(complete_lines(""), (vec![], false));
        assert_eq!(complete_lines("b"), (vec![], true));
    }
}
