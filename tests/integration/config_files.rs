//! Config files as users write them (issue 15), in the manner of bottom's `tests/invalid_configs`:
//! every fixture in `invalid_configs/` must be refused with its own file name and every message
//! its `# expect:` lines give (the line, the field, the reason); every one in `valid_configs/`
//! must load as written. A fixture that loads, or an error that misses an expectation, fails.

use crate::common::{qd, text};
use quantdeck::config;
use std::path::{Path, PathBuf};

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/integration")
        .join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixture folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

/// The `# expect: …` lines of a fixture.
fn expectations(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("fixture")
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_invalid_config_is_refused_with_file_line_field_and_reason() {
    let files = fixtures("invalid_configs");
    assert!(files.len() >= 50, "{} fixtures", files.len());
    let mut wrong = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let expect = expectations(f);
        assert!(!expect.is_empty(), "{name} has no # expect: line");
        let msg = match config::load(None, Some(f)) {
            Ok(_) => {
                wrong.push(format!("{name}: accepted"));
                continue;
            }
            Err(e) => format!("{e:#}"),
        };
        let missing: Vec<&String> = expect
            .iter()
            .filter(|e| !msg.contains(e.as_str()))
            .collect();
        if !msg.contains(&name) || !missing.is_empty() || msg.len() > 2000 {
            wrong.push(format!("{name}: missing {missing:?} in\n{msg}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn valid_configs_load_as_written() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/valid_configs");
    for f in fixtures("valid_configs") {
        config::load(None, Some(&f)).unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
    }
    // `mode` in a --config file is honoured: the mode's layer applies under the file, and the
    // run records it.
    let cfg = config::load(None, Some(&dir.join("mode_in_file_is_honoured.toml"))).unwrap();
    let production = config::load(Some("production"), None).unwrap();
    assert_eq!(cfg.mode, "production");
    assert_eq!(cfg.ppo.hidden_dims, production.ppo.hidden_dims);
    assert_eq!(cfg.ppo.device, "cpu");
    // Dates compare as dates, and are kept in one spelling.
    let cfg = config::load(None, Some(&dir.join("dates_as_dates.toml"))).unwrap();
    assert_eq!(
        (cfg.data.start.as_str(), cfg.data.end.as_str()),
        ("2024-02-01", "2024-09-30")
    );
    // A full dump (as the TUI hands the paper daemon) with an empty mode names none.
    let cfg = config::load(None, Some(&dir.join("full_dump_with_empty_mode.toml"))).unwrap();
    assert_eq!(cfg.mode, "");
    assert_eq!(cfg.live.cooldown_s, u64::MAX >> 1);
}

/// The learning bench's `--config` files reproduce the README's tables: each must still load,
/// and each measured before a default changed must pin the setting it was measured with.
#[test]
fn the_learning_bench_configs_load_and_pin_what_they_were_measured_with() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/learning-configs");
    let mut n = 0;
    for f in std::fs::read_dir(&dir)
        .expect("benches/learning-configs")
        .flatten()
    {
        let path = f.path();
        let cfg = config::load(Some("quick_test"), Some(&path))
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // Each file says which ramp it was measured with, so a later default cannot move it.
        let ramp: f64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("cost_ramp = "))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} must pin env.cost_ramp"));
        assert_eq!(cfg.env.cost_ramp, ramp, "{name}: measured with ramp {ramp}");
        // And its observation window (32 before the window ablation, 2 after).
        let window: usize = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("window = "))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} must pin features.window"));
        assert_eq!(
            cfg.features.window, window,
            "{name}: measured with window {window}"
        );
        if !text.contains("exits = \"as_traded\"") && name != "env_random_start.toml" {
            assert_eq!(
                cfg.env.exits,
                config::EnvExits::None,
                "{name}: measured without exits"
            );
        }
        n += 1;
    }
    assert!(n >= 10, "{n} configs");
}

#[test]
fn a_mode_in_the_file_must_agree_with_the_flag() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/valid_configs");
    let f = dir.join("mode_in_file_is_honoured.toml");
    let e = format!(
        "{:#}",
        config::load(Some("standard"), Some(&f)).unwrap_err()
    );
    assert!(
        e.contains("mode_in_file_is_honoured.toml, line 1") && e.contains("--mode standard"),
        "{e}"
    );
    assert!(config::load(Some("production"), Some(&f)).is_ok());
}

/// A 10 MB bad value was echoed as 31 MB of stderr: now the file is refused unread, and a
/// large value inside the limit is clipped wherever it would be shown.
#[test]
fn a_huge_value_is_never_echoed() {
    let home = tempfile::tempdir().unwrap();
    let big = home.path().join("big.toml");
    std::fs::write(
        &big,
        format!("[data]\nfeed = \"{}\"\n", "x".repeat(10_000_000)),
    )
    .unwrap();
    let o = qd(home.path(), &["--config", big.to_str().unwrap(), "runs"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stderr.len() < 1000, "{} bytes", o.stderr.len());
    assert!(
        text(&o).contains("big.toml is 10000017 bytes"),
        "{}",
        text(&o)
    );
    std::fs::write(
        &big,
        format!("[ppo]\ndevice = \"{}\"\n", "y".repeat(900_000)),
    )
    .unwrap();
    let o = qd(home.path(), &["--config", big.to_str().unwrap(), "runs"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stderr.len() < 2000, "{} bytes", o.stderr.len());
    assert!(
        text(&o).contains("line 2") && text(&o).contains("device"),
        "{}",
        text(&o)
    );
}
