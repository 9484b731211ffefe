//! Training on drawn paths (`synthetic.train_paths`, issue 18): the env reads several paths
//! without an episode or a window ever spanning two, the drawn paths are the market's other
//! histories (never the stored path, which validates and evaluates), and a run on them trains
//! differently from one on the stored path and resumes bit for bit.

use crate::common;
use candle_core::{Device, Tensor};
use quantdeck::config::{BacktestConfig, Config, EnvConfig};
use quantdeck::data::synthetic;
use quantdeck::engine::drawn::{self, DrawnPath};
use quantdeck::engine::env::{EnvPath, VecEnv};
use quantdeck::engine::{checkpoint, ppo};
use quantdeck::features::{self, events::EventTable, FeatureSpec};
use quantdeck::jobs::{self, CancelToken, Event, EventRecord, JobRequest, JobStatus, RunDir};
use quantdeck::market::{Bar, Symbol};
use quantdeck::paths::Paths;
use quantdeck::rng::Rng;
use quantdeck::sim::Rules;
use std::path::Path;

pub(crate) fn stored(cfg: &Config, sym: &Symbol) -> Vec<Bar> {
    let date = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    synthetic::generate(
        &cfg.synthetic,
        sym,
        cfg.data.timeframe,
        date(&cfg.data.start),
        date(&cfg.data.end),
    )
    .unwrap()
}

fn draw(cfg: &Config, available: f64) -> anyhow::Result<(Vec<Bar>, usize, Vec<DrawnPath>)> {
    let sym = Symbol::equity("SYNA");
    let events = EventTable::embedded();
    let spec = FeatureSpec::current(cfg.features.window, &events);
    let bars = stored(cfg, &sym);
    let (train, _) = ppo::split(bars.len(), cfg.data.train_split, cfg.data.validation_split);
    let end = train.end;
    let paths = match drawn::PathDrawer::new(cfg, &sym, &spec, &events, &bars, train, available)? {
        Some(d) => d.draw(0)?,
        None => Vec::new(),
    };
    Ok((bars, end, paths))
}

#[test]
fn drawn_paths_are_the_market_s_other_histories_never_the_stored_one() {
    let mut cfg = common::tiny_config();
    cfg.synthetic.train_paths = 3;
    let (bars, end, paths) = draw(&cfg, 1e12).unwrap();
    assert_eq!(paths.len(), 3);
    let stored_closes: Vec<f64> = bars[..end].iter().map(|b| b.close).collect();
    let stored_ts: Vec<_> = bars[..end].iter().map(|b| b.ts).collect();
    for (k, p) in paths.iter().enumerate() {
        // The training range's days and bar times, another history.
        assert_eq!(p.fm.ts, stored_ts, "path {k}");
        assert_eq!(p.closes.len(), end);
        let same = p
            .closes
            .iter()
            .zip(&stored_closes)
            .filter(|(a, b)| a == b)
            .count();
        assert_eq!(same, 0, "path {k} shares closes with the stored path");
    }
    assert_ne!(paths[0].closes, paths[1].closes);
    assert_ne!(paths[1].closes, paths[2].closes);
    // Derived from the configuration alone: drawn again, the same paths.
    let (_, _, again) = draw(&cfg, 1e12).unwrap();
    assert_eq!(again[2].closes, paths[2].closes);
    assert_eq!(again[2].fm.values, paths[2].fm.values);
    // Another market seed draws other paths.
    cfg.synthetic.seed += 1;
    let (_, _, other) = draw(&cfg, 1e12).unwrap();
    assert_ne!(other[0].closes, paths[0].closes);

    // One path: the stored one trains, nothing is drawn.
    cfg.synthetic.train_paths = 1;
    assert!(draw(&cfg, 1e12).unwrap().2.is_empty());
}

#[test]
fn too_many_paths_for_the_memory_are_refused_before_any_is_drawn() {
    let mut cfg = common::tiny_config();
    cfg.synthetic.train_paths = 1000;
    let Err(err) = draw(&cfg, 64.0 * 1024.0 * 1024.0) else {
        panic!("1000 paths were drawn into 64 MiB");
    };
    let err = err.to_string();
    assert!(
        err.contains("synthetic.train_paths = 1000")
            && err.contains("GiB")
            && err.contains("fewer paths"),
        "{err}"
    );
}

