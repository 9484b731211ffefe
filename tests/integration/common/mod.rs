//! Shared setup for integration tests: a tiny, fast configuration on the synthetic market.

#![allow(dead_code)]

pub mod fake_alpaca;
pub mod tui_fixture;

use quantdeck::config::{self, Config};
use quantdeck::paths::Paths;

/// A configuration small enough to train in seconds in a debug build.
pub fn tiny_config() -> Config {
    let mut cfg = config::load(Some("quick_test"), None).expect("built-in config loads");
    cfg.universe.equities = vec!["SYNA".into()];
    cfg.universe.crypto = vec!["SYNX/USD".into()];
    cfg.data.start = "2024-01-02".into();
    cfg.data.end = "2024-03-28".into();
    cfg.features.window = 8;
    cfg.ppo.device = "cpu".into();
    cfg.ppo.n_envs = 16;
    cfg.ppo.n_steps = 32;
    cfg.ppo.minibatch = 128;
    cfg.ppo.epochs = 2;
    cfg.ppo.total_timesteps = 4 * 16 * 32;
    cfg.ppo.validation_interval = 2;
    cfg.ppo.hidden_dims = vec![32, 16];
    cfg.env.episode_len = 64;
    cfg.live.bars_per_second = 0.0;
    config::validate(&cfg).expect("tiny config is valid");
    cfg
}

pub fn temp_home() -> (tempfile::TempDir, Paths) {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = Paths::under(dir.path());
    paths.ensure().expect("create dirs");
    (dir, paths)
}

/// Runs a training job to completion and returns its run id.
pub fn train(paths: &Paths, cfg: &Config, symbol: &str) -> String {
    let req = quantdeck::jobs::JobRequest::Train {
        symbol: symbol.into(),
    };
    quantdeck::jobs::run_job(paths, cfg, &req, &quantdeck::jobs::CancelToken::new(), None)
        .expect("training run")
}

/// Replays `bars[start..=end]` through a paper trader on the simulated broker and checks that
/// its equity, marked at each bar before it acts, equals the backtest's equity curve.
#[allow(clippy::too_many_arguments)]
pub fn assert_paper_matches_backtest(
    sym: &quantdeck::market::Symbol,
    spec: &quantdeck::features::FeatureSpec,
    model: &quantdeck::engine::ActorCritic,
    rules: quantdeck::sim::Rules,
    risk: quantdeck::sim::RiskRules,
    bars: &[quantdeck::market::Bar],
    start: usize,
    backtest_equity: &[f64],
) -> quantdeck::broker::SimBroker {
    use quantdeck::broker::Broker;
    let policy = quantdeck::engine::HostPolicy::from_model(model).expect("policy");
    let mut trader = quantdeck::live::PaperTrader::new(
        "t",
        sym.clone(),
        spec.clone(),
        quantdeck::features::events::EventTable::embedded(),
        policy,
        rules,
        risk,
        0.0,
    );
    let mut broker = quantdeck::broker::SimBroker::new(rules);
    trader.warm(&bars[start + 1 - trader.history_needed()..start]);
    for (k, expect) in backtest_equity.iter().enumerate() {
        let bar = &bars[start + k];
        broker.on_bar(&sym.name, bar);
        let step = trader.on_bar(&mut broker, bar).expect("paper step");
        assert!(step.action.is_some());
        assert!(
            (step.equity_before - expect).abs() < 1e-6 * expect,
            "bar {k}: paper {} vs backtest {expect}",
            step.equity_before
        );
        assert!(
            (broker.account().expect("account").equity - trader.book().equity).abs()
                < 1e-6 * expect
        );
    }
    broker
}

/// Runs the real binary with `--home HOME` and the given arguments.
pub fn qd(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_quantdeck"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("QUANTDECK_HOME")
        .output()
        .expect("run quantdeck")
}

/// stdout then stderr of a finished command.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs the real binary with `--home HOME`, the given arguments and extra environment variables
/// (set on the child only, so tests running in parallel never see each other's settings).
pub fn qd_env(home: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_quantdeck"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("QUANTDECK_HOME")
        .env_remove("ALPACA_KEYS_FILE")
        .envs(env.iter().copied())
        .output()
        .expect("run quantdeck")
}
