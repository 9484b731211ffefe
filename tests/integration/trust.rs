//! Results a user can trust (issue 7): each failure found by hostile testing, through the real
//! binary or the real jobs — refused bad values, evaluation that never touches bars the model saw,
//! thin validations never graded, interrupted runs still usable, signals that stop cleanly.

use crate::common::{qd, text};
use quantdeck::engine::ppo::{explained_variance, gae};
use std::path::Path;
use std::process::{Command, Stdio};

/// A config small enough to train in a few seconds through the binary.
const TINY: &str = "[universe]\nequities = [\"SYNA\"]\ncrypto = []\n[data]\nend = \"2024-03-28\"\n[features]\nwindow = 8\n\
[ppo]\ndevice = \"cpu\"\nn_envs = 8\nn_steps = 32\nminibatch = 64\nepochs = 1\nvalidation_interval = 1\nhidden_dims = [16]\n";

fn tiny(home: &Path, extra: &str) -> String {
    let p = home.join("tiny.toml");
    std::fs::write(&p, format!("{TINY}{extra}")).unwrap();
    p.display().to_string()
}

fn train(home: &Path, cfg: &str, steps: &str) {
    let o = qd(
        home,
        &["--config", cfg, "train", "SYNA", "--timesteps", steps],
    );
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_negative_commission_is_refused_with_file_line_and_field() {
    let home = tempfile::tempdir().unwrap();
    // Before: accepted, and a walk-forward turned LIVE on the "income" from trading.
    let cfg = tiny(
        home.path(),
        "[backtest]\nslippage = 0.0005\ncommission = -1000\n",
    );
    let o = qd(home.path(), &["--config", &cfg, "walk-forward"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("tiny.toml") && t.contains("line 18") && t.contains("commission = -1000"),
        "{t}"
    );
    assert!(t.contains("out of range"), "{t}");
}

#[test]
fn flags_are_range_checked_too() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        vec!["train", "SYNA", "--timesteps", "0"],
        vec!["walk-forward", "--folds", "0"],
        vec!["paper", "--speed", "-3"],
        vec!["walk-forward", "--from", "2024-02-30"],
    ] {
        let o = qd(home.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    }
}

/// Walk-forward evaluates only bars after the model's recorded validation end, and refuses a
/// period that overlaps what the model saw, naming both ranges.
#[test]
fn evaluation_never_uses_bars_the_model_saw() {
    let home = tempfile::tempdir().unwrap();
    let cfg = tiny(home.path(), "");
    assert!(qd(home.path(), &["--config", &cfg, "fetch"])
        .status
        .success());
    train(home.path(), &cfg, "512");

    // A period inside the training range is refused.
    let o = qd(
        home.path(),
        &["--config", &cfg, "walk-forward", "--from", "2024-01-10"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("overlaps the bars the model saw"), "{t}");
    assert!(
        t.contains("2024-01-02") && t.contains("Out-of-sample bars start after"),
        "{t}"
    );
    // So is a `--days` window reaching back into it.
    let o = qd(
        home.path(),
        &["--config", &cfg, "walk-forward", "--days", "60"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // Changing the split after training does not move the evaluation into the training bars.
    let shifted = home.path().join("shifted.toml");
    std::fs::write(
        &shifted,
        TINY.replace(
            "[data]\n",
            "[data]\ntrain_split = 0.2\nvalidation_split = 0.1\n",
        ),
    )
    .unwrap();
    let shifted = shifted.display().to_string();
    let o = qd(
        home.path(),
        &["--config", &shifted, "walk-forward", "--json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let runs = std::fs::read_dir(home.path().join("runs")).unwrap();
    let train_dir = runs
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("train-")
        })
        .unwrap();
    let (_, meta) = quantdeck::engine::checkpoint::load_model(
        &train_dir.join("model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let folds: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"]["type"] == "fold")
        .map(|v| v["event"].clone())
        .collect();
    assert!(!folds.is_empty());
    for f in &folds {
        let start: chrono::DateTime<chrono::Utc> = f["start"].as_str().unwrap().parse().unwrap();
        assert!(
            start > meta.seen_until(),
            "fold starts {start}, model saw up to {}",
            meta.seen_until()
        );
        // Every fold carries the four baselines.
        assert_eq!(f["baselines"].as_array().unwrap().len(), 4, "{f}");
    }
    let decision = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"]["type"] == "decision")
        .unwrap();
    let named = decision["event"]["beats"].as_array().unwrap().len()
        + decision["event"]["trails"].as_array().unwrap().len();
    assert_eq!(named, 4, "{decision}");
}

/// With 1–3 trades a validation used to score PF 99 and become the "best" checkpoint. Now a
/// validation below `gating.min_trades` is insufficient: never the best checkpoint, never graded.
#[test]
fn validations_with_too_few_trades_are_never_scored() {
    let home = tempfile::tempdir().unwrap();
    let cfg = tiny(home.path(), "[gating]\nmin_trades = 100000\n");
    assert!(qd(home.path(), &["--config", &cfg, "fetch"])
        .status
        .success());
    train(home.path(), &cfg, "512");
    let o = qd(home.path(), &["--config", &cfg, "gate"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("DROP") && t.contains("INSUFFICIENT_TRADES"),
        "{t}"
    );
    assert!(!t.contains("PF 99"), "{t}");
    let train_dir = std::fs::read_dir(home.path().join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("train-")
        })
        .unwrap();
    assert!(
        !train_dir.join("best.safetensors").exists(),
        "an unscored validation became the best"
    );
    let vals = std::fs::read_to_string(train_dir.join("validations.jsonl")).unwrap();
    assert_eq!(vals.lines().count(), 2);
    assert!(
        vals.lines().all(|l| l.contains("\"insufficient\":true")),
        "{vals}"
    );
}

fn spawn_training(home: &Path, cfg: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_quantdeck"))
        .arg("--home")
        .arg(home)
        .args(["--config", cfg, "train", "SYNA", "--timesteps", "100000000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn only_run(home: &Path, prefix: &str) -> std::path::PathBuf {
    let runs: Vec<_> = std::fs::read_dir(home.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

fn wait_for_validations(run: &Path, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let have = std::fs::read_to_string(run.join("validations.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if have >= n && run.join("best.safetensors").exists() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no {n} validations");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A run killed after N validations has a best checkpoint and its validation history: it can be
/// gated and walked forward, and both say it was interrupted.
#[test]
fn an_interrupted_run_stays_usable() {
    let home = tempfile::tempdir().unwrap();
    // Scored validations (min_trades 1, every choice acted on) so a best checkpoint exists.
    let cfg = tiny(
        home.path(),
        "[gating]\nmin_trades = 1\nmin_days = 2\n[live]\nconfidence_threshold = 0.0\n",
    );
    assert!(qd(home.path(), &["--config", &cfg, "fetch"])
        .status
        .success());
    let mut child = spawn_training(home.path(), &cfg);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let run = only_run(home.path(), "train-");
    wait_for_validations(&run, 2);
    child.kill().unwrap(); // SIGKILL: no chance to save anything more
    child.wait().unwrap();
    assert!(!run.join("model.safetensors").exists());

    let o = qd(home.path(), &["runs"]);
    assert!(text(&o).contains("interrupted"), "{}", text(&o));
    let o = qd(home.path(), &["--config", &cfg, "gate"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("was interrupted after"), "{}", text(&o));
    let o = qd(
        home.path(),
        &["--config", &cfg, "walk-forward", "--folds", "2"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("the best checkpoint of an interrupted run"),
        "{}",
        text(&o)
    );
}

/// SIGINT, SIGTERM and SIGHUP (a dropped SSH session) all stop training cleanly: the model and
/// the validations are saved first, the run is marked cancelled, the exit code is 130.
#[test]
fn every_stop_signal_saves_the_model_first() {
    for sig in ["INT", "TERM", "HUP"] {
        let home = tempfile::tempdir().unwrap();
        let cfg = tiny(home.path(), "");
        assert!(qd(home.path(), &["--config", &cfg, "fetch"])
            .status
            .success());
        let mut child = spawn_training(home.path(), &cfg);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let run = only_run(home.path(), "train-");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::fs::read_to_string(run.join("validations.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
            < 1
        {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let kill = Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "SIG{sig}");
        assert!(run.join("model.safetensors").exists(), "SIG{sig}: no model");
        let m = std::fs::read_to_string(run.join("manifest.json")).unwrap();
        assert!(m.contains("\"status\": \"cancelled\""), "SIG{sig}: {m}");
        let ev = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
        assert!(
            ev.lines().last().unwrap().contains("\"finished\""),
            "SIG{sig}"
        );
    }
}

#[test]
fn gae_and_explained_variance_known_values() {
    // Two envs, two steps, step-major. Env 0 ends its episode at step 1 (no bootstrap); env 1
    // bootstraps from the last value. γ = 0.9, λ = 0.8, all values 0.5, last values 2.0.
    //   env 0: δ1 = 1 − 0.5 = 0.5;            A1 = 0.5
    //          δ0 = 1 + 0.9·0.5 − 0.5 = 0.95;  A0 = 0.95 + 0.72·0.5 = 1.31
    //   env 1: δ1 = 1 + 0.9·2 − 0.5 = 2.3;     A1 = 2.3
    //          δ0 = 0.95;                      A0 = 0.95 + 0.72·2.3 = 2.606
    let (adv, ret) = gae(
        &[1.0; 4],
        &[0.5; 4],
        &[false, false, true, false],
        &[2.0, 2.0],
        2,
        0.9,
        0.8,
    );
    for (a, e) in adv.iter().zip([1.31, 2.606, 0.5, 2.3]) {
        assert!((a - e).abs() < 1e-5, "{adv:?}");
    }
    for (r, e) in ret.iter().zip([1.81, 3.106, 1.0, 2.8]) {
        assert!((r - e).abs() < 1e-5, "{ret:?}");
    }
    let r = [1.0f32, 2.0, 3.0];
    assert!((explained_variance(&r, &r) - 1.0).abs() < 1e-12);
    assert!(explained_variance(&[2.0; 3], &r).abs() < 1e-12);
    // Residuals [-0.5, 0, 0.5]: 1 − (1/6)/(2/3) = 0.75.
    assert!((explained_variance(&[1.5, 2.0, 2.5], &r) - 0.75).abs() < 1e-9);
    assert_eq!(explained_variance(&[0.0; 3], &[1.0; 3]), 0.0);
}