/// Which path a bar index of envs over `lens`-long paths (laid end to end) falls on, and where.
fn locate(lens: &[usize], t: usize) -> (usize, usize) {
    let mut start = 0;
    for (k, &n) in lens.iter().enumerate() {
        if t < start + n {
            return (k, t - start);
        }
        start += n;
    }
    panic!("bar {t} is past every path");
}

#[test]
fn the_env_over_two_paths_trains_on_both_and_no_window_spans_them() {
    let mut cfg = common::tiny_config();
    cfg.synthetic.train_paths = 2;
    let (_, _, paths) = draw(&cfg, 1e12).unwrap();
    let sym = Symbol::equity("SYNA");
    let spec = FeatureSpec::current(cfg.features.window, &EventTable::embedded());
    let sources: Vec<EnvPath> = paths
        .iter()
        .map(|p| EnvPath {
            fm: &p.fm,
            closes: &p.closes,
            range: 0..p.closes.len(),
        })
        .collect();
    let lens: Vec<usize> = paths.iter().map(|p| p.closes.len()).collect();
    let rules = Rules::training(&EnvConfig::default(), &BacktestConfig::default(), sym.class);
    let n = 8;
    let mut env =
        VecEnv::over_paths(&spec, &sources, rules, 40, 1000.0, n, 5, &Device::Cpu).unwrap();
    let mut rng = Rng::new(3);
    let (mut visited, mut apart) = ([0usize; 2], false);
    for _ in 0..300 {
        let t: Vec<usize> = env.clock().iter().map(|&t| t as usize).collect();
        let obs = env.observe().unwrap().to_vec2::<f32>().unwrap();
        let on: Vec<(usize, usize)> = t.iter().map(|&t| locate(&lens, t)).collect();
        for (i, &(k, local)) in on.iter().enumerate() {
            visited[k] += 1;
            // The window is the path's own: its rows, none of the other path's or its warm-up.
            assert!(
                local >= paths[k].fm.first_observable(spec.window),
                "env {i} at {local}"
            );
            assert!(local + 1 < lens[k], "env {i} steps past path {k}'s end");
            let mut expect = Vec::new();
            let account: [f32; 3] = obs[i][obs[i].len() - 3..].try_into().unwrap();
            features::observation(&spec, &paths[k].fm, local, &account, &mut expect);
            assert_eq!(obs[i], expect, "env {i} on path {k} bar {local}");
        }
        apart |= on.iter().any(|&(k, _)| k != on[0].0);
        let actions: Vec<u32> = (0..n).map(|_| rng.below(8) as u32).collect();
        env.step(&Tensor::new(actions.as_slice(), &Device::Cpu).unwrap())
            .unwrap();
    }
    assert!(visited.iter().all(|&v| v > 200), "{visited:?}");
    assert!(apart, "envs were never on different paths at once");

    // A saved clock on the second path's warm-up (no window there) is refused.
    let mut state = env.state();
    state.t[0] = lens[0] as u32;
    assert!(env.restore(state).is_err());
}

fn run_job(paths: &Paths, cfg: &Config, req: JobRequest, cancel_after: Option<usize>) -> String {
    let cancel = CancelToken::new();
    let token = cancel.clone();
    let observer = move |rec: &EventRecord| {
        if let Event::Update(m) = &rec.event {
            if cancel_after.is_some_and(|n| m.update >= n) {
                token.cancel();
            }
        }
    };
    jobs::run_job(paths, cfg, &req, &cancel, Some(Box::new(observer))).unwrap()
}

pub(crate) fn train(paths: &Paths, cfg: &Config, cancel_after: Option<usize>) -> String {
    let req = JobRequest::Train {
        symbol: "SYNA".into(),
        group: None,
    };
    run_job(paths, cfg, req, cancel_after)
}

