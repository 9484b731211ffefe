//! TensorBoard event files: every training run writes one as it trains, `quantdeck export` writes
//! the same points from `events.jsonl`, and Python's own reader (tensorboard's
//! EventAccumulator, when it can be imported) reads what we wrote — including the session-log
//! START that drops a resumed run's superseded points.

use crate::common::{self, qd, text};
use quantdeck::jobs::tensorboard::{event_files, tfevents};
use std::collections::BTreeMap;
use std::path::Path;

/// tag → [(step, value)] as our own reader sees a file (a START drops later points, as
/// TensorBoard does).
fn scalars(path: &Path) -> BTreeMap<String, Vec<(i64, f32)>> {
    let mut out: BTreeMap<String, Vec<(i64, f32)>> = BTreeMap::new();
    for e in tfevents::read_file(path).unwrap() {
        match e.what {
            tfevents::What::Scalars(values) => {
                for (tag, v) in values {
                    out.entry(tag).or_default().push((e.step, v));
                }
            }
            tfevents::What::SessionStart => {
                for points in out.values_mut() {
                    points.retain(|(s, _)| *s < e.step);
                }
            }
            tfevents::What::FileVersion(v) => assert_eq!(v, "brain.Event:2"),
        }
    }
    out
}

/// A Python with `tensorboard` importable: $QUANTDECK_TB_PYTHON, else python3. None (and a loud
/// note) when there is none: the check is optional, never a CI requirement.
fn tb_python() -> Option<String> {
    let py = std::env::var("QUANTDECK_TB_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&py)
        .args(["-c", "import tensorboard"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "\n*** SKIPPED the Python TensorBoard reader check: `{py} -c 'import tensorboard'` failed \
             (set QUANTDECK_TB_PYTHON to a Python with tensorboard installed to run it) ***\n"
        );
    }
    ok.then_some(py)
}

/// What TensorBoard's EventAccumulator reads from a run directory: tag → [(step, value)].
fn python_scalars(py: &str, dir: &Path) -> BTreeMap<String, Vec<(i64, f32)>> {
    let script = "import sys, json\n\
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator\n\
ea = EventAccumulator(sys.argv[1], size_guidance={'scalars': 0})\n\
ea.Reload()\n\
print(json.dumps({t: [[e.step, e.value] for e in ea.Scalars(t)] for t in ea.Tags()['scalars']}))\n";
    let o = std::process::Command::new(py)
        .args(["-c", script])
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn a_training_run_writes_sb3_scalars_that_read_back_and_export_reproduces() {
    let (_tmp, paths) = common::temp_home();
    let cfg = common::tiny_config();
    let run = common::train(&paths, &cfg, "SYNA");
    let dir = paths.runs.join(&run);
    let files = event_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let live = scalars(&files[0]);
    for tag in [
        "rollout/ep_rew_mean",
        "train/approx_kl",
        "train/clip_fraction",
        "train/entropy_loss",
        "train/policy_gradient_loss",
        "train/value_loss",
        "train/explained_variance",
        "train/learning_rate",
        "time/fps",
        "eval/sharpe",
        "eval/max_drawdown",
        "eval/return",
    ] {
        assert!(live.contains_key(tag), "{tag} missing: {:?}", live.keys());
    }
    // x is env-steps: one point per update, at n_envs × n_steps apart.
    let steps: Vec<i64> = live["train/value_loss"].iter().map(|(s, _)| *s).collect();
    let per = (cfg.ppo.n_envs * cfg.ppo.n_steps) as i64;
    let want: Vec<i64> = (1..=steps.len() as i64).map(|u| u * per).collect();
    assert_eq!(steps, want);
    assert_eq!(
        live["eval/sharpe"].len(),
        steps.len() / cfg.ppo.validation_interval
    );

    // `export` writes the same points again from events.jsonl (replacing the file).
    let o = qd(&paths.home, &["export", &run]);
    assert!(o.status.success(), "{}", text(&o));
    let files = event_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let exported = scalars(&files[0]);
    assert_eq!(
        exported.keys().collect::<Vec<_>>(),
        live.keys().collect::<Vec<_>>()
    );
    for (tag, points) in &live {
        let steps_of = |p: &Vec<(i64, f32)>| p.iter().map(|(s, _)| *s).collect::<Vec<_>>();
        assert_eq!(steps_of(points), steps_of(&exported[tag]), "{tag}");
        if tag != "time/fps" {
            assert_eq!(points, &exported[tag], "{tag}");
        }
    }

    // A run from before the writer (no event file): `export --all --missing` writes its file
    // with the same points, and a second pass finds nothing left to write.
    std::fs::remove_file(&files[0]).unwrap();
    let o = qd(&paths.home, &["export", "--all", "--missing"]);
    assert!(
        o.status.success() && text(&o).contains(&run),
        "{}",
        text(&o)
    );
    let files = event_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(scalars(&files[0]), exported);
    let o = qd(&paths.home, &["export", "--all", "--missing"]);
    assert!(
        text(&o).contains("no training run to export"),
        "{}",
        text(&o)
    );

    if let Some(py) = tb_python() {
        assert_eq!(python_scalars(&py, &dir), exported);
    }
}

#[test]
fn a_restart_drops_the_superseded_points_for_tensorboards_reader_too() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = tfevents::Writer::create(tmp.path(), "").unwrap();
    let point = |step: i64, v: f32| tfevents::Event {
        wall_time: 1.7e9 + step as f64,
        step,
        what: tfevents::What::Scalars(vec![("train/value_loss".into(), v)]),
    };
    for s in 1..=10 {
        w.write(&point(s * 100, 1.0)).unwrap();
    }
    // Resumed from step 600: 700… are superseded, then written again.
    w.write(&tfevents::Event {
        wall_time: 1.8e9,
        step: 601,
        what: tfevents::What::SessionStart,
    })
    .unwrap();
    for s in 7..=8 {
        w.write(&point(s * 100, 2.0)).unwrap();
    }
    let want: Vec<(i64, f32)> = (1..=6)
        .map(|s| (s * 100, 1.0))
        .chain((7..=8).map(|s| (s * 100, 2.0)))
        .collect();
    assert_eq!(scalars(&w.path)["train/value_loss"], want);
    if let Some(py) = tb_python() {
        assert_eq!(python_scalars(&py, tmp.path())["train/value_loss"], want);
    }
}
