//! A training run's validation history: `validations.jsonl` (one validation per line, appended
//! and fsynced as each happens), held against the copy every validation also leaves in
//! `events.jsonl`. A torn last line (a kill mid-append) was never committed and is skipped; a
//! damaged line elsewhere is an error naming the file and line; a validation that the events
//! recorded but the file lost (an emptied or cut file) is taken from the events and said so —
//! never a silently shorter history, never "no validation" over a damaged file.

use super::{Event, EventRecord, RunDir};
use crate::eval::ValidationMetrics;
use anyhow::{Context, Result};

/// The validation history of a run, one JSON object per line, appended as it happens.
pub const VALIDATIONS: &str = "validations.jsonl";

/// A run's history and what reading it found (for the user to see).
#[derive(Debug, Clone, Default)]
pub struct History {
    pub validations: Vec<ValidationMetrics>,
    /// Repairs and recoveries made while reading.
    pub notes: Vec<String>,
    /// Validations recovered from `events.jsonl` (the file lacked them).
    pub recovered: usize,
}

/// `validations.jsonl` as written (a torn last line skipped), or the `validations.json` array
/// older runs wrote at their end. Damage is an error naming the file and line.
pub fn read_validations(dir: &RunDir) -> Result<Vec<ValidationMetrics>> {
    Ok(read_file(dir)?.0)
}

/// The validations in the file and the bytes of a torn tail after them.
fn read_file(dir: &RunDir) -> Result<(Vec<ValidationMetrics>, usize)> {
    let jsonl = dir.artifact(VALIDATIONS);
    if let Some(r) = crate::jsonl::read_records(&jsonl, "validation")? {
        let torn = r.torn_bytes;
        return Ok((r.into_values(), torn));
    }
    let old = dir.artifact("validations.json");
    let text = match std::fs::read_to_string(&old) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "training run {} has no validation history: {} does not exist",
            dir.id,
            jsonl.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", old.display())),
    };
    let v = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a validation history", old.display()))?;
    Ok((v, 0))
}

/// The validations `events.jsonl` says stand: each `Validation` event, less those a later
/// restart or early stop superseded. `None` when the events cannot tell (no file, or damaged:
/// then the note says so).
fn from_events(dir: &RunDir, notes: &mut Vec<String>) -> Option<Vec<ValidationMetrics>> {
    let recs = match crate::jsonl::read_records::<EventRecord>(&dir.events_path(), "event") {
        Ok(Some(r)) => r.into_values(),
        Ok(None) => return None,
        Err(e) => {
            notes.push(format!(
                "cannot hold {VALIDATIONS} against the events: {e:#}"
            ));
            return None;
        }
    };
    let mut out: Vec<ValidationMetrics> = Vec::new();
    for rec in recs {
        match rec.event {
            Event::Validation(m) => out.push(m),
            Event::Restart { from_update, .. } => out.retain(|m| m.update <= from_update),
            Event::EarlyStop(info) => out.retain(|m| m.update <= info.model_update),
            _ => {}
        }
    }
    Some(out)
}

/// The run's history: the file, completed from the events when it lost validations they
/// recorded (see the module comment).
pub fn validation_history(dir: &RunDir) -> Result<History> {
    let (mut validations, torn) = read_file(dir)?;
    let mut notes = Vec::new();
    if torn > 0 {
        notes.push(format!(
            "{}: a torn last line ({torn} bytes, a write cut by a kill) was skipped: it was never committed",
            dir.artifact(VALIDATIONS).display()
        ));
    }
    let mut recovered = 0;
    if let Some(events) = from_events(dir, &mut notes) {
        let lost: Vec<ValidationMetrics> = events
            .into_iter()
            .filter(|e| !validations.iter().any(|v| v.update == e.update))
            .collect();
        if !lost.is_empty() {
            let updates: Vec<String> = lost.iter().map(|v| v.update.to_string()).collect();
            notes.push(format!(
                "{} lacks {} validation(s) that {} recorded (update {}): the file was emptied or cut; using the events' copy",
                dir.artifact(VALIDATIONS).display(),
                lost.len(),
                dir.events_path().display(),
                updates.join(", ")
            ));
            recovered = lost.len();
            validations.extend(lost);
            validations.sort_by_key(|v| v.update);
        }
    }
    Ok(History {
        validations,
        notes,
        recovered,
    })
}