pub(crate) fn final_weights(paths: &Paths, id: &str) -> Vec<Vec<f32>> {
    let file = paths.runs.join(id).join("model.safetensors");
    let (model, _) = checkpoint::load_model(Path::new(&file), &Device::Cpu).unwrap();
    model
        .named_tensors()
        .into_iter()
        .map(|(_, t)| t.flatten_all().unwrap().to_vec1().unwrap())
        .collect()
}

/// A run of `cfg` straight through in a fresh home: its final weights and its events' text.
fn straight(cfg: &Config) -> (Vec<Vec<f32>>, String) {
    let (_h, home) = common::temp_home();
    let id = train(&home, cfg, None);
    let text = std::fs::read_to_string(home.runs.join(&id).join("events.jsonl")).unwrap();
    (final_weights(&home, &id), text)
}

/// A run of `cfg` cancelled after its third update, then resumed to the end in the same
/// directory: its final weights.
fn stopped_and_resumed(cfg: &Config) -> Vec<Vec<f32>> {
    let (_h, home) = common::temp_home();
    let id = train(&home, cfg, Some(3));
    let status = |id: &str| {
        RunDir::open(&home, id)
            .unwrap()
            .read_manifest()
            .unwrap()
            .status
    };
    assert_eq!(status(&id), JobStatus::Cancelled);
    let resume = JobRequest::ResumeTrain {
        run: Some(id.clone()),
        checkpoint: None,
        device: None,
        expect: None,
    };
    assert_eq!(run_job(&home, cfg, resume, None), id);
    assert_eq!(status(&id), JobStatus::Completed);
    final_weights(&home, &id)
}

#[test]
fn a_run_on_drawn_paths_trains_apart_from_the_stored_path_and_resumes_bit_for_bit() {
    let mut cfg = common::tiny_config();
    cfg.ppo.total_timesteps = 6 * 16 * 32;
    cfg.synthetic.train_paths = 3;
    let (weights, text) = straight(&cfg);
    assert!(text.contains("training on 3 drawn paths"), "{text}");

    let mut one = cfg.clone();
    one.synthetic.train_paths = 1;
    assert_ne!(weights, straight(&one).0, "the drawn paths changed nothing");

    assert_eq!(
        stopped_and_resumed(&cfg),
        weights,
        "the resumed run drew other paths or continued elsewhere"
    );
}

#[test]
fn a_pooled_run_trains_on_the_other_symbol_up_to_its_own_training_end_and_resumes_bit_for_bit() {
    let mut cfg = common::tiny_config();
    cfg.universe.equities = vec!["SYNA".into(), "SYNB".into()];
    cfg.ppo.total_timesteps = 6 * 16 * 32;
    cfg.env.pool_symbols = vec!["SYNB".into(), "syna".into()];
    let (_h1, home) = common::temp_home();
    let straight = train(&home, &cfg, None);
    let m = RunDir::open(&home, &straight)
        .unwrap()
        .read_manifest()
        .unwrap();
    let syna = m.data.iter().find(|d| d.symbol == "SYNA").unwrap();
    let synb = m
        .data
        .iter()
        .find(|d| d.symbol == "SYNB")
        .expect("SYNB pooled");
    assert_eq!(m.data.len(), 2, "the trained symbol is not pooled twice");
    // Nothing of SYNA's validation or out-of-sample time trains: SYNB stops at SYNA's last
    // training bar.
    let bars = stored(&cfg, &Symbol::equity("SYNA"));
    let (train_range, _) = ppo::split(bars.len(), cfg.data.train_split, cfg.data.validation_split);
    assert_eq!(synb.last, Some(bars[train_range.end - 1].ts));
    assert!(synb.bars < syna.bars);

    let mut alone = cfg.clone();
    alone.env.pool_symbols.clear();
    let (_h2, home_alone) = common::temp_home();
    let on_one = train(&home_alone, &alone, None);
    assert_ne!(
        final_weights(&home, &straight),
        final_weights(&home_alone, &on_one),
        "pooling changed nothing"
    );

    assert_eq!(stopped_and_resumed(&cfg), final_weights(&home, &straight));

    // Another asset class has other sessions and costs: refused.
    let mut crypto = alone.clone();
    crypto.env.pool_symbols = vec!["SYNX/USD".into()];
    let (_h4, home_c) = common::temp_home();
    let req = JobRequest::Train {
        symbol: "SYNA".into(),
        group: None,
    };
    let err = jobs::run_job(&home_c, &crypto, &req, &CancelToken::new(), None).unwrap_err();
    assert!(format!("{err:#}").contains("one asset class"), "{err:#}");
}

