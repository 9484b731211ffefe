//! Hostile inputs end in a message, never in a crash, an abort, a hang or a wrong answer (issue
//! 15), through the real binary: a series' source is part of its identity; epoch timestamps
//! are read in their own unit; absurd sizes are refused before allocating; a stop is honoured
//! between minibatches; a huge cooldown saturates everywhere.

use crate::common::fake_alpaca::{KEY_ID, SECRET};
use crate::common::{qd, qd_env, text};
use crate::hostile_files::{wait_until, Home};
use quantdeck::data::Store;
use quantdeck::market::{Symbol, Timeframe};
use quantdeck::paths::Paths;
use std::time::{Duration, Instant};

#[test]
fn an_alpaca_fetch_is_never_answered_by_synthetic_bars() {
    let home = tempfile::tempdir().unwrap();
    let o = qd(home.path(), &["fetch", "SYNA", "--end", "2024-02-01"]);
    assert!(o.status.success(), "{}", text(&o));
    let fast = home.path().join("fast.toml");
    std::fs::write(&fast, "[data]\nmax_retries = 0\ntimeout_s = 2\n").unwrap();
    // Nothing listens on port 9: every request fails at once.
    let o = qd_env(
        home.path(),
        &[
            "--config",
            fast.to_str().unwrap(),
            "fetch",
            "SYNA",
            "--source",
            "alpaca",
            "--end",
            "2024-02-01",
        ],
        &[
            ("APCA_API_DATA_URL", "http://127.0.0.1:9"),
            ("APCA_API_KEY_ID", KEY_ID),
            ("APCA_API_SECRET_KEY", SECRET),
        ],
    );
    let t = text(&o);
    // Before: 0 requests, "completed … (Alpaca)", exit 0.
    assert!(!o.status.success(), "{t}");
    assert!(!t.contains("completed"), "{t}");
    assert!(t.contains("moved aside") && t.contains("synthetic"), "{t}");
    let dir = Store::new(&Paths::under(home.path()).data)
        .parquet_path(&Symbol::equity("SYNA"), Timeframe::Minute(15))
        .parent()
        .unwrap()
        .to_path_buf();
    let kept = std::fs::read_dir(&dir).unwrap().flatten().any(|e| {
        e.file_name()
            .to_string_lossy()
            .starts_with("SYNA.parquet.synthetic-")
    });
    assert!(kept, "the synthetic bars are kept aside, not deleted");
    // Training that asks for Alpaca's bars is never given another source's.
    let o = qd(home.path(), &["fetch", "SYNA", "--end", "2024-02-01"]);
    assert!(o.status.success(), "{}", text(&o));
    let alpaca = home.path().join("alpaca.toml");
    std::fs::write(
        &alpaca,
        "[data]\nsource = \"alpaca\"\nend = \"2024-02-01\"\n",
    )
    .unwrap();
    let o = qd(
        home.path(),
        &[
            "--config",
            alpaca.to_str().unwrap(),
            "train",
            "SYNA",
            "--timesteps",
            "512",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("come from synthetic"), "{}", text(&o));
    // Merging another source's bars into a series is refused, naming both.
    let csv = home.path().join("bars.csv");
    std::fs::write(
        &csv,
        "timestamp,open,high,low,close,volume\n2024-01-02 10:00,10,11,9,10,5\n",
    )
    .unwrap();
    let o = qd(home.path(), &["import", csv.to_str().unwrap(), "SYNA"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("synthetic bars") && text(&o).contains("--replace"),
        "{}",
        text(&o)
    );
}

#[test]
fn epoch_timestamps_are_read_in_their_own_unit_or_refused() {
    let home = tempfile::tempdir().unwrap();
    let t = chrono::DateTime::parse_from_rfc3339("2024-03-12T13:30:00Z").unwrap();
    let s = t.timestamp();
    let csv = home.path().join("us.csv");
    let rows: String = (0..3)
        .map(|k| format!("{},10,11,9,10,5\n", (s + 900 * k) * 1_000_000))
        .collect();
    std::fs::write(
        &csv,
        format!("timestamp,open,high,low,close,volume\n{rows}"),
    )
    .unwrap();
    // Before: microseconds read as milliseconds, a bar in the year 56316, exit 0.
    let o = qd(home.path(), &["import", csv.to_str().unwrap(), "AAA"]);
    assert!(o.status.success(), "{}", text(&o));
    let bars = Store::new(&Paths::under(home.path()).data)
        .read(&Symbol::equity("AAA"), Timeframe::Minute(15))
        .unwrap();
    assert_eq!(bars[0].ts, t);
    assert_eq!(bars.len(), 3);
    // A number in no unit's range, and a date far outside the calendar: refused by row.
    for (bad, why) in [
        ("10000000000", "is not an epoch time"),
        ("3000-01-01 09:30", "outside the calendar"),
    ] {
        std::fs::write(
            &csv,
            format!("timestamp,open,high,low,close,volume\n{s},10,11,9,10,5\n{bad},10,11,9,10,5\n"),
        )
        .unwrap();
        let o = qd(
            home.path(),
            &["import", csv.to_str().unwrap(), "BBB", "--tz", "UTC"],
        );
        assert!(!o.status.success(), "{bad}: {}", text(&o));
        assert!(
            text(&o).contains("row 3") && text(&o).contains(why),
            "{}",
            text(&o)
        );
    }
}

#[test]
fn absurd_sizes_are_refused_before_allocating() {
    let h = Home::new("");
    for (name, over) in [
        ("hidden", "hidden_dims = [65536, 65536]\n"),
        ("gru", "encoder = \"gru\"\ngru_hidden = 65536\n"),
        (
            "gru8",
            "encoder = \"gru\"\ngru_layers = 8\ngru_hidden = 4096\n",
        ),
    ] {
        let cfg = h.path().join(format!("{name}.toml"));
        let base = std::fs::read_to_string(&h.cfg).unwrap();
        std::fs::write(&cfg, base.replace("hidden_dims = [16]\n", over)).unwrap();
        let o = qd(
            h.path(),
            &[
                "--config",
                cfg.to_str().unwrap(),
                "train",
                "SYNA",
                "--timesteps",
                "512",
            ],
        );
        let t = text(&o);
        // Before: an allocation abort (SIGABRT) or minutes of swapping.
        assert_eq!(o.status.code(), Some(1), "{name}: {t}");
        assert!(
            t.contains("refused before allocating") && t.contains("MemAvailable"),
            "{name}: {t}"
        );
    }
}

#[test]
fn a_stop_is_honoured_between_minibatches() {
    // 1000 epochs of 2048 two-sample minibatches: one update is many minutes of work.
    let h = Home::new("");
    let cfg = h.path().join("slow.toml");
    let base = std::fs::read_to_string(&h.cfg).unwrap();
    std::fs::write(
        &cfg,
        base.replace("epochs = 1\n", "epochs = 1000\ncritic_epochs = 1000\n")
            .replace("minibatch = 64\n", "minibatch = 2\n")
            .replace("n_envs = 8\n", "n_envs = 64\n")
            .replace("n_steps = 32\n", "n_steps = 64\n"),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quantdeck"))
        .arg("--home")
        .arg(h.path())
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "train",
            "SYNA",
            "--timesteps",
            "4096",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the run started", || !h.runs("train").is_empty());
    let run = h.runs("train")[0].clone();
    wait_until("training began", || {
        std::fs::read_to_string(run.join("events.jsonl")).is_ok_and(|t| t.contains("training SYNA"))
    });
    let sent = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // Before: SIGTERM waited for the whole update. The bound is generous: it only has to be
    // far below an update's minutes.
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(130));
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(60),
            "SIGTERM not honoured"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        run.join("model.safetensors").is_file(),
        "saved before stopping"
    );
}

#[test]
fn a_huge_cooldown_saturates_everywhere() {
    let h = Home::new("cooldown_s = 9223372036854775807\n");
    // Validation, gate, walk-forward and paper all decide under the cooldown.
    for args in [
        vec!["train", "SYNA", "--timesteps", "1024"],
        vec!["gate"],
        vec!["walk-forward", "--folds", "2"],
        vec!["paper", "--bars", "60", "--speed", "0"],
    ] {
        let o = h.run(&args);
        let t = text(&o);
        assert!(o.status.success(), "{args:?}: {t}");
        assert!(!t.contains("panicked"), "{args:?}: {t}");
    }
}
