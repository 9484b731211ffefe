use super::*;
use crate::jobs::JobStatus;
use crate::rng::Rng;
use chrono::Duration;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-05T10:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap()
}

fn rec(at: DateTime<Utc>, entry: TaskEntry) -> TaskRecord {
    TaskRecord { at, entry }
}

fn attempt(n: u32) -> TaskEntry {
    TaskEntry::Attempt {
        attempt: n,
        host: "node1".into(),
        pid: 100 + n,
        slurm_job: None,
    }
}

fn facts<'a>(records: &'a [TaskRecord], now: DateTime<Utc>) -> TaskFacts<'a> {
    TaskFacts {
        records,
        beat: None,
        beat_alive: None,
        backend: BackendKind::Slurm,
        submitted: Some(t0()),
        sched: SchedView::NotAsked,
        cancelled: None,
        now,
    }
}

/// A random log: attempts, stages and ends in a plausible order, one second apart.
fn random_log(rng: &mut Rng) -> Vec<TaskRecord> {
    let mut out = Vec::new();
    let mut at = t0() + Duration::seconds(1);
    let mut n = 0;
    for _ in 0..rng.below(4) {
        n += 1;
        out.push(rec(at, attempt(n)));
        for stage in Stage::ALL.into_iter().take(rng.below(4)) {
            at += Duration::seconds(1);
            let run = format!("{}-{}", stage.as_str(), rng.below(3));
            out.push(rec(
                at,
                TaskEntry::StageStarted {
                    stage,
                    run: run.clone(),
                },
            ));
            if rng.below(3) > 0 {
                let outcome = [
                    StageOutcome::Completed,
                    StageOutcome::Cancelled,
                    StageOutcome::Failed,
                ][rng.below(3)];
                out.push(rec(
                    at,
                    TaskEntry::StageDone {
                        stage,
                        run,
                        outcome,
                    },
                ));
            }
        }
        if rng.below(2) == 0 {
            let outcome = match rng.below(4) {
                0 => TaskOutcome::Completed,
                1 => TaskOutcome::Failed {
                    stage: Stage::Gate,
                    exit_code: 1,
                    message: "x".into(),
                },
                2 => TaskOutcome::Stopped {
                    signal: StopCause::TimeLimit,
                },
                _ => TaskOutcome::Stopped {
                    signal: StopCause::Terminated,
                },
            };
            out.push(rec(at, TaskEntry::Finished { outcome }));
        }
        at += Duration::seconds(1);
    }
    out
}

fn random_facts<'a>(rng: &mut Rng, records: &'a [TaskRecord], beat: &'a Beat) -> TaskFacts<'a> {
    let scheds = [
        SchedView::NotAsked,
        SchedView::Absent,
        SchedView::Seen(SlurmState::Pending),
        SchedView::Seen(SlurmState::Running),
        SchedView::Seen(SlurmState::Timeout),
        SchedView::Seen(SlurmState::OutOfMemory),
        SchedView::Seen(SlurmState::Cancelled),
        SchedView::Seen(SlurmState::Completed),
    ];
    TaskFacts {
        records,
        beat: (rng.below(2) == 0).then_some(beat),
        beat_alive: [None, Some(true), Some(false)][rng.below(3)],
        backend: [BackendKind::Local, BackendKind::Slurm][rng.below(2)],
        submitted: [None, Some(t0()), Some(t0() + Duration::seconds(30))][rng.below(3)],
        sched: scheds[rng.below(scheds.len())],
        cancelled: [None, Some(t0() + Duration::seconds(40))][rng.below(2)],
        now: t0() + Duration::seconds(rng.below(400) as i64),
    }
}

#[test]
fn a_completed_task_stays_completed_whatever_else_is_on_disk() {
    let mut rng = Rng::new(11);
    let beat = Beat {
        at: t0() + Duration::seconds(20),
        host: "node1".into(),
        pid: 1,
        attempt: 1,
        stage: Some(Stage::Train),
    };
    let mut seen = 0;
    for _ in 0..3000 {
        let log = random_log(&mut rng);
        let f = random_facts(&mut rng, &log, &beat);
        let state = fold(&f);
        let completed = log.iter().any(|r| {
            matches!(
                &r.entry,
                TaskEntry::Finished {
                    outcome: TaskOutcome::Completed
                }
            )
        });
        if completed {
            seen += 1;
            assert_eq!(state, TaskState::Completed, "{log:#?}");
        } else {
            assert_ne!(state, TaskState::Completed, "{log:#?}");
        }
        // Never both finished and waiting to run; a completed task never needs a run.
        assert!(!(state == TaskState::Completed && state.needs_run()));
        assert_eq!(state.needs_run(), !state.is_live() && !completed);
    }
    assert!(
        seen > 100,
        "the generator made too few completed logs ({seen})"
    );
}

#[test]
fn the_newest_attempts_end_decides_and_a_live_task_is_never_restarted() {
    let mut rng = Rng::new(5);
    let beat = Beat {
        at: t0() + Duration::seconds(20),
        host: "node1".into(),
        pid: 1,
        attempt: 1,
        stage: None,
    };
    for _ in 0..3000 {
        let log = random_log(&mut rng);
        let f = random_facts(&mut rng, &log, &beat);
        let state = fold(&f);
        let h = history(&log);
        let started_after_submit = match (f.submitted, h.last_attempt) {
            (Some(s), Some(a)) => a >= s,
            (None, Some(_)) => true,
            _ => false,
        };
        if !h.completed && started_after_submit {
            match &h.outcome {
                Some(TaskOutcome::Failed { exit_code, .. }) => {
                    assert!(
                        matches!(state, TaskState::Failed { exit_code: c, .. } if c == *exit_code)
                    )
                }
                Some(TaskOutcome::Stopped {
                    signal: StopCause::TimeLimit,
                }) => assert_eq!(state, TaskState::TimedOut),
                Some(_) => assert!(!state.is_live(), "{state:?}"),
                None => {}
            }
        }
        if state.is_live() {
            assert!(!state.needs_run());
        }
    }
}

