//! `quantdeck train` through the real binary: the duration flags' priority, `--quiet` and
//! `--verbose`, and `--resume` refusals.

use crate::common::{self, qd, text};
use std::path::Path;

/// The tiny test configuration as a file the binary reads.
fn tiny_file(home: &Path) -> String {
    let p = home.join("tiny.toml");
    std::fs::write(&p, toml::to_string(&common::tiny_config()).unwrap()).unwrap();
    p.display().to_string()
}

fn only_run(home: &Path) -> serde_json::Value {
    let runs: Vec<_> = std::fs::read_dir(home.join("runs"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1);
    let text = std::fs::read_to_string(runs[0].path().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn duration_flags_follow_their_priority_and_say_so() {
    let home = tempfile::tempdir().unwrap();
    let cfg = tiny_file(home.path());
    let o = qd(
        home.path(),
        &[
            "--config",
            &cfg,
            "train",
            "SYNA",
            "--iterations",
            "2",
            "--episodes",
            "3",
        ],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains(
            "--episodes given: --iterations ignored (priority: timesteps > episodes > iterations)"
        ),
        "{out}"
    );
    // 3 episodes × 64 steps = 192 env-steps: one update of 16 × 32 = 512.
    assert!(
        out.contains(
            "--episodes 3 = 3 × 64-step episodes = 192 env-steps → 1 update(s) of 512 steps"
        ),
        "{out}"
    );
    assert!(out.contains("update 1/1"), "{out}");
    let m = only_run(home.path());
    assert_eq!(m["config"]["ppo"]["total_timesteps"], 512);

    let home = tempfile::tempdir().unwrap();
    let cfg = tiny_file(home.path());
    let o = qd(
        home.path(),
        &[
            "--config",
            &cfg,
            "train",
            "SYNA",
            "--timesteps",
            "1024",
            "--iterations",
            "5",
            "--quiet",
        ],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    // --quiet: no notes, no update lines, no closing line.
    assert!(
        !out.contains("update 1/2") && !out.contains("note:"),
        "{out}"
    );
    assert!(!out.contains("finished"), "{out}");
    assert_eq!(
        only_run(home.path())["config"]["ppo"]["total_timesteps"],
        1024
    );
}

#[test]
fn verbose_shows_reward_components_and_debug_lines() {
    let home = tempfile::tempdir().unwrap();
    let cfg = tiny_file(home.path());
    let o = qd(
        home.path(),
        &[
            "--config",
            &cfg,
            "train",
            "SYNA",
            "--iterations",
            "1",
            "--reward",
            "seed",
            "-v",
        ],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("reward: direction"), "{out}");
    assert!(out.contains("critic-only v"), "{out}");
    assert!(out.contains("[debug] optimizers: actor"), "{out}");
    let m = only_run(home.path());
    assert_eq!(m["config"]["env"]["reward"], "seed");
}

#[test]
fn resume_refusals_name_the_reason() {
    let home = tempfile::tempdir().unwrap();
    let cfg = tiny_file(home.path());
    let o = qd(
        home.path(),
        &["--config", &cfg, "train", "SYNA", "--iterations", "4"],
    );
    assert!(o.status.success(), "{}", text(&o));

    let o = qd(home.path(), &["train", "--resume"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("nothing is left to resume"),
        "{}",
        text(&o)
    );

    // An explicit mode with another network, from the earlier (update 2) state: both layouts named.
    let run = only_run(home.path());
    let state_dir = home
        .path()
        .join("runs")
        .join(run["id"].as_str().unwrap())
        .join("state");
    let mut states: Vec<_> = std::fs::read_dir(&state_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    states.sort();
    assert!(states.len() >= 2, "{states:?}");
    let earlier = states[0].display().to_string();
    let o = qd(
        home.path(),
        &["--mode", "quick_test", "train", "--checkpoint", &earlier],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("checkpoint mlp [32, 16]") && out.contains("this configuration mlp [128, 64]"),
        "{out}"
    );

    // A symbol or a duration does not go with --resume.
    let o = qd(home.path(), &["train", "SYNA", "--resume"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = qd(
        home.path(),
        &["train", "--resume", "latest", "--iterations", "3"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cannot be used with"), "{}", text(&o));
}
