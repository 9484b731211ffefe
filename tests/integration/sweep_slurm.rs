//! Sweeps on a real Slurm cluster (`.ci/slurm-up` starts a single-node one): `sbatch --array`,
//! squeue only to tell queued from lost, scancel. In CI (`QUANTDECK_REQUIRE_SLURM=1`, set by
//! `.ci/run`) these must run; elsewhere, without `sbatch` on the PATH, they say loudly that they
//! were skipped.

use crate::sweep::{attempts, busy, check_resumed, has_state, state, states, Home};

fn slurm_here(test: &str) -> bool {
    if quantdeck::jobs::sweep::slurm::available() {
        return true;
    }
    if std::env::var_os("QUANTDECK_REQUIRE_SLURM").is_some() {
        panic!("{test}: sbatch is not on the PATH, and QUANTDECK_REQUIRE_SLURM is set (run .ci/slurm-up as root first)");
    }
    eprintln!(
        "\n****************************************************************\n\
         * SKIPPED {test}: no `sbatch` on the PATH.\n\
         * Start a single-node cluster with `sudo .ci/slurm-up` to run it.\n\
         ****************************************************************\n"
    );
    false
}

/// Slurm no longer runs or holds any task of job `job`.
fn queue_empty(job: &str) -> bool {
    let out = std::process::Command::new("squeue")
        .args(["-h", "-j", job, "-o", "%i %T"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

#[test]
fn slurm_sweep_cancels_then_resumes_only_what_remains_and_all_complete() {
    if !slurm_here("slurm_sweep_cancels_then_resumes_only_what_remains_and_all_complete") {
        return;
    }
    let h = Home::new();
    // Two short tasks, then two long ones, one at a time (%1).
    let out = h.ok(&[
        "sweep",
        "SYNA",
        "--seeds",
        "2",
        "--set",
        "ppo.total_timesteps=2048,102400",
        "--backend",
        "slurm",
        "--max-parallel",
        "1",
    ]);
    assert!(
        out.contains("submitted as Slurm job") && out.contains("array 0-3%1"),
        "{out}"
    );
    let before = h.wait_for("task 2 to save a training state", |s| {
        state(s, 2) == "running" && has_state(&h.path, s, 2)
    });
    let job = before["plan"]["submissions"][0]["via"]["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(before["tasks"][0]["slurm_job"], format!("{job}_0"));
    let out = h.ok(&["sweep", "cancel"]);
    assert!(out.contains(&format!("scancel {job}")), "{out}");
    let cancelled = h.wait_for("the tasks to stop", |s| !busy(s));
    assert_eq!(
        states(&cancelled),
        ["completed", "completed", "cancelled", "cancelled"],
        "{cancelled:#}"
    );
    // The stopped task's process ends a moment after recording its stop (COMPLETING).
    let t0 = std::time::Instant::now();
    while !queue_empty(&job) {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(300),
            "scancel left job {job} in the queue"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(attempts(&cancelled, 3), 0, "task 3 never started");

    let (code, out) = h.run(&["sweep", "resume", "--wait"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("resumed 2 task(s) (2, 3)"), "{out}");
    let after = h.status();
    let resubmitted = &after["plan"]["submissions"][1];
    assert_eq!(resubmitted["tasks"], serde_json::json!([2, 3]));
    assert_ne!(resubmitted["via"]["job_id"].as_str(), Some(job.as_str()));
    check_resumed(&h, &before, &after);
    assert_eq!(after["status"], "completed");
    // Each task's output is Slurm's file in the task's folder.
    let sweep = h.runs("sweep-").pop().unwrap();
    let out0 =
        std::fs::read_to_string(sweep.join("tasks/0").join(format!("slurm-{job}_0.out"))).unwrap();
    assert!(out0.contains("walk-forward: completed"), "{out0}");
}

#[test]
fn slurm_a_failing_task_shows_failed_with_its_exit_code() {
    if !slurm_here("slurm_a_failing_task_shows_failed_with_its_exit_code") {
        return;
    }
    let h = Home::new();
    // With 29.99 % of the bars for validation, none are left to walk forward on.
    let (code, out) = h.run(&[
        "sweep",
        "SYNA",
        "--seeds",
        "2",
        "--set",
        "data.validation_split=0.15,0.2999",
        "--stages",
        "train,walk-forward",
        "--backend",
        "slurm",
        "--wait",
    ]);
    assert_eq!(code, 1, "not every task completed: {out}");
    let s = h.status();
    assert_eq!(
        states(&s),
        ["completed", "completed", "failed", "failed"],
        "{s:#}"
    );
    for t in [2, 3] {
        let st = &s["tasks"][t]["state"];
        assert_eq!(st["stage"], "walk-forward");
        assert_eq!(st["exit_code"], 1);
        assert!(
            st["message"]
                .as_str()
                .unwrap()
                .contains("no stored SYNA bars"),
            "{st}"
        );
    }
    assert_eq!(s["status"], "failed");
    let text = h.ok(&["sweep", "status"]);
    assert!(text.contains("failed (walk-forward, exit 1)"), "{text}");
    let board = h.ok(&["sweep", "report"]);
    assert!(board.contains("failed (walk-forward, exit 1)"), "{board}");
}

#[test]
fn slurm_a_task_warned_of_its_time_limit_saves_and_resume_continues_its_training() {
    if !slurm_here("slurm_a_task_warned_of_its_time_limit_saves_and_resume_continues_its_training")
    {
        return;
    }
    let h = Home::new();
    h.ok(&[
        "sweep",
        "SYNA",
        "--set",
        "ppo.total_timesteps=409600",
        "--stages",
        "train,gate",
        "--backend",
        "slurm",
    ]);
    let before = h.wait_for("task 0 to save a training state", |s| {
        state(s, 0) == "running" && has_state(&h.path, s, 0)
    });
    let job = before["tasks"][0]["slurm_job"]
        .as_str()
        .unwrap()
        .to_string();
    // What `#SBATCH --signal=B:USR1@N` makes Slurm do N seconds before the limit, sent now.
    let o = std::process::Command::new("scancel")
        .args(["--signal=USR1", "--batch", &job])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stopped = h.wait_for("the task to stop", |s| !busy(s));
    assert_eq!(states(&stopped), ["timed_out"], "{stopped:#}");
    let (code, out) = h.run(&["sweep", "resume", "--time", "30", "--wait"]);
    assert_eq!(code, 0, "{out}");
    let after = h.status();
    assert_eq!(states(&after), ["completed"]);
    assert_eq!(attempts(&after, 0), 2);
    assert_eq!(after["plan"]["slurm"]["time"], "30");
    let run = crate::sweep::train_run(&before, 0).unwrap();
    assert_eq!(
        crate::sweep::train_run(&after, 0).as_deref(),
        Some(run.as_str())
    );
    let events =
        std::fs::read_to_string(h.path.join("runs").join(&run).join("events.jsonl")).unwrap();
    assert!(
        events.contains("\"type\":\"restart\""),
        "the training continued from its state"
    );
    assert_eq!(h.runs("train-").len(), 1);
}
