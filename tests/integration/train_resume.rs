//! Resume: a run stopped half-way and resumed from its training state gives the same per-update
//! metrics, bit for bit, as the run made in one go (the optimizers' moments, the update counter,
//! the random streams and the env all continue); through the job, in the same run directory,
//! with one continuous event stream and one continuous run in the TUI; from an earlier
//! checkpoint, with the later branch moved aside; and a different network is refused.

use crate::common;
use candle_core::Device;
use quantdeck::config::{Config, RewardKind};
use quantdeck::engine::ppo::{self, CheckpointReason, TrainNote, UpdateMetrics};
use quantdeck::engine::{checkpoint, HostPolicy, TrainData, TrainObserver};
use quantdeck::jobs::events::RestartReason;
use quantdeck::jobs::{self, CancelToken, Event, EventRecord, JobRequest, JobStatus, RunDir};
use quantdeck::market::Symbol;
use quantdeck::tui::App;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Records what training reports; stops after `stop_after` updates when set. Its validation
/// score is the policy's value of a fixed observation: any change of the weights shows in it.
struct Recorder {
    updates: Vec<UpdateMetrics>,
    scores: Vec<(usize, f64)>,
    stop_after: Option<usize>,
    obs: Vec<f32>,
}

impl Recorder {
    fn new(obs_dim: usize, stop_after: Option<usize>) -> Self {
        Recorder {
            updates: Vec::new(),
            scores: Vec::new(),
            stop_after,
            obs: (0..obs_dim).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect(),
        }
    }
}

impl TrainObserver for Recorder {
    fn on_update(&mut self, m: &UpdateMetrics) {
        self.updates.push(m.clone());
    }
    fn validate(&mut self, update: usize, policy: &HostPolicy) -> anyhow::Result<Option<f64>> {
        let (_, v) = policy.evaluate(&self.obs);
        self.scores.push((update, v as f64));
        Ok(Some(v as f64))
    }
    fn on_checkpoint(&mut self, _: &Path, _: usize, _: CheckpointReason) {}
    fn should_stop(&self) -> bool {
        self.stop_after.is_some_and(|n| self.updates.len() >= n)
    }
}

/// The metrics that depend on training alone (not on the clock).
fn timeless(m: &UpdateMetrics) -> UpdateMetrics {
    UpdateMetrics {
        sps: 0.0,
        elapsed_s: 0.0,
        ..m.clone()
    }
}

fn config(reward: RewardKind) -> Config {
    let mut cfg = common::tiny_config();
    cfg.ppo.total_timesteps = 6 * 16 * 32;
    cfg.ppo.validation_interval = 2;
    cfg.env.reward = reward;
    cfg
}

