use super::{Event, EventRecord};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Follows a run's `events.jsonl` written by another process: each `poll` returns the complete
/// lines appended since the last one. A half-written last line waits for its newline.
#[derive(Debug)]
pub struct EventTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    /// Complete lines read so far, so damage is reported by its line number.
    lines: usize,
}

impl EventTail {
    pub fn new(path: &Path) -> Self {
        EventTail {
            path: path.to_path_buf(),
            offset: 0,
            partial: Vec::new(),
            lines: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn poll(&mut self) -> Vec<EventRecord> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            // Truncated or replaced: start over.
            self.offset = 0;
            self.partial.clear();
            self.lines = 0;
        }
        if len == self.offset || f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut out = Vec::new();
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            self.lines += 1;
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            match serde_json::from_str::<EventRecord>(text) {
                Ok(rec) => out.push(rec),
                Err(e) => out.push(EventRecord {
                    seq: u64::MAX,
                    at: chrono::Utc::now(),
                    run_id: String::new(),
                    event: Event::Log {
                        level: super::LogLevel::Warn,
                        message: format!(
                            "{}:{}: damaged event line ({}): {e}",
                            self.path.display(),
                            self.lines,
                            crate::jsonl::clip(text, 60)
                        ),
                    },
                }),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::EventSink;
    use std::io::Write;

    #[test]
    fn tail_sees_appended_events_and_waits_for_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let sink = EventSink::to_file("r1", &p).unwrap();
        let mut tail = EventTail::new(&p);
        assert!(tail.poll().is_empty());
        sink.info("one");
        sink.info("two");
        let got = tail.poll();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].seq, 1);
        // A writer caught mid-line: nothing until the newline arrives.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(
            br#"{"seq":2,"at":"2024-01-01T00:00:00Z","run_id":"r1","event":{"type":"log","#,
        )
        .unwrap();
        assert!(tail.poll().is_empty());
        f.write_all(br#""level":"info","message":"three"}}"#)
            .unwrap();
        f.write_all(b"\n").unwrap();
        let got = tail.poll();
        assert_eq!(got.len(), 1);
        assert!(matches!(&got[0].event, Event::Log { message, .. } if message == "three"));
    }
}
