//! One truth from validation to paper for a portfolio model, through the binary: fetch →
//! walk-forward → `paper --broker sim --fold N`. The replay trades what the fold reported — the
//! equity before each decision, every member's fill, the final mark — and the Paper pane expects
//! walk-forward's figure per day; under the default rules, then with a regime confidence
//! threshold that holds about half of the choices.
//!
//! The model is made directly (a few PPO updates leave a near-uniform policy that holds every
//! day): a random network with its policy head scaled up, decisive enough to switch regimes.

use crate::common;
use candle_core::{Device, Tensor};
use chrono::Utc;
use quantdeck::config::Config;
use quantdeck::data::{load_panel, Store};
use quantdeck::engine::checkpoint::{self, ModelMeta, FORMAT};
use quantdeck::engine::ActorCritic;
use quantdeck::eval::FoldResult;
use quantdeck::features::events::EventTable;
use quantdeck::features::portfolio::PortfolioSpec;
use quantdeck::features::FeatureSpec;
use quantdeck::jobs::{Event, JobKind, JobStatus, RunDir};
use quantdeck::paths::Paths;
use quantdeck::sim::portfolio::{N_REGIMES, REGIME_NAMES};
use std::collections::HashMap;
use std::path::Path;

/// A 4-symbol synthetic universe over 3½ years of days, tiny PPO; the trading rules are the
/// defaults (20 % per position, 70 % allocated, drawdown rules, daily loss limit, cooldown).
fn config(threshold: f64) -> Config {
    let mut cfg = common::tiny_config();
    cfg.portfolio.synthetic_symbols = (1..=4).map(|i| format!("SYNP{i:02}")).collect();
    cfg.portfolio.start = "2021-01-04".into();
    cfg.portfolio.end = "2024-06-28".into();
    cfg.portfolio.window = 8;
    cfg.portfolio.episode_len = 64;
    cfg.live.portfolio_confidence_threshold = threshold;
    quantdeck::config::validate(&cfg).unwrap();
    cfg
}

/// Writes the model into a completed training run that saw the panel's first 80 % of rows.
fn portfolio_run(home: &Path, cfg: &Config) -> String {
    let paths = Paths::under(home);
    let panel = load_panel(cfg, &Store::new(&paths.data)).unwrap().panel;
    let spec = PortfolioSpec::from_config(cfg).unwrap();
    let dev = Device::Cpu;
    let obs = spec.obs_dim();
    let m = ActorCritic::new(obs, &[16], N_REGIMES, 5, &dev).unwrap();
    let mut t: HashMap<String, Tensor> = m.named_tensors().into_iter().collect();
    let w = t["actor.weight"].affine(150.0, 0.0).unwrap();
    t.insert("actor.weight".into(), w);
    let model = ActorCritic::from_tensors(obs, &[16], N_REGIMES, &t, &dev).unwrap();
    let seen = panel.ts[panel.n_bars() * 4 / 5];
    let meta = ModelMeta {
        format: FORMAT.into(),
        quantdeck_version: "test".into(),
        symbol: "portfolio".into(),
        class: panel.class,
        timeframe: spec.timeframe,
        source: "synthetic".into(),
        feature_spec: FeatureSpec::current(8, &EventTable::default()),
        action_meanings: REGIME_NAMES.iter().map(|s| s.to_string()).collect(),
        obs_dim: obs,
        hidden_dims: vec![16],
        n_actions: N_REGIMES,
        param_count: model.param_count(),
        train_first: panel.ts[0],
        train_last: seen,
        val_first: Some(seen),
        val_last: Some(seen),
        data_first: panel.ts[0],
        data_last: seen,
        data_sha256: panel.sha256(),
        update: 1,
        timesteps: 1,
        created: Utc::now(),
        config: cfg.clone(),
        gru: None,
        portfolio: Some(spec),
    };
    let cfg_json = serde_json::to_value(cfg).unwrap();
    let (dir, mut man) =
        RunDir::create(&paths, JobKind::Train, "portfolio", cfg_json, None).unwrap();
    checkpoint::save_model(&dir.artifact("model.safetensors"), &model, &meta).unwrap();
    man.status = JobStatus::Completed;
    man.finished = Some(Utc::now());
    dir.write_manifest(&man).unwrap();
    dir.id
}

/// Quantities and equities to 1e-6 relative: the daemon's orders carry Decimal quantities
/// rounded down to 9 decimals (`live::orders::plan`); the walk-forward's are exact.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

