//! Portfolio models through PPO and the gate (issue 10): real run directories and store files on
//! the synthetic universe, tiny sizes.

use crate::common::{self, qd, text};
use candle_core::Device;
use quantdeck::config::{Config, Encoder};
use quantdeck::data::{load_panel, Store};
use quantdeck::engine::gru::{GruNet, GruSpec};
use quantdeck::engine::{load_policy, HostPolicy};
use quantdeck::eval::{PortfolioTrader, ValidationMetrics};
use quantdeck::features::portfolio::{self as pfeat, PortfolioSpec};
use quantdeck::jobs::{self, CancelToken, Event, EventRecord, JobRequest, RunDir};
use quantdeck::paths::Paths;
use quantdeck::sim::portfolio::{Regime, N_REGIMES};
use quantdeck::sim::TradingRules;
use std::path::Path;

/// The tiny config over a 4-symbol synthetic universe: 3½ years of days, 8-step windows.
fn tiny_portfolio() -> Config {
    let mut cfg = common::tiny_config();
    cfg.portfolio.synthetic_symbols = (1..=4).map(|i| format!("SYNP{i:02}")).collect();
    cfg.portfolio.start = "2021-01-04".into();
    cfg.portfolio.end = "2024-06-28".into();
    cfg.portfolio.window = 8;
    cfg.portfolio.episode_len = 64;
    quantdeck::config::validate(&cfg).unwrap();
    cfg
}

fn train_portfolio(paths: &Paths, cfg: &Config) -> String {
    jobs::run_job(
        paths,
        cfg,
        &JobRequest::TrainPortfolio,
        &CancelToken::new(),
        None,
    )
    .expect("portfolio training run")
}

fn events(dir: &RunDir) -> Vec<Event> {
    std::fs::read_to_string(dir.events_path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<EventRecord>(l).unwrap().event)
        .collect()
}

