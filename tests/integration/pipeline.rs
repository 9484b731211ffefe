//! The whole pipeline headless on a tiny synthetic config: fetch → train → gate → walk-forward →
//! paper, checking run directories, artifacts and numbers.

use crate::common;

use quantdeck::data::Store;
use quantdeck::engine::checkpoint;
use quantdeck::eval::{walkforward, FoldResult};
use quantdeck::jobs::{
    self, CancelToken, Event, EventRecord, JobRequest, JobStatus, JobSummary, RunDir,
};
use quantdeck::market::{Symbol, Timeframe};

fn events(paths: &quantdeck::paths::Paths, id: &str) -> Vec<EventRecord> {
    let p = paths.runs.join(id).join("events.jsonl");
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn fetch_train_gate_walk_forward_paper() {
    let (_tmp, paths) = common::temp_home();
    let cfg = common::tiny_config();
    let run =
        |req: JobRequest| jobs::run_job(&paths, &cfg, &req, &CancelToken::new(), None).unwrap();

    // Fetch: one parquet per symbol, an unknown symbol reported without losing the others; the
    // job fails (a non-zero exit) naming what was stored and what failed.
    let err = jobs::run_job(
        &paths,
        &cfg,
        &JobRequest::Fetch {
            symbols: vec!["SYNA".into(), "NOPE".into(), "SYNX/USD".into()],
        },
        &CancelToken::new(),
        None,
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("NOPE") && msg.contains("stored (synthetic market): SYNA, SYNX/USD"),
        "{msg}"
    );
    let fetch = jobs::list_runs(&paths)[0].manifest.id.clone();
    let store = Store::new(&paths.data);
    let list = store.list();
    assert_eq!(
        list.iter().map(|s| s.symbol.as_str()).collect::<Vec<_>>(),
        ["SYNA", "SYNX/USD"]
    );
    assert!(list
        .iter()
        .all(|s| s.source == "synthetic" && s.bars > 1000));
    let ev = events(&paths, &fetch);
    assert!(ev.iter().any(|e| matches!(&e.event, Event::Log { level, message } if *level == quantdeck::jobs::LogLevel::Error && message.contains("NOPE") && message.contains("unknown symbol"))));

    // Train.
    let train = run(JobRequest::Train {
        symbol: "syna".into(),
        group: None,
    });
    let dir = RunDir::open(&paths, &train).unwrap();
    let m = dir.read_manifest().unwrap();
    assert_eq!(m.status, JobStatus::Completed);
    assert_eq!(m.data.len(), 1);
    assert_eq!(
        m.data[0].sha256,
        store
            .info(&Symbol::equity("SYNA"), Timeframe::Minute(15))
            .unwrap()
            .sha256
    );
    let ev = events(&paths, &train);
    assert!(matches!(ev[0].event, Event::Started { .. }));
    assert!(matches!(
        ev.last().unwrap().event,
        Event::Finished {
            status: JobStatus::Completed,
            ..
        }
    ));
    assert!(
        ev.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "seq is gap-free"
    );
    let updates: Vec<_> = ev
        .iter()
        .filter_map(|e| {
            if let Event::Update(u) = &e.event {
                Some(u.clone())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(updates.len(), 4);
    assert!(updates
        .iter()
        .all(|u| u.sps > 0.0 && u.entropy > 0.0 && u.entropy <= (8f64).ln() + 1e-6 && u.lr > 0.0));
    assert_eq!(updates[3].timesteps, 4 * 16 * 32);
    let vals = ev
        .iter()
        .filter(|e| matches!(e.event, Event::Validation(_)))
        .count();
    assert_eq!(vals, 2);
    let (model, meta) = checkpoint::load_model(
        &dir.artifact("model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_eq!(meta.obs_dim, 8 * 58 + 3);
    assert_eq!(meta.hidden_dims, vec![32, 16]);
    assert_eq!(model.param_count(), meta.param_count);
    assert_eq!(meta.action_meanings.len(), 8);
    assert_eq!(meta.config.ppo.hidden_dims, vec![32, 16]);
    assert!(meta.train_last < meta.data_last);
    assert!(dir
        .artifact("checkpoints/update_00002.safetensors")
        .exists());

    // Gate.
    let gate = run(JobRequest::Gate {
        train_run: "latest".into(),
    });
    let gm = RunDir::open(&paths, &gate)
        .unwrap()
        .read_manifest()
        .unwrap();
    assert_eq!(gm.parent.as_deref(), Some(train.as_str()));
    // The gate's verdict is exactly the assessment of the validations the run recorded.
    let history = jobs::read_validations(&dir).unwrap();
    assert_eq!(history.len(), 2);
    let JobSummary::Gate {
        result,
        interrupted,
        ..
    } = &gm.summary
    else {
        panic!("gate summary: {:?}", gm.summary)
    };
    assert!(!interrupted);
    // Beside it, the composite score the gate job adds from the run's update metrics.
    assert!(result.composite.is_some());
    let graded = quantdeck::eval::GateResult {
        composite: None,
        baselines: None,
        flags: result
            .flags
            .iter()
            .copied()
            .filter(|f| *f != quantdeck::eval::GateFlag::BelowBaseline)
            .collect(),
        ..result.clone()
    };
    let assessed = quantdeck::eval::assess(&cfg.gating, &history);
    assert_eq!(
        graded,
        quantdeck::eval::GateResult {
            // BELOW_BASELINE caps an APPROVED run at REVIEW; nothing else moves.
            class: if result.class == quantdeck::eval::GateClass::Review
                && assessed.class == quantdeck::eval::GateClass::Approved
            {
                result.class
            } else {
                assessed.class
            },
            ..assessed
        }
    );
    // The baseline check re-ran the graded checkpoint as traded on its validation bars: the
    // same figures the validation recorded while training (one set of rules).
    let check = result.baselines.as_ref().expect("a baseline check");
    assert!((check.model.total_return - result.metrics.total_return).abs() < 1e-12);
    assert!((check.model.sharpe - result.metrics.sharpe).abs() < 1e-9);
    assert_eq!(
        result
            .flags
            .contains(&quantdeck::eval::GateFlag::BelowBaseline),
        !check.trails.is_empty()
    );
    assert_eq!(check.baselines.len(), 2, "momentum and buy-and-hold");

    // Walk-forward: 5 consecutive folds covering the out-of-sample bars.
    let wf = run(JobRequest::WalkForward {
        train_run: train[..12].into(),
        period: Default::default(),
    });
    let text = std::fs::read_to_string(paths.runs.join(&wf).join("walkforward.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let folds: Vec<FoldResult> = serde_json::from_value(v["folds"].clone()).unwrap();
    assert_eq!(folds.len(), 5);
    assert!(folds.windows(2).all(|w| w[0].end <= w[1].start));
    for f in &folds {
        assert!(f.bars > 10);
        assert!((f.equity.last().unwrap() - 1.0 - f.total_return).abs() < 1e-9);
        assert!(f.buy_hold_return.is_finite() && f.sharpe.is_finite());
    }
    let (decision, positive, _) = walkforward::decide(&folds, cfg.walk_forward.max_sharpe_std);
    assert_eq!(v["report"]["decision"].as_str().unwrap(), decision.as_str());
    assert_eq!(
        v["report"]["positive_folds"].as_u64().unwrap() as usize,
        positive
    );

    // Paper: 25 unseen bars on the simulated broker, through the daemon.
    let paper = run(JobRequest::Paper {
        train_runs: vec![train.clone()],
        bars: Some(25),
        replay: None,
        new_session: false,
        confirm_live: false,
    });
    let ev = events(&paths, &paper);
    let snaps: Vec<_> = ev
        .iter()
        .filter_map(|e| match &e.event {
            Event::Paper(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert!(snaps.len() >= 25, "{} snapshots", snaps.len());
    assert!(snaps
        .iter()
        .all(|s| s.account.equity.is_finite() && s.account.equity > 90_000.0));
    // Every bar replayed is one the model never saw.
    let (_, meta) = checkpoint::load_model(
        &dir.artifact("model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let first_bar = snaps
        .iter()
        .find_map(|s| s.rows[0].last_bar)
        .expect("a bar was decided");
    assert!(first_bar > meta.seen_until());
    let pm = RunDir::open(&paths, &paper)
        .unwrap()
        .read_manifest()
        .unwrap();
    let JobSummary::Paper {
        orders,
        equity,
        train_runs,
        ..
    } = pm.summary
    else {
        panic!("paper summary: {:?}", pm.summary)
    };
    assert_eq!(train_runs, vec![train.clone()]);
    // One journal intent per order sent, each accepted by the broker.
    let journal =
        std::fs::read_to_string(paths.runs.join(&paper).join("journal.jsonl")).unwrap_or_default();
    let intents = journal
        .lines()
        .filter(|l| l.contains("\"t\":\"intent\""))
        .count();
    let accepted = journal
        .lines()
        .filter(|l| l.contains("\"t\":\"accepted\""))
        .count();
    assert_eq!((intents, accepted), (orders, orders), "{journal}");
    assert!((equity - snaps.last().unwrap().account.equity).abs() < 1e-6);

    // Every run is listed and finished: the fetch failed (one symbol was unknown), the rest
    // completed.
    let runs = jobs::list_runs(&paths);
    assert_eq!(runs.len(), 5);
    let states: Vec<_> = runs
        .iter()
        .map(|r| (r.manifest.id == fetch, r.state()))
        .collect();
    assert!(
        states
            .iter()
            .all(|&(is_fetch, st)| st == if is_fetch { "failed" } else { "completed" }),
        "{states:?}"
    );
}

#[test]
fn cancelled_training_saves_a_model_first() {
    let (_tmp, paths) = common::temp_home();
    let mut cfg = common::tiny_config();
    cfg.ppo.total_timesteps = 1_000_000;
    let cancel = CancelToken::new();
    let c2 = cancel.clone();
    // Cancel as soon as the first update is reported.
    let observer = Box::new(move |rec: &EventRecord| {
        if matches!(rec.event, Event::Update(_)) {
            c2.cancel();
        }
    });
    let id = jobs::run_job(
        &paths,
        &cfg,
        &JobRequest::Train {
            symbol: "SYNA".into(),
            group: None,
        },
        &cancel,
        Some(observer),
    )
    .unwrap();
    let dir = RunDir::open(&paths, &id).unwrap();
    assert_eq!(dir.read_manifest().unwrap().status, JobStatus::Cancelled);
    let meta = checkpoint::read_meta(&dir.artifact("model.safetensors")).unwrap();
    assert_eq!(meta.update, 1);
    let ev = events(&paths, &id);
    assert!(ev
        .iter()
        .any(|e| matches!(&e.event, Event::Checkpoint { reason, .. } if *reason == quantdeck::jobs::CheckpointReason::Cancelled)));
}

#[test]
fn mismatched_feature_layout_is_refused_naming_both() {
    let (_tmp, paths) = common::temp_home();
    let cfg = common::tiny_config();
    let train = common::train(&paths, &cfg, "SYNA");
    let path = paths.runs.join(&train).join("model.safetensors");
    let (model, mut meta) = checkpoint::load_model(&path, &candle_core::Device::Cpu).unwrap();
    meta.feature_spec.version = "qd-other-v9".into();
    checkpoint::save_model(&path, &model, &meta).unwrap();
    let err = jobs::run_job(
        &paths,
        &cfg,
        &JobRequest::WalkForward {
            train_run: train.clone(),
            period: Default::default(),
        },
        &CancelToken::new(),
        None,
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("does not match"), "{msg}");
    assert!(
        msg.contains("qd-other-v9: 58 features × 8 bars")
            && msg.contains("qd-seed58-v1: 58 features × 8 bars"),
        "{msg}"
    );

    // A model file with the wrong tensor shapes for its metadata is refused too.
    meta.feature_spec.version = "qd-seed58-v1".into();
    meta.hidden_dims = vec![64, 16];
    checkpoint::save_model(&path, &model, &meta).unwrap();
    let msg = match checkpoint::load_model(&path, &candle_core::Device::Cpu) {
        Ok(_) => panic!("a model with the wrong shapes loaded"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        msg.contains("trunk.0.weight") && msg.contains("shape"),
        "{msg}"
    );
    // Not a model at all.
    std::fs::write(&path, b"garbage").unwrap();
    assert!(format!("{:#}", checkpoint::read_meta(&path).unwrap_err())
        .contains("not a safetensors model"));
}
