//! A model trained on the current layout loads with its layout, and the env, the backtest and the
//! paper trader (recomputing features from its trailing history) feed it identical observations.

use crate::common;
use quantdeck::features::events::EventTable;

use candle_core::Device;
use quantdeck::config::{BacktestConfig, EnvConfig};
use quantdeck::data::Store;
use quantdeck::engine::{checkpoint, env::VecEnv, HostPolicy};
use quantdeck::eval::Backtester;
use quantdeck::features::{self, FeatureSpec};
use quantdeck::market::Symbol;
use quantdeck::sim::{Account, Rules, TradingRules};

#[test]
fn trained_model_sees_identical_observations_in_env_backtest_and_paper() {
    let (_tmp, paths) = common::temp_home();
    let cfg = common::tiny_config();
    let id = common::train(&paths, &cfg, "SYNA");
    let (model, meta) = checkpoint::load_model(
        &paths.runs.join(&id).join("model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let spec = FeatureSpec::current(cfg.features.window, &EventTable::embedded());
    meta.check_layout(&spec).unwrap();
    assert_eq!(meta.feature_spec.version, features::VERSION);
    assert_eq!(meta.obs_dim, 58 * cfg.features.window + 3);

    let sym = Symbol::equity("SYNA");
    let bars = Store::new(&paths.data)
        .read(&sym, cfg.data.timeframe)
        .unwrap();
    let fm = features::compute(&spec, &sym, &bars, &EventTable::embedded());
    let closes: Vec<f64> = bars.iter().map(|b| b.close).collect();
    let policy = HostPolicy::from_model(&model).unwrap();

    // The env's observations at its bars equal the live recomputation from trailing history.
    let rules = Rules::training(&EnvConfig::default(), &BacktestConfig::default(), sym.class);
    let env = VecEnv::new(
        &spec,
        &fm,
        &closes,
        0..bars.len(),
        rules,
        64,
        1000.0,
        4,
        9,
        &Device::Cpu,
    )
    .unwrap();
    let obs = env.observe().unwrap().to_vec2::<f32>().unwrap();
    let fresh = Account::new(&rules).features();
    let need = spec.warmup + spec.window;
    for (i, &t) in env.clock().iter().enumerate() {
        let t = t as usize;
        let live_fm = features::compute(
            &spec,
            &sym,
            &bars[t + 1 - need..=t],
            &EventTable::embedded(),
        );
        let mut live = Vec::new();
        features::observation(&spec, &live_fm, live_fm.len() - 1, &fresh, &mut live);
        assert_eq!(live.len(), obs[i].len());
        for (a, b) in obs[i].iter().zip(&live) {
            assert!((a - b).abs() <= 1e-6, "bar {t}: env {a} vs live {b}");
        }
        assert_eq!(
            policy.act(&obs[i]).0,
            policy.act(&live).0,
            "same action at bar {t}"
        );
    }

    // Backtest and paper trader: same decisions and equity over the test range.
    let trading = TradingRules::from_config(&cfg);
    let start = fm.first_observable(spec.window).max(bars.len() - 200);
    let end = bars.len() - 1;
    let res = Backtester::as_traded(&spec, &fm, &closes, sym.class, &trading, true)
        .run(&policy, start..end);
    let orders = common::assert_paper_matches_backtest(
        &sym,
        &meta.feature_spec,
        &model,
        trading,
        &bars,
        start,
        &res,
    );
    assert!(orders.iter().all(|o| o.client_order_id.starts_with("qd-")));
}
