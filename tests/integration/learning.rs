//! On a synthetic market with a strong planted edge, a short training run must beat a flat and a
//! random policy out of sample (seeded, so it is repeatable).

use crate::common;
use quantdeck::features::events::EventTable;

use quantdeck::data::Store;
use quantdeck::engine::{checkpoint, HostPolicy};
use quantdeck::eval::{metrics, Backtester};
use quantdeck::features::{self, FeatureSpec};
use quantdeck::market::Symbol;
use quantdeck::rng::Rng;
use quantdeck::sim::Rules;

#[test]
fn trained_policy_beats_flat_and_random_out_of_sample() {
    let (_tmp, paths) = common::temp_home();
    let mut cfg = common::tiny_config();
    cfg.synthetic.edge = 0.6;
    cfg.data.end = "2024-06-28".into();
    cfg.features.window = 4;
    cfg.ppo.n_envs = 32;
    cfg.ppo.n_steps = 64;
    cfg.ppo.minibatch = 512;
    cfg.ppo.epochs = 4;
    cfg.ppo.total_timesteps = 40 * 32 * 64;
    cfg.ppo.validation_interval = 10;
    cfg.ppo.actor_lr = 1e-3;
    cfg.ppo.critic_lr = 3e-3;
    cfg.ppo.hidden_dims = vec![64, 32];
    cfg.env.episode_len = 128;
    let id = common::train(&paths, &cfg, "SYNA");

    let sym = Symbol::equity("SYNA");
    let bars = Store::new(&paths.data)
        .read(&sym, cfg.data.timeframe)
        .unwrap();
    let (model, meta) = checkpoint::load_model(
        &paths.runs.join(&id).join("model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let spec = FeatureSpec::current(meta.feature_spec.window, &EventTable::embedded());
    let fm = features::compute(&spec, &sym, &bars, &EventTable::embedded());
    let closes: Vec<f64> = bars.iter().map(|b| b.close).collect();
    // Strictly after the bars the model saw (training and checkpoint choice).
    let first_oos = bars.partition_point(|b| b.ts <= meta.seen_until());
    let test = first_oos..bars.len();
    assert!(test.len() > 100, "too few out-of-sample bars: {test:?}");
    let bt = Backtester {
        spec: &spec,
        fm: &fm,
        closes: &closes,
        class: sym.class,
        rules: Rules::training(&cfg.env, sym.class),
        risk: None,
    };
    let bpy = cfg.data.timeframe.bars_per_year(sym.class);

    let trained = bt.run(&HostPolicy::from_model(&model).unwrap(), test.clone());
    let trained_sharpe = metrics::sharpe(&trained.returns, bpy);
    let flat = bt.run_with(test.clone(), |_| 0);
    assert_eq!(flat.total_return(), 0.0);
    let mut rng = Rng::new(99);
    let random = bt.run_with(test.clone(), |_| rng.below(8));
    let random_sharpe = metrics::sharpe(&random.returns, bpy);
    eprintln!("out-of-sample Sharpe: trained {trained_sharpe:.2} (return {:.3}, hold {:.2}), random {random_sharpe:.2}", trained.total_return(), trained.hold_pct());
    assert!(
        trained_sharpe > 1.0,
        "trained Sharpe {trained_sharpe:.2} should clearly beat flat (0)"
    );
    assert!(
        trained_sharpe > random_sharpe + 1.0,
        "trained {trained_sharpe:.2} vs random {random_sharpe:.2}"
    );
    assert!(trained.total_return() > 0.0);
}