/// Rewrites `validations.jsonl` as `history` (after a recovery), keeping the old file beside it
/// (`validations.jsonl.damaged-<time>`).
pub fn rewrite(dir: &RunDir, history: &[ValidationMetrics]) -> Result<std::path::PathBuf> {
    let path = dir.artifact(VALIDATIONS);
    let aside = path.with_file_name(format!(
        "{VALIDATIONS}.damaged-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
    ));
    if path.exists() {
        std::fs::copy(&path, &aside)
            .with_context(|| format!("cannot keep a copy of {}", path.display()))?;
    }
    let mut text = Vec::new();
    for v in history {
        text.extend(serde_json::to_vec(v)?);
        text.push(b'\n');
    }
    crate::paths::write_atomic(&path, &text)?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::EventSink;

    fn run_dir() -> (tempfile::TempDir, RunDir) {
        let t = tempfile::tempdir().unwrap();
        let dir = RunDir {
            id: "train-x".into(),
            path: t.path().to_path_buf(),
        };
        (t, dir)
    }

    fn val(update: usize) -> ValidationMetrics {
        ValidationMetrics {
            update,
            ..Default::default()
        }
    }

    fn record(dir: &RunDir, vals: &[ValidationMetrics]) {
        let sink = EventSink::to_file("train-x", &dir.events_path()).unwrap();
        let mut text = String::new();
        for v in vals {
            sink.emit(Event::Validation(v.clone()));
            text.push_str(&serde_json::to_string(v).unwrap());
            text.push('\n');
        }
        std::fs::write(dir.artifact(VALIDATIONS), text).unwrap();
    }

    #[test]
    fn a_whole_history_reads_as_written() {
        let (_t, dir) = run_dir();
        record(&dir, &[val(2), val(4)]);
        let h = validation_history(&dir).unwrap();
        assert_eq!(h.validations.len(), 2);
        assert!(h.notes.is_empty(), "{:?}", h.notes);
    }

    #[test]
    fn an_emptied_or_torn_file_is_completed_from_the_events_and_said() {
        let (_t, dir) = run_dir();
        record(&dir, &[val(2), val(4)]);
        // Emptied: before, "no validation" without a word of damage.
        std::fs::write(dir.artifact(VALIDATIONS), "").unwrap();
        let h = validation_history(&dir).unwrap();
        assert_eq!(
            h.validations.iter().map(|v| v.update).collect::<Vec<_>>(),
            [2, 4]
        );
        assert_eq!(h.recovered, 2);
        assert!(
            h.notes[0].contains("lacks 2 validation(s)"),
            "{:?}",
            h.notes
        );
        // One garbled line without its newline: a torn tail, skipped, and the events hold it.
        std::fs::write(dir.artifact(VALIDATIONS), "{\"upd").unwrap();
        let h = validation_history(&dir).unwrap();
        assert_eq!(h.validations.len(), 2);
        assert!(
            h.notes.iter().any(|n| n.contains("torn last line")),
            "{:?}",
            h.notes
        );
        // A garbled line with its newline is damage: an error naming file and line.
        std::fs::write(dir.artifact(VALIDATIONS), "{\"upd\n").unwrap();
        let e = format!("{:#}", validation_history(&dir).unwrap_err());
        assert!(
            e.contains("validations.jsonl:1: damaged validation line"),
            "{e}"
        );
        // Bytes that are not text: named, not "No such file or directory".
        std::fs::write(dir.artifact(VALIDATIONS), b"\xff\xfe\x00garble\n").unwrap();
        let e = format!("{:#}", validation_history(&dir).unwrap_err());
        assert!(
            e.contains("validations.jsonl:1") && e.contains("UTF-8"),
            "{e}"
        );
    }

    #[test]
    fn superseded_validations_are_not_recovered() {
        let (_t, dir) = run_dir();
        let sink = EventSink::to_file("train-x", &dir.events_path()).unwrap();
        for u in [2, 4, 6] {
            sink.emit(Event::Validation(val(u)));
        }
        sink.emit(Event::Restart {
            from_update: 2,
            reason: crate::engine::ppo::RestartReason::Resume {
                checkpoint: "s".into(),
            },
        });
        sink.emit(Event::Validation(val(4)));
        std::fs::write(
            dir.artifact(VALIDATIONS),
            format!("{}\n", serde_json::to_string(&val(2)).unwrap()),
        )
        .unwrap();
        let h = validation_history(&dir).unwrap();
        assert_eq!(
            h.validations.iter().map(|v| v.update).collect::<Vec<_>>(),
            [2, 4]
        );
        let aside = rewrite(&dir, &h.validations).unwrap();
        assert!(aside.exists());
        assert_eq!(read_validations(&dir).unwrap().len(), 2);
    }
}
