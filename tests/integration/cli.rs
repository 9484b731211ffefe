//! The real binary, headless: what a user types and what they see.

use crate::common::{qd, text};
use std::process::Command;

#[test]
fn headless_pipeline_through_the_binary() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join("tiny.toml");
    std::fs::write(
        &cfg,
        "[universe]\nequities = [\"SYNA\"]\ncrypto = []\n[data]\nend = \"2024-03-28\"\n[features]\nwindow = 8\n\
         [ppo]\ndevice = \"cpu\"\nn_envs = 8\nn_steps = 32\nminibatch = 64\nepochs = 1\nvalidation_interval = 1\nhidden_dims = [16]\n",
    )
    .unwrap();
    let c = cfg.to_str().unwrap();

    let o = qd(home.path(), &["--config", c, "fetch"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("SYNA 15Min:") && text(&o).contains("(synthetic)"),
        "{}",
        text(&o)
    );

    let o = qd(
        home.path(),
        &[
            "--config",
            c,
            "train",
            "SYNA",
            "--timesteps",
            "512",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("--json prints JSON lines"))
        .collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["event"]["type"] == "update")
            .count(),
        2
    );
    assert_eq!(lines.last().unwrap()["event"]["status"], "completed");

    for args in [
        vec!["gate"],
        vec!["walk-forward", "--folds", "3"],
        vec!["paper", "--bars", "10", "--speed", "0"],
    ] {
        let mut a = vec!["--config", c];
        a.extend(args.iter());
        let o = qd(home.path(), &a);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    let o = qd(home.path(), &["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let kinds: Vec<_> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["fetch", "train", "gate", "walk-forward", "paper"]);
    assert!(runs
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["state"] == "completed"));

    let o = qd(home.path(), &["models"]);
    assert!(
        text(&o).contains("hidden [16]") && text(&o).contains("obs_dim 467"),
        "{}",
        text(&o)
    );
    let o = qd(home.path(), &["models", "inspect", "latest"]);
    assert!(
        text(&o).contains("HOLD, BUY_25, BUY_50, BUY_75, SELL_25, SELL_50, SELL_75, CLOSE"),
        "{}",
        text(&o)
    );

    // Unknown symbol: a clear error and a failing exit code.
    let o = qd(home.path(), &["--config", c, "train", "ZZZZ"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("unknown symbol \"ZZZZ\""), "{}", text(&o));
}

#[test]
fn malformed_config_names_file_line_and_field() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join("bad.toml");
    std::fs::write(&cfg, "[ppo]\nepochs = 4\nhidden_dims = \"big\"\n").unwrap();
    let o = qd(home.path(), &["--config", cfg.to_str().unwrap(), "runs"]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains("bad.toml") && t.contains("line 3") && t.contains("hidden_dims"),
        "{t}"
    );
    let o = qd(home.path(), &["--mode", "turbo", "runs"]);
    assert!(text(&o).contains("unknown mode \"turbo\""), "{}", text(&o));
}

#[test]
fn help_explains_every_subcommand() {
    let home = tempfile::tempdir().unwrap();
    let o = qd(home.path(), &["--help"]);
    assert!(o.status.success());
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    // The names listed under "Commands:", not words that happen to occur in the text.
    let listed: Vec<String> = t
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    for sub in [
        "fetch",
        "import",
        "data",
        "train",
        "gate",
        "walk-forward",
        "paper",
        "models",
        "runs",
        "features",
    ] {
        assert!(
            listed.iter().any(|c| c == sub),
            "--help lacks {sub}: {listed:?}"
        );
        let o = qd(home.path(), &[sub, "--help"]);
        assert!(o.status.success(), "{sub} --help: {}", text(&o));
        assert!(text(&o).contains("Usage: quantdeck"), "{sub}: {}", text(&o));
    }
    let o = qd(home.path(), &["train", "--help"]);
    assert!(text(&o).contains("--device") && text(&o).contains("--timesteps"));
    let o = qd(home.path(), &["walk-forward", "--help"]);
    assert!(
        text(&o).contains("--days") && text(&o).contains("--from") && text(&o).contains("--to")
    );
}

#[test]
fn piping_into_a_closed_reader_does_not_panic() {
    use std::io::Read;
    use std::process::Stdio;
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quantdeck"))
        .arg("--home")
        .arg(home.path())
        .args(["features", "--spec"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close our end before it prints, like `| true` would: every print hits a closed pipe.
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    // Either it finished before noticing, or SIGPIPE ended it — never a panic (exit 101).
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.success() || status.signal() == Some(13),
        "{status:?}: {err}"
    );
}