#[test]
fn heartbeats_tell_running_from_lost_and_squeue_tells_queued_from_lost() {
    let start = t0() + Duration::seconds(5);
    let log = vec![
        rec(start, attempt(1)),
        rec(
            start,
            TaskEntry::StageStarted {
                stage: Stage::Train,
                run: "train-x".into(),
            },
        ),
    ];
    let beat = |secs: i64| Beat {
        at: start + Duration::seconds(secs),
        host: "node1".into(),
        pid: 101,
        attempt: 1,
        stage: Some(Stage::Train),
    };
    let later = start + Duration::seconds(300);
    let b = beat(290);
    let mut f = facts(&log, later);
    f.beat = Some(&b);
    assert!(matches!(
        fold(&f),
        TaskState::Running {
            stage: Some(Stage::Train),
            attempt: 1,
            ..
        }
    ));
    // The same beat on this host from a dead process: not running.
    f.beat_alive = Some(false);
    assert_eq!(fold(&f), TaskState::Lost);
    // A stale beat: lost unless the scheduler still runs it or says how it ended.
    let old = beat(10);
    let mut f = facts(&log, later);
    f.beat = Some(&old);
    assert_eq!(fold(&f), TaskState::Lost);
    f.sched = SchedView::Seen(SlurmState::Running);
    assert!(matches!(fold(&f), TaskState::Running { .. }));
    f.sched = SchedView::Seen(SlurmState::Timeout);
    assert_eq!(fold(&f), TaskState::TimedOut);
    f.sched = SchedView::Seen(SlurmState::NodeFail);
    assert_eq!(
        fold(&f),
        TaskState::Scheduler {
            slurm: SlurmState::NodeFail
        }
    );

    // Submitted and never started: queued while Slurm holds it, lost when it does not know it.
    let none: Vec<TaskRecord> = Vec::new();
    let mut f = facts(&none, later);
    assert_eq!(fold(&f), TaskState::Queued);
    f.sched = SchedView::Seen(SlurmState::Pending);
    assert_eq!(fold(&f), TaskState::Queued);
    f.sched = SchedView::Absent;
    assert_eq!(fold(&f), TaskState::Lost);
    f.sched = SchedView::Seen(SlurmState::Cancelled);
    assert_eq!(fold(&f), TaskState::Cancelled);
    f.cancelled = Some(later);
    f.sched = SchedView::Absent;
    assert_eq!(fold(&f), TaskState::Cancelled);
    f.backend = BackendKind::Local;
    f.cancelled = None;
    assert_eq!(fold(&f), TaskState::Pending);
}

#[test]
fn history_keeps_the_runs_and_what_completed_on_the_current_training_run() {
    let at = t0();
    let started = |stage, run: &str| {
        rec(
            at,
            TaskEntry::StageStarted {
                stage,
                run: run.into(),
            },
        )
    };
    let done = |stage, run: &str| {
        rec(
            at,
            TaskEntry::StageDone {
                stage,
                run: run.into(),
                outcome: StageOutcome::Completed,
            },
        )
    };
    let log = vec![
        rec(at, attempt(1)),
        started(Stage::Train, "train-a"),
        done(Stage::Train, "train-a"),
        started(Stage::Gate, "gate-a"),
        done(Stage::Gate, "gate-a"),
        rec(
            at,
            TaskEntry::Finished {
                outcome: TaskOutcome::Stopped {
                    signal: StopCause::Terminated,
                },
            },
        ),
        rec(at, attempt(2)),
        started(Stage::WalkForward, "wf-a"),
    ];
    let h = history(&log);
    assert_eq!(h.attempts, 2);
    assert_eq!(h.done, [Stage::Train, Stage::Gate]);
    assert_eq!(h.runs[&Stage::WalkForward], "wf-a");
    assert_eq!(h.stage, Some(Stage::WalkForward));
    assert_eq!(h.outcome, None);
    // A new training run: its gate is to do again.
    let mut log2 = log.clone();
    log2.push(started(Stage::Train, "train-b"));
    assert!(history(&log2).done.is_empty());
}

#[test]
fn the_sweep_is_running_until_every_task_ended() {
    use TaskState::*;
    let failed = Failed {
        stage: Stage::Train,
        exit_code: 1,
        message: String::new(),
    };
    assert_eq!(
        sweep_status(&[Completed, Queued], false),
        JobStatus::Running
    );
    assert_eq!(
        sweep_status(&[Completed, Pending], false),
        JobStatus::Running
    );
    assert_eq!(
        sweep_status(&[Completed, Completed], false),
        JobStatus::Completed
    );
    assert_eq!(
        sweep_status(&[Completed, failed.clone()], false),
        JobStatus::Failed
    );
    assert_eq!(
        sweep_status(&[Completed, Cancelled, Pending], true),
        JobStatus::Cancelled
    );
    assert_eq!(
        tally(&[Completed, Completed, failed, Lost]),
        "4 tasks: 2 completed, 1 failed, 1 lost"
    );
}
