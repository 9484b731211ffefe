//! The GPU-host script (`benches/gpu_host.py`) and `quantdeck device`, run on the CPU: no GPU is
//! lent to CI, so the script's plumbing — the device check, training at a mode's shape, reading
//! throughput and sizing back, the report — is kept working here with `--device cpu`.

use std::process::Command;

fn python() -> &'static str {
    // `.ci/run` installs python3 (the CUDA lint needs it too).
    "python3"
}

#[test]
fn the_device_check_passes_on_the_cpu_and_refuses_cuda_in_one_line() {
    let home = tempfile::tempdir().unwrap();
    let out = super::common::qd(home.path(), &["device", "--device", "cpu"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(text.matches(" ok\n").count(), 4, "{text}");
    assert!(text.contains("all within tolerance"), "{text}");
    // The CPU build has no CUDA: one line saying what to do, no backtrace.
    let out = super::common::qd(home.path(), &["device", "--device", "cuda"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--features cuda"), "{err}");
}

#[test]
fn the_gpu_host_script_trains_and_reports_on_a_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("gpu-host.json");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/gpu_host.py");
    let out = Command::new(python())
        .arg(script)
        .args(["--quantdeck", env!("CARGO_BIN_EXE_quantdeck")])
        .args([
            "--device",
            "cpu",
            "--shapes",
            "quick_test",
            "--precisions",
            "f32",
        ])
        .args(["--iterations", "2", "--timeout", "600"])
        .arg("--out")
        .arg(&out_file)
        .env_remove("QUANTDECK_HOME")
        .output()
        .expect("python3 runs (CI installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    assert_eq!(report["device_check"]["ok"], true, "{report}");
    let run = &report["runs"][0];
    assert_eq!(run["shape"], "quick_test");
    let q = &run["quantdeck"];
    assert_eq!(q["ok"], true, "{report}");
    assert!(q["env_steps_per_s"].as_f64().unwrap() > 0.0, "{report}");
    assert_eq!(q["updates_sps"].as_array().unwrap().len(), 2, "{report}");
    // What the PyTorch reference is given: the run's own sizes and layout.
    assert_eq!(q["sizing"]["n_envs"], 64, "{report}");
    assert_eq!(
        q["sizing"]["hidden"],
        serde_json::json!([128, 64]),
        "{report}"
    );
    assert_eq!(q["features"], 58, "{report}");
    let window = quantdeck::config::load(Some("quick_test"), None)
        .unwrap()
        .features
        .window;
    assert_eq!(q["window"], window, "{report}");
    let md = std::fs::read_to_string(out_file.with_extension("md")).unwrap();
    assert!(
        md.contains("| quick_test | f32 | 64×128, mb 1024, [128, 64] |"),
        "{md}"
    );
}
