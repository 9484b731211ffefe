//! Damaged files never give a silent wrong answer (issue 15), through the real binary: a torn
//! last line of an append-only file is cut before the next append and a restart after that
//! still reads it; damage elsewhere is named by file and line; a run whose manifest is damaged
//! is shown, never skipped; a model or state file whose bytes changed is refused by name; a
//! resume clears the temp files of a killed writer and refuses what it cannot use without
//! marking the run failed.

use crate::common::{qd, text};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A config that trains in a second; every choice acted on (so paper sends orders).
const TINY: &str = "[universe]\nequities = [\"SYNA\"]\ncrypto = []\n[data]\nend = \"2024-03-28\"\n[features]\nwindow = 8\n\
[ppo]\ndevice = \"cpu\"\nn_envs = 8\nn_steps = 32\nminibatch = 64\nepochs = 1\nvalidation_interval = 1\nhidden_dims = [16]\n\
[gating]\nmin_trades = 1\nmin_days = 2\n[live]\nconfidence_threshold = 0.0\n";

pub(crate) struct Home {
    pub dir: tempfile::TempDir,
    pub cfg: String,
}

impl Home {
    pub fn new(extra: &str) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("tiny.toml");
        std::fs::write(&cfg, format!("{TINY}{extra}")).unwrap();
        let h = Home {
            cfg: cfg.display().to_string(),
            dir,
        };
        h.ok(&["fetch"]);
        h
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the binary with this home and config.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["--config", self.cfg.as_str()];
        all.extend_from_slice(args);
        qd(self.path(), &all)
    }

    /// [`Home::run`], which must succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        text(&o)
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_quantdeck"))
            .arg("--home")
            .arg(self.path())
            .args(["--config", &self.cfg])
            .args(args)
            .env_remove("QUANTDECK_HOME")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// The run directories of `kind`, oldest first.
    pub fn runs(&self, kind: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.path().join("runs"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.retain(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{kind}-")))
        });
        v.sort();
        v
    }
}

/// Complete lines of a file (0 when it does not exist).
pub(crate) fn lines(p: &Path) -> usize {
    std::fs::read(p).map_or(0, |b| b.iter().filter(|c| **c == b'\n').count())
}

/// Waits (bounded) until `ok` holds.
pub(crate) fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ok() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// kill -9, as a crash would.
pub(crate) fn kill9(mut c: Child) {
    c.kill().unwrap();
    c.wait().unwrap();
}

/// Cuts the file's last line in half (its newline too), as a write cut by a crash leaves it.
fn tear_last_line(p: &Path) -> usize {
    let b = std::fs::read(p).unwrap();
    let body = &b[..b.len() - 1];
    let start = body.iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1);
    let keep = start + (body.len() - start) / 2;
    std::fs::write(p, &b[..keep]).unwrap();
    b.len() - keep
}

/// Appends the first half of the file's last line without its newline, as a write cut by a
/// crash while appending the next entry leaves it.
fn tear_after_last_line(p: &Path) {
    let b = std::fs::read(p).unwrap();
    let body = &b[..b.len() - 1];
    let start = body.iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1);
    let half = &body[start..start + (body.len() - start) / 2];
    let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
    std::io::Write::write_all(&mut f, half).unwrap();
}

/// A training run killed (-9) after `n` validations; its directory.
fn interrupted_training(h: &Home, n: usize) -> PathBuf {
    let child = h.spawn(&["train", "SYNA", "--timesteps", "100000"]);
    wait_until("the run directory", || !h.runs("train").is_empty());
    let run = h.runs("train")[0].clone();
    wait_until("validations", || lines(&run.join("validations.jsonl")) >= n);
    kill9(child);
    run
}