#[test]
fn augmented_copies_train_beside_the_stored_bars() {
    let mut cfg = common::tiny_config();
    // Copies are of the stored path, which trains only without drawn paths.
    cfg.synthetic.train_paths = 1;
    cfg.env.augment_paths = 2;
    cfg.env.augment_noise = 0.2;
    let (_h1, home) = common::temp_home();
    let id = train(&home, &cfg, None);
    let text = std::fs::read_to_string(home.runs.join(&id).join("events.jsonl")).unwrap();
    assert!(text.contains("augmentation: 2 copies"), "{text}");
    cfg.env.augment_paths = 0;
    let (_h2, home_plain) = common::temp_home();
    let plain = train(&home_plain, &cfg, None);
    assert_ne!(
        final_weights(&home, &id),
        final_weights(&home_plain, &plain),
        "augmentation changed nothing"
    );
}

#[test]
fn redrawn_paths_are_new_every_generation_and_a_run_resumes_across_a_redraw_bit_for_bit() {
    let mut cfg = common::tiny_config();
    cfg.synthetic.train_paths = 2;
    let (bars, end, first) = draw(&cfg, 1e12).unwrap();
    let sym = Symbol::equity("SYNA");
    let events = EventTable::embedded();
    let spec = FeatureSpec::current(cfg.features.window, &events);
    let drawer = drawn::PathDrawer::new(&cfg, &sym, &spec, &events, &bars, 0..end, 1e12)
        .unwrap()
        .expect("two paths are drawn");
    let closes = |ps: &[DrawnPath]| ps.iter().map(|p| p.closes.clone()).collect::<Vec<_>>();
    // Generation 0 is what a run without redraws trains on; later ones are other histories of
    // the same days, and any generation drawn again is the same.
    assert_eq!(closes(&drawer.draw(0).unwrap()), closes(&first));
    let mut all = closes(&first);
    for g in 1..=2 {
        let ps = drawer.draw(g).unwrap();
        assert!(ps.iter().all(|p| p.fm.ts == first[0].fm.ts));
        all.extend(closes(&ps));
    }
    for (i, a) in all.iter().enumerate() {
        assert!(all[i + 1..].iter().all(|b| b != a), "path {i} drawn twice");
    }
    assert_eq!(closes(&drawer.draw(2).unwrap()), all[4..6]);
    // Which generation an update trains on (updates counted from 1; 0 = before the first).
    let gens: Vec<usize> = (0..=7).map(|u| drawn::generation(u, 2)).collect();
    assert_eq!(gens, [0, 0, 0, 1, 1, 2, 2, 3]);
    assert!((0..=7).all(|u| drawn::generation(u, 0) == 0));

    // A run whose paths change at updates 3 and 5, stopped after update 3 (on generation 1)
    // and resumed: the same weights as straight through, and not those of a run without redraws.
    cfg.ppo.total_timesteps = 6 * 16 * 32;
    cfg.synthetic.redraw_every = 2;
    let (weights, text) = straight(&cfg);
    assert!(text.contains("2 new ones every 2 updates"), "{text}");
    let mut kept = cfg.clone();
    kept.synthetic.redraw_every = 0;
    assert_ne!(weights, straight(&kept).0, "the redraws changed nothing");
    assert_eq!(
        stopped_and_resumed(&cfg),
        weights,
        "the resumed run continued on other paths"
    );

    // On one path there is nothing to redraw: said, not silently ignored.
    let mut one = cfg.clone();
    one.synthetic.train_paths = 1;
    let (_, text) = straight(&one);
    assert!(text.contains("redraw_every = 2 is not applied"), "{text}");
}