fn validations(path: &Path) -> Vec<ValidationMetrics> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_portfolio_run_saves_a_portfolio_model_validated_against_equal_weight() {
    let (_home, paths) = common::temp_home();
    let cfg = tiny_portfolio();
    let id = train_portfolio(&paths, &cfg);
    let dir = RunDir::open(&paths, &id).unwrap();
    let manifest = dir.read_manifest().unwrap();
    assert_eq!(manifest.label, "portfolio");

    // The model loads with the portfolio layout, 12 actions named after the regimes, and the
    // panel's dates and hash.
    let (policy, meta) = load_policy(&dir.artifact("model.safetensors")).unwrap();
    let spec = PortfolioSpec::from_config(&cfg).unwrap();
    assert_eq!(meta.portfolio.as_ref(), Some(&spec));
    assert_eq!(meta.n_actions, N_REGIMES);
    let names: Vec<&str> = Regime::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(meta.action_meanings, names);
    assert_eq!(policy.obs_dim(), spec.obs_dim());
    let panel = load_panel(&cfg, &Store::new(&paths.data)).unwrap().panel;
    assert_eq!(meta.data_sha256, panel.sha256());
    assert_eq!(meta.data_first, panel.ts[0]);
    let n = panel.n_bars();
    let (train, val) =
        quantdeck::engine::ppo::split(n, cfg.data.train_split, cfg.data.validation_split);
    assert_eq!(meta.train_first, panel.ts[train.start]);
    assert_eq!(meta.val_last, Some(panel.ts[val.end - 1]));
    assert!(val.end < n, "rows are left out of sample");
    assert_eq!(manifest.data[0].sha256, panel.sha256());

    // Every validation carries the equal-weight block and the 12-regime histogram; the last one
    // is what trading the final model on the validation rows as paper does gives (equal weight
    // plain beside it).
    let vs = validations(&dir.artifact(jobs::VALIDATIONS));
    assert_eq!(vs.iter().map(|v| v.update).collect::<Vec<_>>(), vec![2, 4]);
    let last = vs.last().unwrap();
    let block = last.portfolio.as_ref().expect("portfolio block");
    assert_eq!(block.regimes.len(), N_REGIMES);
    let features = pfeat::compute(&spec, &panel).unwrap();
    let trader = PortfolioTrader {
        spec: &spec,
        panel: &panel,
        features: &features,
        rules: TradingRules::from_config(&cfg),
    };
    let run = trader.run(val.clone(), |o| policy.act(o)).unwrap();
    let ew = trader.equal_weight(val.clone()).unwrap();
    assert_eq!(block.model.total_return, run.total_return());
    assert_eq!(block.equal_weight.total_return, ew.total_return());
    assert_eq!(block.equal_weight.sharpe, ew.stats(panel.class).sharpe);
    assert!(block.equal_weight.turnover > 0.99 && block.equal_weight.turnover < 1.01);
    assert_eq!(last.total_return, run.total_return());
    let steps: Vec<usize> = block.regimes.iter().map(|r| r.steps).collect();
    assert_eq!(steps, run.acted.to_vec());
    assert_eq!(steps.iter().sum::<usize>(), run.rows.len());
    assert_eq!(last.trades, run.rebalances);
    assert_eq!(
        last.raw, None,
        "no threshold: the raw policy is the same run"
    );

    // Each update event carries the rollout's share of each of the 12 actions.
    let updates: Vec<_> = events(&dir)
        .into_iter()
        .filter_map(|e| match e {
            Event::Update(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(updates.len(), 4);
    for m in &updates {
        assert_eq!(m.action_shares.len(), N_REGIMES);
        assert!((m.action_shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
}

#[test]
fn single_symbol_updates_carry_eight_action_shares() {
    let (_home, paths) = common::temp_home();
    let id = common::train(&paths, &common::tiny_config(), "SYNA");
    let dir = RunDir::open(&paths, &id).unwrap();
    let shares: Vec<Vec<f64>> = events(&dir)
        .into_iter()
        .filter_map(|e| match e {
            Event::Update(m) => Some(m.action_shares),
            _ => None,
        })
        .collect();
    assert!(!shares.is_empty());
    for s in shares {
        assert_eq!(s.len(), quantdeck::sim::N_ACTIONS);
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
}

#[test]
fn gate_prints_a_portfolio_runs_equal_weight_figures_and_composite_score() {
    let home = tempfile::tempdir().unwrap();
    let cfg_path = home.path().join("tiny.toml");
    std::fs::write(&cfg_path, toml::to_string(&tiny_portfolio()).unwrap()).unwrap();
    let cfg = cfg_path.display().to_string();
    let o = qd(
        home.path(),
        &[
            "--config",
            &cfg,
            "train",
            "--portfolio",
            "--iterations",
            "2",
        ],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("vs equal weight"), "{out}");
    let o = qd(home.path(), &["--config", &cfg, "gate"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("graded validation (update 2), model vs equal weight: return"),
        "{out}"
    );
    assert!(
        out.contains("Sharpe") && out.contains("max DD") && out.contains("turnover"),
        "{out}"
    );
    assert!(out.contains("composite score"), "{out}");
    // The gate's JSON carries the score beside the class.
    let paths = Paths::under(home.path());
    let gate_run = jobs::list_runs(&paths)
        .into_iter()
        .find(|r| r.manifest.kind == jobs::JobKind::Gate)
        .unwrap();
    let dir = RunDir::open(&paths, &gate_run.manifest.id).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.artifact("gate.json")).unwrap()).unwrap();
    let total = json["composite"]["total"]
        .as_f64()
        .expect("composite.total");
    assert!((-100.0..=100.0).contains(&total));
    assert!(out.contains(&format!("(composite {total:+.1})")), "{out}");
    assert!(json["metrics"]["portfolio"]["equal_weight"]["total_return"].is_f64());
}

#[test]
fn a_portfolio_run_resumed_from_a_checkpoint_continues_exactly() {
    let (_home, paths) = common::temp_home();
    let cfg = tiny_portfolio();
    let id = train_portfolio(&paths, &cfg);
    let dir = RunDir::open(&paths, &id).unwrap();
    let before = validations(&dir.artifact(jobs::VALIDATIONS));
    let state = dir.path.join("state").join("update_00002.safetensors");
    let req = JobRequest::ResumeTrain {
        run: None,
        checkpoint: Some(state),
        device: None,
        expect: Some(Box::new(cfg.clone())),
    };
    let again = jobs::run_job(&paths, &cfg, &req, &CancelToken::new(), None).unwrap();
    assert_eq!(again, id);
    let after = validations(&dir.artifact(jobs::VALIDATIONS));
    assert_eq!(
        after, before,
        "the resumed run repeats updates 3–4 bit for bit"
    );

    // A configuration with another universe is refused, naming both layouts.
    let mut other = cfg.clone();
    other.portfolio.synthetic_symbols.pop();
    let req = JobRequest::ResumeTrain {
        run: None,
        checkpoint: Some(dir.path.join("state").join("update_00002.safetensors")),
        device: None,
        expect: Some(Box::new(other)),
    };
    let e = format!(
        "{:#}",
        jobs::run_job(&paths, &cfg, &req, &CancelToken::new(), None).unwrap_err()
    );
    assert!(e.contains("4 symbols") && e.contains("3 symbols"), "{e}");
}

fn tiny_gru(mut cfg: Config) -> Config {
    cfg.ppo.encoder = Encoder::Gru;
    cfg.ppo.gru_hidden = 16;
    cfg.ppo.gru_layers = 2;
    cfg.ppo.gru_head_hidden = 8;
    quantdeck::config::validate(&cfg).unwrap();
    cfg
}

/// The parameters a GRU model file holds, as one flat buffer in the network's order.
fn gru_theta(path: &Path, spec: &GruSpec) -> Vec<f32> {
    let tensors = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    GruNet::new(spec.clone())
        .theta_from(&tensors, &Device::Cpu)
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn a_gru_portfolio_run_trains_resumes_exactly_and_walks_forward() {
    let (_home, paths) = common::temp_home();
    let cfg = tiny_gru(tiny_portfolio());
    let id = train_portfolio(&paths, &cfg);
    let dir = RunDir::open(&paths, &id).unwrap();
    let pspec = PortfolioSpec::from_config(&cfg).unwrap();
    let want = GruSpec {
        seq_len: pspec.seq_len(),
        step_dim: pspec.step_dim(),
        tail_dim: pspec.tail_dim(),
        hidden: 16,
        layers: 2,
        head_hidden: 8,
        n_actions: N_REGIMES,
    };

    // The final model and every periodic checkpoint are GRU files the evaluators load.
    let model = dir.artifact("model.safetensors");
    let (policy, meta) = load_policy(&model).unwrap();
    assert_eq!(meta.gru.as_ref(), Some(&want));
    assert_eq!(meta.encoder(), "gru");
    assert_eq!(meta.param_count, want.param_count());
    assert!(matches!(policy, HostPolicy::Gru(_)));
    assert_eq!(policy.obs_dim(), pspec.obs_dim());
    let checkpoints: Vec<_> = std::fs::read_dir(dir.path.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(checkpoints.len(), 2, "{checkpoints:?}");
    for c in &checkpoints {
        assert_eq!(load_policy(c).unwrap().1.gru.as_ref(), Some(&want));
    }

    // Training moved both groups: the encoder/GRU/policy head and the value head.
    let net = GruNet::new(want.clone());
    let init: Vec<f32> = net
        .init_theta(cfg.ppo.seed, &Device::Cpu)
        .unwrap()
        .to_vec1()
        .unwrap();
    let trained = gru_theta(&model, &want);
    let cut = init.len() - net.critic_len();
    assert_ne!(trained[..cut], init[..cut], "the actor group did not move");
    assert_ne!(trained[cut..], init[cut..], "the value head did not move");
    let vs = validations(&dir.artifact(jobs::VALIDATIONS));
    assert_eq!(vs.iter().map(|v| v.update).collect::<Vec<_>>(), vec![2, 4]);

    // Resumed from update 2, the run repeats updates 3–4 bit for bit (dropout masks included).
    let req = JobRequest::ResumeTrain {
        run: None,
        checkpoint: Some(dir.path.join("state").join("update_00002.safetensors")),
        device: None,
        expect: Some(Box::new(cfg.clone())),
    };
    jobs::run_job(&paths, &cfg, &req, &CancelToken::new(), None).unwrap();
    assert_eq!(validations(&dir.artifact(jobs::VALIDATIONS)), vs);
    assert_eq!(gru_theta(&model, &want), trained);

    // An MLP configuration cannot continue the GRU's state: both layouts are named.
    let req = JobRequest::ResumeTrain {
        run: None,
        checkpoint: Some(dir.path.join("state").join("update_00002.safetensors")),
        device: None,
        expect: Some(Box::new(tiny_portfolio())),
    };
    let e = format!(
        "{:#}",
        jobs::run_job(&paths, &cfg, &req, &CancelToken::new(), None).unwrap_err()
    );
    assert!(e.contains("gru: 8×") && e.contains("mlp [32, 16]"), "{e}");

    // Walk-forward evaluates the GRU model out of sample.
    let wf = jobs::run_job(
        &paths,
        &cfg,
        &JobRequest::WalkForward {
            train_run: id.clone(),
            period: Default::default(),
        },
        &CancelToken::new(),
        None,
    )
    .unwrap();
    let text = std::fs::read_to_string(paths.runs.join(&wf).join("walkforward.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let folds = v["folds"].as_array().unwrap();
    assert!(!folds.is_empty());
    assert!(folds.iter().all(|f| f["portfolio"].is_object()), "{text}");
}

#[test]
fn a_single_symbol_gru_run_reads_the_feature_window_as_its_sequence() {
    let (_home, paths) = common::temp_home();
    let cfg = tiny_gru(common::tiny_config());
    let id = common::train(&paths, &cfg, "SYNA");
    let dir = RunDir::open(&paths, &id).unwrap();
    let (policy, meta) = load_policy(&dir.artifact("model.safetensors")).unwrap();
    let g = meta.gru.expect("a GRU model");
    assert_eq!(
        (g.seq_len, g.step_dim, g.tail_dim),
        (
            cfg.features.window,
            meta.feature_spec.n_features(),
            meta.feature_spec.account.len()
        )
    );
    assert_eq!(policy.obs_dim(), meta.feature_spec.obs_dim());
    assert!(matches!(policy, HostPolicy::Gru(_)));

    // Walk-forward loads the single-symbol GRU model too.
    let wf = jobs::run_job(
        &paths,
        &cfg,
        &JobRequest::WalkForward {
            train_run: id,
            period: Default::default(),
        },
        &CancelToken::new(),
        None,
    )
    .unwrap();
    let text = std::fs::read_to_string(paths.runs.join(&wf).join("walkforward.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(!v["folds"].as_array().unwrap().is_empty(), "{text}");
}