#[test]
fn a_torn_journal_line_is_cut_before_the_next_append_and_two_restarts_read_it() {
    let h = Home::new("");
    h.ok(&["train", "SYNA", "--timesteps", "1024"]);
    let paper = ["paper", "--bars", "300", "--speed", "40"];
    let child = h.spawn(&paper);
    wait_until("a paper session", || !h.runs("paper").is_empty());
    let session = h.runs("paper")[0].clone();
    let journal = session.join("journal.jsonl");
    wait_until("journal entries", || lines(&journal) >= 3);
    kill9(child);
    // A crash mid-append: the next entry half written after the last whole line (lines the
    // session already recorded as written are never torn by a crash; damage to those is refused,
    // see paper_session).
    tear_after_last_line(&journal);
    let whole = lines(&journal);

    // Restart 1 continues the session and appends: the torn bytes go aside first.
    let child = h.spawn(&paper);
    wait_until("an entry after the tear", || lines(&journal) > whole);
    kill9(child);
    let kept: Vec<_> = std::fs::read_dir(&session)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("journal.jsonl.torn-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "the torn bytes are kept beside the journal");
    // Before: "journal.jsonl:N: damaged journal line", the session lost.
    let entries = quantdeck::live::journal::Journal::read(&journal).unwrap();
    assert!(entries.len() > whole - 1, "{} entries", entries.len());

    // Restart 2 reads the journal again and finishes the replay in the same session.
    let out = h.ok(&["paper", "--bars", "300", "--speed", "0"]);
    assert!(out.contains("replay finished"), "{out}");
    assert_eq!(
        h.runs("paper"),
        vec![session.clone()],
        "the same session went on"
    );
    quantdeck::live::journal::Journal::read(&journal).unwrap();
    // Damage in the middle is an error naming the file and the line, never skipped.
    let text = std::fs::read_to_string(&journal).unwrap();
    let garbled = text.replacen("\"t\":", "\"t\":\u{1}", 1);
    std::fs::write(&journal, garbled).unwrap();
    let e = quantdeck::live::journal::Journal::read(&journal)
        .unwrap_err()
        .to_string();
    assert!(e.contains("journal.jsonl:1: damaged journal line"), "{e}");
}

#[test]
fn torn_validations_and_events_are_cut_said_and_recovered_then_gate_works() {
    let h = Home::new("");
    let run = interrupted_training(&h, 3);
    let log = run.join("validations.jsonl");
    let events = run.join("events.jsonl");
    tear_last_line(&log);
    tear_last_line(&events);
    // The resume cuts each torn tail aside, says so, and appends whole lines after it.
    let out = h.ok(&["train", "--resume"]);
    for name in ["validations.jsonl", "events.jsonl"] {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("{name}: a torn last line"))),
            "{name} not named: {out}"
        );
    }
    for line in std::fs::read_to_string(&events).unwrap().lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let updates: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["update"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let mut sorted = updates.clone();
    sorted.dedup();
    assert_eq!(updates, sorted, "each validation once, in order");
    // Before: the next line was glued onto the torn one and `gate` failed on it.
    let out = h.ok(&["gate"]);
    assert!(
        out.contains("DROP") || out.contains("REVIEW") || out.contains("APPROVED"),
        "{out}"
    );
}

