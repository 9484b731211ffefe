use super::{Event, EventRecord, LogLevel};
use chrono::Utc;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

type Observer = Box<dyn Fn(&EventRecord) + Send + Sync>;

/// Appends a job's events to its `events.jsonl` (one flushed line each, so tailers see them at
/// once) and hands each to in-process observers: a TUI channel, a progress bar.
pub struct EventSink {
    run_id: String,
    file: Option<Mutex<File>>,
    seq: AtomicU64,
    observers: Vec<Observer>,
    io_error: Mutex<Option<String>>,
    /// The repair made when the file was opened, told again to each observer added later (the
    /// console of the command that opened it must say so too).
    repair: Option<EventRecord>,
}

impl EventSink {
    /// Appends to `path`. A file that already holds events (a resumed paper session) is
    /// continued: numbering goes on after its last line, so readers see one gap-free stream.
    pub fn to_file(run_id: &str, path: &Path) -> anyhow::Result<Self> {
        let next = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| {
                t.lines()
                    .rev()
                    .find_map(|l| serde_json::from_str::<EventRecord>(l).ok())
            })
            .map_or(0, |r| r.seq + 1);
        // A torn last line (a kill mid-append) is cut off first, never appended to.
        let (file, repaired) = crate::jsonl::open_append(path)?;
        let mut sink = EventSink {
            run_id: run_id.to_string(),
            file: Some(Mutex::new(file)),
            seq: AtomicU64::new(next),
            observers: Vec::new(),
            io_error: Mutex::new(None),
            repair: None,
        };
        if let Some(r) = repaired {
            tracing::warn!("{}", r.message());
            sink.warn(r.message());
            sink.repair = Some(EventRecord {
                seq: next,
                at: Utc::now(),
                run_id: run_id.to_string(),
                event: Event::Log {
                    level: LogLevel::Warn,
                    message: r.message(),
                },
            });
        }
        Ok(sink)
    }

    /// A sink that only notifies observers (jobs run inside tests or benchmarks).
    pub fn detached(run_id: &str) -> Self {
        EventSink {
            run_id: run_id.to_string(),
            file: None,
            seq: AtomicU64::new(0),
            observers: Vec::new(),
            io_error: Mutex::new(None),
            repair: None,
        }
    }

    pub fn observe(mut self, f: impl Fn(&EventRecord) + Send + Sync + 'static) -> Self {
        if let Some(r) = &self.repair {
            f(r);
        }
        self.observers.push(Box::new(f));
        self
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn emit(&self, event: Event) {
        let rec = EventRecord {
            seq: self.seq.fetch_add(1, Ordering::SeqCst),
            at: Utc::now(),
            run_id: self.run_id.clone(),
            event,
        };
        if let Some(file) = &self.file {
            let res = serde_json::to_string(&rec)
                .map_err(std::io::Error::other)
                .and_then(|mut line| {
                    line.push('\n');
                    let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
                    f.write_all(line.as_bytes())
                });
            if let Err(e) = res {
                let mut slot = self.io_error.lock().unwrap_or_else(|p| p.into_inner());
                if slot.is_none() {
                    tracing::error!("cannot append to events.jsonl of {}: {e}", self.run_id);
                    *slot = Some(e.to_string());
                }
            }
        }
        for o in &self.observers {
            o(&rec);
        }
    }

    pub fn log(&self, level: LogLevel, message: impl Into<String>) {
        self.emit(Event::Log {
            level,
            message: message.into(),
        });
    }

    pub fn info(&self, message: impl Into<String>) {
        self.log(LogLevel::Info, message);
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.log(LogLevel::Warn, message);
    }

    pub fn error(&self, message: impl Into<String>) {
        self.log(LogLevel::Error, message);
    }

    /// The first write error, if appending to the events file ever failed (e.g. disk full).
    pub fn io_error(&self) -> Option<String> {
        self.io_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