/// Replays the fold with the most fills in a fresh session and holds it against the fold;
/// returns the fold.
fn assert_replay_is_the_fold<'f>(
    h: &Path,
    ok: &dyn Fn(&[&str]) -> String,
    folds: &'f [FoldResult],
) -> &'f FoldResult {
    let fold = folds.iter().max_by_key(|f| f.orders.len()).unwrap();
    let out = ok(&["paper", "--broker", "sim", "--fold", &fold.fold.to_string()]);
    assert!(out.contains("replaying fold"), "{out}");
    let ev = common::run_events(
        &common::runs_named(h, "paper-")
            .pop()
            .expect("a paper session"),
    );
    let last = ev
        .iter()
        .rev()
        .find_map(|r| match &r.event {
            Event::Paper(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    let initial = last.account.initial;
    let decided: Vec<_> = ev
        .iter()
        .filter_map(|r| match &r.event {
            Event::Decided(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(decided.len(), fold.bars, "decisions vs fold bars");
    assert_eq!(decided[0].bar, fold.start);
    for (k, d) in decided.iter().enumerate() {
        assert_eq!(d.symbol, "portfolio");
        assert!(
            close(d.equity, fold.equity[k] * initial),
            "bar {k} ({}): paper equity {} vs walk-forward {}",
            d.bar,
            d.equity,
            fold.equity[k] * initial
        );
    }
    let fills: Vec<_> = ev
        .iter()
        .filter_map(|r| match &r.event {
            Event::Order(o) if o.filled_qty > 0.0 => Some(o.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(fills.len(), fold.orders.len(), "fills vs fold orders");
    for (o, f) in fills.iter().zip(&fold.orders) {
        let signed = if o.side == "buy" {
            o.filled_qty
        } else {
            -o.filled_qty
        };
        assert_eq!((o.at, o.symbol.as_str()), (Some(f.ts), f.symbol.as_str()));
        assert!(close(signed, f.qty), "qty {signed} vs {}", f.qty);
        assert!(close(o.fill_price.unwrap(), f.price), "price");
    }
    let end = fold.equity.last().unwrap() * initial;
    assert!(
        close(last.account.equity, end),
        "{} vs {end}",
        last.account.equity
    );
    let pv = last.portfolio.as_ref().expect("a portfolio session");
    let expected = quantdeck::jobs::replay::per_day(folds).unwrap();
    assert!(close(pv.expected_daily.unwrap(), expected));
    fold
}

#[test]
fn a_replay_of_a_portfolio_fold_trades_what_walk_forward_reported() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let cfg_path = h.join("tiny.toml");
    let write = |c: &Config| std::fs::write(&cfg_path, toml::to_string(c).unwrap()).unwrap();
    write(&config(0.0));
    let cfg = cfg_path.display().to_string();
    let ok = |args: &[&str]| common::qd_ok(h, &cfg, args);
    let walk = || {
        ok(&["walk-forward", "--folds", "3"]);
        let wf = common::runs_named(h, "walk-forward-")
            .pop()
            .expect("a walk-forward run");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(wf.join("walkforward.json")).unwrap())
                .unwrap();
        let folds: Vec<FoldResult> = serde_json::from_value(json["folds"].clone()).unwrap();
        (json, folds)
    };
    ok(&["fetch", "--portfolio"]);
    portfolio_run(h, &config(0.0));

    let (_, folds) = walk();
    // The folds tile the period: each is marked at the next one's first bar.
    assert!(folds.windows(2).all(|w| w[0].end == w[1].start));
    assert!(folds.iter().all(|f| f.held == 0 && f.raw.is_none()));
    let traded: usize = folds.iter().map(|f| f.orders.len()).sum();
    assert!(traded > 0, "no fold traded");
    assert!(folds
        .iter()
        .flat_map(|f| &f.orders)
        .all(|o| o.symbol.starts_with("SYNP")));
    assert_replay_is_the_fold(h, &ok, &folds);

    // A threshold at the median fold's median confidence: about half of the choices are held.
    let mut medians: Vec<f32> = folds
        .iter()
        .filter_map(|f| f.confidence)
        .map(|c| c[1])
        .collect();
    medians.sort_by(f32::total_cmp);
    let threshold = medians[medians.len() / 2] as f64;
    write(&config(threshold));
    let (json, folds) = walk();
    let recorded = json["rules"]["portfolio_confidence_threshold"]
        .as_f64()
        .unwrap();
    assert_eq!(recorded as f32, threshold as f32);
    let summary: Vec<_> = folds
        .iter()
        .map(|f| (f.orders.len(), f.held, f.bars))
        .collect();
    assert!(
        folds.iter().any(|f| f.held > 0) && folds.iter().all(|f| f.raw.is_some()),
        "(fills, held, bars) {summary:?}"
    );
    assert!(folds.iter().any(|f| !f.orders.is_empty()), "{summary:?}");
    let fold = assert_replay_is_the_fold(h, &ok, &folds);
    assert!(fold.held > 0, "the replayed fold held nothing: {summary:?}");
}