#[test]
fn a_damaged_validation_history_is_named_never_silent() {
    let h = Home::new("");
    let run = interrupted_training(&h, 3);
    let log = run.join("validations.jsonl");
    let good = std::fs::read(&log).unwrap();
    // Emptied: the events hold the validations; the gate says so and grades them (before:
    // "DROP: NO_VALIDATION" without a word of damage).
    std::fs::write(&log, "").unwrap();
    let out = h.ok(&["gate"]);
    assert!(
        out.contains("lacks") && out.contains("using the events' copy"),
        "{out}"
    );
    assert!(!out.contains("NO_VALIDATION"), "{out}");
    // Bytes that are not text (before: "No such file or directory").
    std::fs::write(&log, b"\xff\xfe garbled \x00\n").unwrap();
    let o = h.run(&["gate"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("validations.jsonl:1") && text(&o).contains("UTF-8"),
        "{}",
        text(&o)
    );
    // A garbled line in the middle: the resume refuses (before: it trained on silently), and
    // the run is still interrupted, not failed.
    let mut garbled = good.clone();
    let first_nl = garbled.iter().position(|c| *c == b'\n').unwrap();
    garbled[first_nl / 2] = b'#';
    std::fs::write(&log, &garbled).unwrap();
    let o = h.run(&["train", "--resume"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("validations.jsonl:1: damaged validation line"),
        "{}",
        text(&o)
    );
    assert!(h.ok(&["runs"]).contains("interrupted"));
}

#[test]
fn a_run_with_a_damaged_manifest_is_shown_and_never_skipped() {
    let h = Home::new("");
    h.ok(&["train", "SYNA", "--timesteps", "512"]);
    std::thread::sleep(Duration::from_millis(1100)); // another run id (ids count seconds)
    h.ok(&["train", "SYNA", "--timesteps", "512"]);
    let newest = h.runs("train")[1].clone();
    let id = newest.file_name().unwrap().to_string_lossy().to_string();
    std::fs::write(newest.join("manifest.json"), "{\"id\": garbled").unwrap();
    // Before: `latest` silently graded the older run, exit 0.
    let o = h.run(&["gate"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains(&id) && t.contains("damaged") && t.contains("manifest.json"),
        "{t}"
    );
    // Before: the run id "matched no training run".
    let o = h.run(&["gate", &id]);
    assert!(
        !o.status.success() && text(&o).contains("manifest.json"),
        "{}",
        text(&o)
    );
    // `runs` and `models` list it, naming the file; its models are still listed.
    let runs = h.ok(&["runs"]);
    assert!(
        runs.lines()
            .any(|l| l.contains(&id) && l.contains("damaged")),
        "{runs}"
    );
    let models = h.ok(&["models"]);
    assert!(
        models.contains(&format!("{id}/model.safetensors")),
        "{models}"
    );
    assert!(models.contains(&format!("run {id} is damaged")), "{models}");
    // A missing manifest is damage too.
    std::fs::remove_file(newest.join("manifest.json")).unwrap();
    assert!(h.ok(&["runs"]).contains("is missing"));
}

/// Flips 64 bytes near the end of a file (inside the last tensor's data).
fn garble(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    let n = b.len();
    for x in &mut b[n - 80..n - 16] {
        *x ^= 0x5a;
    }
    std::fs::write(p, b).unwrap();
}

#[test]
fn garbled_model_and_state_files_are_refused_by_name() {
    let h = Home::new("");
    let run = interrupted_training(&h, 3);
    // Before: 64 garbled bytes in best.safetensors were walked forward without a warning.
    let best = run.join("best.safetensors");
    let saved = std::fs::read(&best).unwrap();
    garble(&best);
    let o = h.run(&["walk-forward", "--folds", "2"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("best.safetensors") && t.contains("does not match the digest"),
        "{t}"
    );
    std::fs::write(&best, saved).unwrap();
    // Before: a garbled newest state made resume say "training diverged … lower actor_lr".
    let states: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = std::fs::read_dir(run.join("state"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    };
    let newest = states.last().unwrap();
    garble(newest);
    let o = h.run(&["train", "--resume"]);
    assert!(!o.status.success());
    let t = text(&o);
    let name = newest.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        t.contains(&name) && t.contains("does not match the digest"),
        "{t}"
    );
    assert!(!t.contains("diverged"), "{t}");
}

#[test]
fn a_resume_removes_dead_writers_temp_files_and_a_bad_flag_changes_nothing() {
    let h = Home::new("");
    let run = interrupted_training(&h, 2);
    let dead = u32::MAX - 9;
    let tmp = run.join(format!("state/.update_00008.safetensors.{dead}.tmp"));
    std::fs::write(&tmp, "half a state").unwrap();
    // Before: `--device gpu` marked the interrupted run "failed".
    let o = h.run(&["train", "--resume", "--device", "gpu"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("device"), "{}", text(&o));
    assert!(h.ok(&["runs"]).contains("interrupted"));
    assert!(tmp.exists());
    // Before: temp files of killed writes stayed for good; a lost events file went unsaid.
    std::fs::remove_file(run.join("events.jsonl")).unwrap();
    let out = h.ok(&["train", "--resume", "-v"]);
    assert!(!tmp.exists());
    assert!(
        out.contains("removed") && out.contains(".update_00008.safetensors"),
        "{out}"
    );
    assert!(out.contains("events.jsonl was missing or empty"), "{out}");
}

/// Two processes never write one run: a resume finds the run held (as a second resume started
/// the same instant, or a training still writing, finds it) and is refused without touching it.
/// Before: both resumes of an interrupted run read it as interrupted and both trained into it.
#[test]
fn a_run_held_by_another_process_is_not_resumed() {
    let h = Home::new("");
    let run = interrupted_training(&h, 2);
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(run.join(".run.lock"))
        .unwrap();
    held.try_lock().unwrap();
    let o = h.run(&["train", "--resume"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("in use by another quantdeck process"),
        "{}",
        text(&o)
    );
    assert!(h.ok(&["runs"]).contains("interrupted"));
    let aside = std::fs::read_dir(&run)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("superseded-"));
    assert!(!aside, "a refused resume moved nothing aside");
    // The holder gone (as a killed process's lock goes), the resume runs.
    drop(held);
    let child = h.spawn(&["train", "--resume"]);
    let pid = child.id();
    wait_until("the resume holds the run", || {
        std::fs::read_to_string(run.join("manifest.json"))
            .ok()
            .and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok())
            .is_some_and(|m| m["pid"] == pid)
    });
    // A training that is writing holds it too: a second resume is refused.
    let o = h.run(&[
        "train",
        "--resume",
        &run.file_name().unwrap().to_string_lossy(),
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    // `latest` names the run that is still running (before: "no finished training run …
    // run `quantdeck train SYMBOL` first", as if there were none).
    let o = h.run(&["gate"]);
    assert!(
        text(&o).contains(&format!("is still running (pid {pid})")),
        "{}",
        text(&o)
    );
    kill9(child);
}

/// A damaged user event table (`<home>/events.csv`) changes the features: every job says so on
/// the console. Before: the bad line went to the log only, and a file that is not text was
/// ignored without a word.
#[test]
fn a_damaged_event_table_is_named_by_every_job() {
    let h = Home::new("");
    let table = h.path().join("events.csv");
    std::fs::write(&table, "date,kind\n2024-01-10,FOMC\n2024-13-45,FOMC\n").unwrap();
    let out = h.ok(&["train", "SYNA", "--timesteps", "512"]);
    assert!(
        out.contains("events.csv:3") && out.contains("not used"),
        "{out}"
    );
    std::fs::write(&table, b"\xff\xfe2024-01-10,FOMC\n").unwrap();
    let out = h.ok(&["fetch"]);
    assert!(out.contains("events.csv: cannot be read"), "{out}");
}
