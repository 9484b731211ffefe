//! The Slurm backend: one `sbatch --parsable --array=…%W` per submission, whose array index is the
//! task index, each array task running `quantdeck sweep-task SWEEP $SLURM_ARRAY_TASK_ID`; `squeue`
//! only to tell a queued task from a lost one and to learn Slurm's own end states; `scancel` to
//! cancel. quantdeck shells out to these commands and never binds libslurm.

use super::record::{SlurmState, SweepPlan};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// `0-3,7,9-10%2`: the task indices as Slurm's `--array` list, with the throttle.
pub fn array_spec(tasks: &[usize], max_parallel: u32) -> String {
    let mut t: Vec<usize> = tasks.to_vec();
    t.sort_unstable();
    t.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let mut j = i;
        while j + 1 < t.len() && t[j + 1] == t[j] + 1 {
            j += 1;
        }
        parts.push(if j == i {
            t[i].to_string()
        } else {
            format!("{}-{}", t[i], t[j])
        });
        i = j + 1;
    }
    let mut s = parts.join(",");
    if max_parallel > 0 {
        s.push_str(&format!("%{max_parallel}"));
    }
    s
}

/// The indices an `--array` list names (the inverse of [`array_spec`]).
pub fn parse_array_spec(spec: &str) -> Option<Vec<usize>> {
    let list = spec.split('%').next()?;
    let mut out = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// A string as one single-quoted shell word.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The batch script of a sweep: the `#SBATCH` lines from `[slurm]`, the setup lines, then the task.
pub fn script(plan: &SweepPlan, sweep_dir: &Path, home: &Path) -> String {
    let s = &plan.slurm;
    let mut out = vec!["#!/bin/bash".to_string()];
    let mut sb = |k: &str, v: &str| {
        if !v.is_empty() {
            out.push(format!("#SBATCH --{k}={v}"));
        }
    };
    let name: String = format!("qd-{}", plan.id).chars().take(64).collect();
    sb("job-name", &name);
    let output = sweep_dir.join("tasks").join("%a").join("slurm-%A_%a.out");
    sb("output", &output.display().to_string());
    sb("partition", &s.partition);
    sb("account", &s.account);
    sb("time", &s.time);
    sb("mem", &s.mem);
    sb("cpus-per-task", &s.cpus_per_task.to_string());
    sb("gres", &s.gres);
    let grace = warning_seconds(&s.time, s.signal_grace_s);
    if grace > 0 {
        sb("signal", &format!("B:USR1@{grace}"));
    }
    out.extend(s.extra.iter().cloned());
    out.push(String::new());
    out.push(
        "# Written by `quantdeck sweep`: one array task per sweep task (array index = task index)."
            .into(),
    );
    out.push(format!(
        "export QUANTDECK_HOME={}",
        shell_quote(&home.display().to_string())
    ));
    // The matrix products' threads: the CPUs Slurm gave the task, not the node's.
    out.push(format!(
        "export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-{}}}\"",
        s.cpus_per_task
    ));
    out.extend(s.setup.iter().cloned());
    // exec: the task is the batch shell, so Slurm's USR1 warning and scancel's TERM reach it.
    out.push(format!(
        "exec {} --home {} sweep-task {} \"$SLURM_ARRAY_TASK_ID\"",
        shell_quote(&plan.binary),
        shell_quote(&home.display().to_string()),
        shell_quote(&plan.id)
    ));
    out.push(String::new());
    out.join("\n")
}

/// The warning's lead time: the configured grace, at most half the time limit (Slurm signals
/// within a minute of the asked time, so a short limit needs a proportionate warning).
pub fn warning_seconds(time: &str, grace: u32) -> u32 {
    match crate::config::sweep::parse_time_limit(time) {
        Some(limit) => grace.min((limit / 2).min(u32::MAX as u64) as u32),
        None => grace,
    }
}

/// Submits `tasks` as one array job; returns Slurm's job id. The script is kept beside the plan.
pub fn submit(
    plan: &SweepPlan,
    sweep_dir: &Path,
    home: &Path,
    tasks: &[usize],
    n: usize,
) -> Result<String> {
    let path = sweep_dir.join("slurm").join(format!("submit-{n}.sh"));
    crate::paths::write_atomic(&path, script(plan, sweep_dir, home).as_bytes())?;
    let spec = array_spec(tasks, plan.slurm.max_parallel);
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(format!("--array={spec}"))
        .arg(&path)
        .output()
        .context("cannot run sbatch (is Slurm installed and on the PATH?)")?;
    if !out.status.success() {
        bail!(
            "sbatch refused the sweep ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_job_id(&String::from_utf8_lossy(&out.stdout)).ok_or_else(|| {
        anyhow!(
            "sbatch printed no job id: {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `--parsable` prints `jobid` or `jobid;cluster`.
pub fn parse_job_id(stdout: &str) -> Option<String> {
    let id = stdout.trim().split(';').next()?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

/// What Slurm knows of these array jobs' tasks: (array job, task index) → (state, reason).
/// `None` when `squeue` could not be asked (not installed, controller down).
pub type Queue = BTreeMap<(String, usize), (SlurmState, String)>;

pub fn query(job_ids: &[String]) -> Option<Queue> {
    if job_ids.is_empty() {
        return Some(Queue::new());
    }
    let out = Command::new("squeue")
        .args(["-h", "-r", "--states=all", "-o", "%F|%K|%T|%r", "-j"])
        .arg(job_ids.join(","))
        .output()
        .ok()?;
    if out.status.success() {
        return Some(parse_squeue(&String::from_utf8_lossy(&out.stdout)));
    }
    // Every id unknown: Slurm has forgotten them (MinJobAge) — an answer, not a failure.
    let err = String::from_utf8_lossy(&out.stderr);
    err.contains("Invalid job id").then(Queue::new)
}

/// Parses `squeue -h -r -o "%F|%K|%T|%r"` lines; lines that are not an array task are skipped.
pub fn parse_squeue(text: &str) -> Queue {
    let mut q = Queue::new();
    for line in text.lines() {
        let f: Vec<&str> = line.trim().splitn(4, '|').collect();
        if let [job, task, state, reason] = f.as_slice() {
            if let Ok(t) = task.trim().parse::<usize>() {
                q.insert(
                    (job.trim().to_string(), t),
                    (SlurmState::parse(state), reason.trim().to_string()),
                );
            }
        }
    }
    q
}

/// `scancel` the sweep's jobs.
pub fn cancel(job_ids: &[String]) -> Result<()> {
    if job_ids.is_empty() {
        return Ok(());
    }
    let out = Command::new("scancel")
        .args(job_ids)
        .output()
        .context("cannot run scancel (is Slurm on the PATH?)")?;
    if !out.status.success() {
        bail!(
            "scancel {}: {}",
            job_ids.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether `sbatch` is on the PATH.
pub fn available() -> bool {
    Command::new("sbatch")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn array_lists_round_trip_and_compress_runs() {
        assert_eq!(array_spec(&[0, 1, 2, 3], 0), "0-3");
        assert_eq!(array_spec(&[3, 0, 1, 7, 9, 10], 2), "0-1,3,7,9-10%2");
        let mut rng = Rng::new(9);
        for _ in 0..500 {
            let mut t: Vec<usize> = (0..1 + rng.below(30)).map(|_| rng.below(60)).collect();
            let spec = array_spec(&t, rng.below(3) as u32);
            t.sort_unstable();
            t.dedup();
            assert_eq!(parse_array_spec(&spec).unwrap(), t, "{spec}");
            assert!(spec.split('%').next().unwrap().split(',').count() <= t.len());
        }
    }

    #[test]
    fn squeue_lines_become_states_per_task() {
        let q = parse_squeue(
            "12|0|COMPLETED|None\n12|3|PENDING|JobArrayTaskLimit\n12|5|OUT_OF_MEMORY|None\n13|N/A|RUNNING|None\n",
        );
        assert_eq!(q.len(), 3);
        assert_eq!(q[&("12".into(), 3)].0, SlurmState::Pending);
        assert_eq!(q[&("12".into(), 3)].1, "JobArrayTaskLimit");
        assert_eq!(q[&("12".into(), 5)].0, SlurmState::OutOfMemory);
        assert_eq!(parse_job_id("4242\n"), Some("4242".into()));
        assert_eq!(parse_job_id("4242;cluster\n"), Some("4242".into()));
        assert_eq!(parse_job_id("error"), None);
    }

    #[test]
    fn the_script_runs_the_task_with_the_settings() {
        let plan = SweepPlan {
            format: 1,
            id: "sweep-x".into(),
            created: chrono::Utc::now(),
            grid: super::super::record::Grid {
                symbols: vec![],
                seeds: vec![],
                modes: vec![],
                set: vec![],
            },
            stages: vec![],
            backend: crate::config::BackendKind::Slurm,
            workers: 1,
            slurm: crate::config::SlurmConfig {
                partition: "gpu".into(),
                time: "10".into(),
                gres: "gpu:1".into(),
                extra: vec!["#SBATCH --exclusive".into()],
                setup: vec!["module load cuda".into()],
                ..Default::default()
            },
            configs: Default::default(),
            binary: "/opt/it's/quantdeck".into(),
            submissions: vec![],
            cancelled: None,
        };
        let s = script(
            &plan,
            Path::new("/shared/runs/sweep-x"),
            Path::new("/shared"),
        );
        for want in [
            "#SBATCH --partition=gpu",
            "#SBATCH --time=10",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --signal=B:USR1@120",
            "#SBATCH --exclusive",
            "#SBATCH --output=/shared/runs/sweep-x/tasks/%a/slurm-%A_%a.out",
            "module load cuda",
            "exec '/opt/it'\\''s/quantdeck' --home '/shared' sweep-task 'sweep-x' \"$SLURM_ARRAY_TASK_ID\"",
        ] {
            assert!(s.contains(want), "missing {want:?} in\n{s}");
        }
        assert!(!s.contains("--account") && !s.contains("--mem"), "{s}");
        let mut plan = plan;
        plan.slurm.account = "rl".into();
        plan.slurm.mem = "4G".into();
        plan.slurm.cpus_per_task = 8;
        let s = script(&plan, Path::new("/s/runs/sweep-x"), Path::new("/s"));
        for want in [
            "#SBATCH --account=rl",
            "#SBATCH --mem=4G",
            "#SBATCH --cpus-per-task=8",
            "RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-8}\"",
        ] {
            assert!(s.contains(want), "missing {want:?} in\n{s}");
        }
        // A 10-minute limit: the warning comes at most half-way.
        assert_eq!(warning_seconds("10", 900), 300);
        assert_eq!(warning_seconds("", 120), 120);
    }
}