fn weights(path: &Path) -> Vec<(String, Vec<f32>)> {
    let (model, _) = checkpoint::load_model(path, &Device::Cpu).expect("model");
    model
        .named_tensors()
        .into_iter()
        .map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

#[test]
fn stopped_and_resumed_training_equals_one_straight_run_bit_for_bit() {
    for reward in [RewardKind::Pnl, RewardKind::Seed] {
        let cfg = config(reward);
        let data: TrainData = common::train_data(&cfg, Symbol::equity("SYNA"));
        let obs_dim = data.spec.obs_dim();
        let dev = Device::Cpu;

        let straight_dir = tempfile::tempdir().unwrap();
        let mut straight = Recorder::new(obs_dim, None);
        let out = ppo::train(&cfg, &data, &dev, straight_dir.path(), &mut straight).unwrap();
        assert_eq!(out.updates_done, 6);

        let split_dir = tempfile::tempdir().unwrap();
        let mut first = Recorder::new(obs_dim, Some(3));
        let out = ppo::train(&cfg, &data, &dev, split_dir.path(), &mut first).unwrap();
        assert!(out.cancelled && out.updates_done == 3);
        let state = split_dir.path().join("state/update_00003.safetensors");
        assert!(state.is_file(), "a stopped run leaves its state");
        let mut second = Recorder::new(obs_dim, None);
        let out = ppo::resume(&cfg, &data, &dev, split_dir.path(), &mut second, &state).unwrap();
        assert_eq!((out.resumed_from, out.updates_done), (Some(3), 6));

        let joined: Vec<UpdateMetrics> = first
            .updates
            .iter()
            .chain(&second.updates)
            .map(timeless)
            .collect();
        let want: Vec<UpdateMetrics> = straight.updates.iter().map(timeless).collect();
        assert_eq!(joined.len(), 6);
        for (a, b) in joined.iter().zip(&want) {
            assert_eq!(a, b, "{reward:?}: update {} differs", b.update);
        }
        if reward == RewardKind::Seed {
            assert!(want.iter().all(|m| m.reward_parts.len() == 8));
        }
        // Elapsed time continues from where the first part stopped.
        assert!(second.updates[0].elapsed_s >= first.updates[2].elapsed_s);
        let scores: Vec<_> = first.scores.iter().chain(&second.scores).collect();
        assert_eq!(scores, straight.scores.iter().collect::<Vec<_>>());
        assert_eq!(
            weights(&split_dir.path().join("model.safetensors")),
            weights(&straight_dir.path().join("model.safetensors")),
            "{reward:?}: the final models differ"
        );
    }
}

fn run_job(
    paths: &quantdeck::paths::Paths,
    cfg: &Config,
    req: JobRequest,
    cancel_after: Option<usize>,
) -> anyhow::Result<String> {
    let cancel = CancelToken::new();
    let token = cancel.clone();
    let observer = move |rec: &EventRecord| {
        if let Event::Update(m) = &rec.event {
            if cancel_after.is_some_and(|n| m.update >= n) {
                token.cancel();
            }
        }
    };
    jobs::run_job(paths, cfg, &req, &cancel, Some(Box::new(observer)))
}

fn events(paths: &quantdeck::paths::Paths, id: &str) -> Vec<EventRecord> {
    let text = std::fs::read_to_string(paths.runs.join(id).join("events.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The run as the TUI folds its events file.
fn as_tui_sees_it(paths: &quantdeck::paths::Paths, id: &str) -> App {
    let mut app = App::new();
    for rec in events(paths, id) {
        quantdeck::tui::apply_event(&mut app, &rec);
    }
    app
}

fn update_metrics(app: &App, id: &str) -> Vec<UpdateMetrics> {
    app.runs[id].updates.iter().map(timeless).collect()
}

#[test]
fn a_resumed_job_continues_in_its_run_directory_as_one_run() {
    let cfg = config(RewardKind::Pnl);
    let (_h1, straight_home) = common::temp_home();
    let straight = run_job(
        &straight_home,
        &cfg,
        JobRequest::Train {
            symbol: "SYNA".into(),
            group: None,
        },
        None,
    )
    .unwrap();
    let want = update_metrics(&as_tui_sees_it(&straight_home, &straight), &straight);
    assert_eq!(want.len(), 6);

    let (_h2, paths) = common::temp_home();
    let id = run_job(
        &paths,
        &cfg,
        JobRequest::Train {
            symbol: "SYNA".into(),
            group: None,
        },
        Some(3),
    )
    .unwrap();
    let m = RunDir::open(&paths, &id).unwrap().read_manifest().unwrap();
    assert_eq!(m.status, JobStatus::Cancelled);

    // `latest` finds the cancelled run and its newest state; a different (explicitly given)
    // network is refused, naming both layouts, before anything changes.
    let mut other = cfg.clone();
    other.ppo.hidden_dims = vec![64];
    let err = run_job(
        &paths,
        &cfg,
        JobRequest::ResumeTrain {
            run: Some("latest".into()),
            checkpoint: None,
            device: None,
            expect: Some(Box::new(other)),
        },
        None,
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("mlp [32, 16]") && msg.contains("mlp [64]") && msg.contains(&id),
        "{msg}"
    );
    assert_eq!(
        RunDir::open(&paths, &id)
            .unwrap()
            .read_manifest()
            .unwrap()
            .status,
        JobStatus::Cancelled
    );

    let resumed = run_job(
        &paths,
        &cfg,
        JobRequest::ResumeTrain {
            run: Some("latest".into()),
            checkpoint: None,
            device: None,
            expect: Some(Box::new(cfg.clone())),
        },
        None,
    )
    .unwrap();
    assert_eq!(resumed, id, "the same run continues");
    let m = RunDir::open(&paths, &id).unwrap().read_manifest().unwrap();
    assert_eq!(m.status, JobStatus::Completed);
    assert!(m.message.contains("resumed from update 3"), "{}", m.message);

    let ev = events(&paths, &id);
    assert!(
        ev.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "one gap-free stream across the resume"
    );
    let restarts: Vec<_> = ev
        .iter()
        .filter_map(|e| match &e.event {
            Event::Restart {
                from_update,
                reason: RestartReason::Resume { checkpoint },
            } => Some((*from_update, checkpoint.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(restarts.len(), 1);
    assert_eq!(restarts[0].0, 3);
    assert!(restarts[0].1.ends_with("update_00003.safetensors"));

    // The TUI sees one run: updates 1–6 once each, equal to the straight run's, completed.
    let app = as_tui_sees_it(&paths, &id);
    assert_eq!(update_metrics(&app, &id), want);
    let run = &app.runs[&id];
    assert_eq!(run.status, JobStatus::Completed);
    assert_eq!(
        run.validations.iter().map(|v| v.update).collect::<Vec<_>>(),
        [2, 4, 6]
    );
    let ts: Vec<u64> = run.updates.iter().map(|m| m.timesteps).collect();
    assert!(ts.windows(2).all(|w| w[1] == w[0] + 512), "{ts:?}");
    assert!(run
        .updates
        .windows(2)
        .all(|w| w[1].elapsed_s >= w[0].elapsed_s));
    let vals = jobs::read_validations(&RunDir::open(&paths, &id).unwrap()).unwrap();
    assert_eq!(vals.iter().map(|v| v.update).collect::<Vec<_>>(), [2, 4, 6]);

    // Nothing is left to resume once every update is done.
    let err = run_job(
        &paths,
        &cfg,
        JobRequest::ResumeTrain {
            run: Some(id.clone()),
            checkpoint: None,
            device: None,
            expect: None,
        },
        None,
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("nothing is left to resume"),
        "{err:#}"
    );
    assert_eq!(
        RunDir::open(&paths, &id)
            .unwrap()
            .read_manifest()
            .unwrap()
            .status,
        JobStatus::Completed,
        "a refused resume leaves the run as it was"
    );

    // From an earlier checkpoint: the later branch moves aside and the run reaches the same end.
    let dir = RunDir::open(&paths, &id).unwrap();
    let final_before = weights(&dir.artifact("model.safetensors"));
    let again = run_job(
        &paths,
        &cfg,
        JobRequest::ResumeTrain {
            run: None,
            checkpoint: Some(dir.artifact("checkpoints/update_00002.safetensors")),
            device: None,
            expect: None,
        },
        None,
    )
    .unwrap();
    assert_eq!(again, id);
    let aside: Vec<_> = std::fs::read_dir(&dir.path)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("superseded-"))
        .collect();
    assert_eq!(aside.len(), 1, "one folder for the abandoned branch");
    let a = aside[0].path();
    assert!(a.join("checkpoints/update_00004.safetensors").is_file());
    assert!(a.join("state/update_00006.safetensors").is_file());
    assert!(a.join("model.safetensors").is_file());
    let moved_vals = std::fs::read_to_string(a.join("validations.jsonl")).unwrap();
    assert_eq!(
        moved_vals.lines().count(),
        2,
        "validations 4 and 6 moved aside"
    );
    assert_eq!(weights(&dir.artifact("model.safetensors")), final_before);
    let app = as_tui_sees_it(&paths, &id);
    assert_eq!(
        update_metrics(&app, &id),
        want,
        "the curves are the straight run's"
    );
    assert_eq!(app.runs[&id].status, JobStatus::Completed);
    let vals = jobs::read_validations(&dir).unwrap();
    assert_eq!(vals.iter().map(|v| v.update).collect::<Vec<_>>(), [2, 4, 6]);
}

/// Pruning keeps every Nth checkpoint, the best and the newest, and never a file the events
/// name as best or final.
#[test]
fn pruning_keeps_every_nth_the_best_the_newest_and_what_events_point_to() {
    let mut cfg = common::tiny_config();
    cfg.ppo.total_timesteps = 7 * 16 * 32;
    cfg.ppo.validation_interval = 1;
    cfg.ppo.keep_every = 3;
    // Little evidence suffices, so that validations are scored and a best exists.
    cfg.gating.min_trades = 1;
    cfg.gating.min_days = 2;
    let (_h, paths) = common::temp_home();
    let id = common::train(&paths, &cfg, "SYNA");
    let dir = RunDir::open(&paths, &id).unwrap();
    let ev = events(&paths, &id);
    let best = ev
        .iter()
        .filter_map(|e| match &e.event {
            Event::Checkpoint {
                update,
                reason: CheckpointReason::Best,
                ..
            } => Some(*update),
            _ => None,
        })
        .next_back()
        .expect("a best checkpoint");
    let listed = |sub: &str| -> Vec<usize> {
        let mut v: Vec<usize> = std::fs::read_dir(dir.path.join(sub))
            .unwrap()
            .flatten()
            .filter_map(|e| quantdeck::engine::state::update_of(&e.path()))
            .collect();
        v.sort();
        v
    };
    let mut want: Vec<usize> = vec![3, 6, 7, best];
    want.sort();
    want.dedup();
    assert_eq!(listed("checkpoints"), want);
    assert_eq!(listed("state"), want);
    for e in &ev {
        if let Event::Checkpoint { path, reason, .. } = &e.event {
            if matches!(reason, CheckpointReason::Best | CheckpointReason::Final) {
                assert!(Path::new(path).is_file(), "{path} was pruned");
            }
        }
    }
    let best_meta = checkpoint::read_meta(&dir.artifact("best.safetensors")).unwrap();
    assert_eq!(best_meta.update, best);
    assert!(ev
        .iter()
        .any(|e| matches!(&e.event, Event::Log { message, .. } if message.starts_with("pruned"))));
}

/// Observes validations with a scripted drawdown sequence.
struct Drawdowns {
    dd: Vec<f64>,
    seen: usize,
    notes: Arc<Mutex<Vec<TrainNote>>>,
    updates: Vec<UpdateMetrics>,
}

impl TrainObserver for Drawdowns {
    fn on_update(&mut self, m: &UpdateMetrics) {
        self.updates.push(m.clone());
    }
    fn validate(&mut self, _: usize, _: &HostPolicy) -> anyhow::Result<Option<f64>> {
        Ok(Some(0.0))
    }
    fn validate_report(
        &mut self,
        _: usize,
        _: &HostPolicy,
    ) -> anyhow::Result<ppo::ValidationReport> {
        let dd = self.dd.get(self.seen).copied().unwrap_or(0.0);
        self.seen += 1;
        Ok(ppo::ValidationReport {
            score: Some(-dd),
            max_drawdown: Some(dd),
        })
    }
    fn on_checkpoint(&mut self, _: &Path, _: usize, _: CheckpointReason) {}
    fn on_note(&mut self, note: &TrainNote) {
        self.notes.lock().unwrap().push(note.clone());
    }
    fn should_stop(&self) -> bool {
        false
    }
}

#[test]
fn drawdown_early_stop_retries_from_the_last_good_state_then_stops() {
    let mut cfg = config(RewardKind::Pnl);
    cfg.ppo.early_stop = true;
    let data = common::train_data(&cfg, Symbol::equity("SYNA"));
    let dev = Device::Cpu;

    // Fine at 2, too deep at 4, fine after the retry: one retry from update 2.
    let notes = Arc::new(Mutex::new(Vec::new()));
    let mut obs = Drawdowns {
        dd: vec![0.1, 0.6, 0.1, 0.1],
        seen: 0,
        notes: notes.clone(),
        updates: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let out = ppo::train(&cfg, &data, &dev, dir.path(), &mut obs).unwrap();
    assert!(out.early_stop.is_none());
    assert_eq!(out.updates_done, 6);
    let notes = notes.lock().unwrap().clone();
    let restarts: Vec<_> = notes
        .iter()
        .filter_map(|n| match n {
            TrainNote::Restart {
                from_update,
                reason:
                    RestartReason::DrawdownRetry {
                        retry,
                        lr_scale,
                        ent_scale,
                        ..
                    },
            } => Some((*from_update, *retry, *lr_scale, *ent_scale)),
            _ => None,
        })
        .collect();
    assert_eq!(restarts, vec![(2, 1, 0.5, 1.5)]);
    let seq: Vec<usize> = obs.updates.iter().map(|m| m.update).collect();
    assert_eq!(seq, [1, 2, 3, 4, 3, 4, 5, 6], "updates 3–4 ran again");
    // The retried updates ran at half the learning rates and 1.5× the entropy coefficient.
    let (first, retried) = (&obs.updates[2], &obs.updates[4]);
    assert_eq!(first.update, retried.update);
    assert!((retried.lr - 0.5 * first.lr).abs() < 1e-15);
    assert!((retried.critic_lr - 0.5 * first.critic_lr).abs() < 1e-15);
    assert!((retried.ent_coef - 1.5 * first.ent_coef).abs() < 1e-15);

    // Always too deep: three retries from the start, then a stop with the initial weights.
    let notes = Arc::new(Mutex::new(Vec::new()));
    let mut obs = Drawdowns {
        dd: vec![0.9; 10],
        seen: 0,
        notes: notes.clone(),
        updates: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let out = ppo::train(&cfg, &data, &dev, dir.path(), &mut obs).unwrap();
    let stop = out.early_stop.expect("stopped early");
    assert_eq!((stop.update, stop.model_update, stop.retries), (2, 0, 3));
    assert_eq!(out.updates_done, 0);
    let scales: Vec<(f64, f64)> = notes
        .lock()
        .unwrap()
        .iter()
        .filter_map(|n| match n {
            TrainNote::Restart {
                reason:
                    RestartReason::DrawdownRetry {
                        lr_scale,
                        ent_scale,
                        ..
                    },
                ..
            } => Some((*lr_scale, *ent_scale)),
            _ => None,
        })
        .collect();
    assert_eq!(scales, vec![(0.5, 1.5), (0.25, 2.25), (0.125, 3.375)]);
    let init = quantdeck::engine::ActorCritic::new(
        data.spec.obs_dim(),
        &cfg.ppo.hidden_dims,
        8,
        cfg.ppo.seed,
        &dev,
    )
    .unwrap();
    let want: Vec<(String, Vec<f32>)> = init
        .named_tensors()
        .into_iter()
        .map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1().unwrap()))
        .collect();
    assert_eq!(weights(&dir.path().join("model.safetensors")), want);
}

/// Through the job: the retries and the stop are events, and the validations the retries
/// superseded leave `validations.jsonl`.
#[test]
fn the_early_stop_job_records_retries_and_the_stop() {
    let mut cfg = config(RewardKind::Pnl);
    cfg.ppo.early_stop = true;
    // Any drawdown at all: the untrained policy's validation always has some.
    cfg.ppo.early_stop_drawdown = 1e-9;
    cfg.ppo.early_stop_retries = 2;
    let (_h, paths) = common::temp_home();
    let id = common::train(&paths, &cfg, "SYNA");
    let ev = events(&paths, &id);
    let retries = ev
        .iter()
        .filter(|e| {
            matches!(
                &e.event,
                Event::Restart {
                    reason: RestartReason::DrawdownRetry { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(retries, 2);
    let stop = ev
        .iter()
        .find_map(|e| match &e.event {
            Event::EarlyStop(s) => Some(s.clone()),
            _ => None,
        })
        .expect("an early stop event");
    assert_eq!(stop.model_update, 0);
    let m = RunDir::open(&paths, &id).unwrap().read_manifest().unwrap();
    assert!(m.message.contains("stopped early"), "{}", m.message);
    let vals = jobs::read_validations(&RunDir::open(&paths, &id).unwrap()).unwrap();
    assert!(vals.is_empty(), "superseded validations remain: {vals:?}");
    let app = as_tui_sees_it(&paths, &id);
    assert!(app.runs[&id].early_stop.is_some());
    assert!(app.runs[&id].validations.len() <= 1);
}
