//! Shared setup for integration tests: a tiny, fast configuration on the synthetic market.

#![allow(dead_code)]

pub mod alternating;
pub mod desk;
pub mod fake_alpaca;
pub mod tui_fixture;
pub mod tui_screen;

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
    // Every periodic checkpoint stays (tests of pruning set their own rule).
    cfg.ppo.keep_every = 1;
    cfg.live.bars_per_second = 0.0;
    // Validations trade as paper would: an untrained policy seldom reaches the 0.40 confidence
    // threshold, and these tests are about training's mechanics, so every choice is acted on.
    cfg.live.confidence_threshold = 0.0;
    config::validate(&cfg).expect("tiny config is valid");
    cfg
}

pub fn temp_home() -> (tempfile::TempDir, Paths) {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = Paths::under(dir.path());
    paths.ensure().expect("create dirs");
    (dir, paths)
}

/// The synthetic series of `symbol` as `ppo::train` takes it, split as the config says.
pub fn train_data(cfg: &Config, symbol: quantdeck::market::Symbol) -> quantdeck::engine::TrainData {
    use quantdeck::features::{events::EventTable, FeatureSpec};
    let date = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("config date");
    let bars = quantdeck::data::synthetic::generate(
        &cfg.synthetic,
        &symbol,
        cfg.data.timeframe,
        date(&cfg.data.start),
        date(&cfg.data.end),
    )
    .expect("synthetic bars");
    let events = EventTable::embedded();
    let spec = FeatureSpec::current(cfg.features.window, &events);
    let fm = quantdeck::features::compute(&spec, &symbol, &bars, &events);
    let (train, validation) =
        quantdeck::engine::ppo::split(bars.len(), cfg.data.train_split, cfg.data.validation_split);
    quantdeck::engine::TrainData {
        symbol,
        timeframe: cfg.data.timeframe,
        source: quantdeck::data::synthetic::SOURCE.into(),
        sha256: quantdeck::data::store::hash_bars(&bars),
        bars,
        spec,
        fm,
        train,
        validation,
    }
}

/// Runs a training job to completion and returns its run id.
pub fn train(paths: &Paths, cfg: &Config, symbol: &str) -> String {
    let req = quantdeck::jobs::JobRequest::Train {
        symbol: symbol.into(),
        group: None,
    };
    quantdeck::jobs::run_job(paths, cfg, &req, &quantdeck::jobs::CancelToken::new(), None)
        .expect("training run")
}

/// Drives the paper daemon on the simulated broker through `bars[start..]` under `trading` and
/// holds it against the backtest `res` of the same bars and rules: the equity before each
/// decision, bar for bar, and every fill (bar, signed quantity, price). The backtest's last
/// point is a mark only (the bar after its last decision), so the daemon is not asked to decide
/// it. Returns the broker's orders.
pub fn assert_paper_matches_backtest(
    sym: &quantdeck::market::Symbol,
    spec: &quantdeck::features::FeatureSpec,
    model: &quantdeck::engine::ActorCritic,
    trading: quantdeck::sim::TradingRules,
    bars: &[quantdeck::market::Bar],
    start: usize,
    res: &quantdeck::eval::BacktestResult,
) -> Vec<quantdeck::broker::types::Order> {
    use quantdeck::broker::{Broker, SimBroker, SimCosts};
    use quantdeck::live::{journal::Journal, state::DaemonState};
    let dir = tempfile::tempdir().expect("tmp");
    let policy = quantdeck::engine::HostPolicy::from_model(model).expect("policy");
    let allow_short = sym.class == quantdeck::market::AssetClass::Equity;
    let broker = SimBroker::open(
        trading.initial_cash,
        SimCosts {
            slippage: trading.slippage,
            commission: trading.commission,
        },
        allow_short,
        None,
    )
    .expect("broker");
    let state = DaemonState::new("t", broker.kind(), trading.initial_cash, chrono::Utc::now());
    let book = quantdeck::sim::Account::new(&trading.account(allow_short));
    let mut slot = quantdeck::live::ModelSlot::new(
        sym.clone(),
        quantdeck::market::Timeframe::Minute(15),
        "train-x",
        spec.clone(),
        std::sync::Arc::new(quantdeck::features::events::EventTable::embedded()),
        policy,
        book,
        allow_short,
    );
    for b in &bars[start + 1 - slot.history_needed()..start] {
        slot.push(*b);
    }
    let settings = quantdeck::live::Settings {
        rules: trading,
        commission: trading.commission,
        order_timeout: std::time::Duration::from_secs(30),
        extended_hours: false,
        late_bar_grace: chrono::Duration::seconds(10),
    };
    let sink = quantdeck::jobs::EventSink::detached("t");
    let cancel = quantdeck::jobs::CancelToken::new();
    let out = quantdeck::jobs::PaperOutput::new(&sink, &cancel);
    let journal = Journal::open(&dir.path().join("journal.jsonl")).expect("journal");
    let mut d = quantdeck::live::Daemon::new(
        dir.path().to_path_buf(),
        &out,
        broker,
        settings,
        state,
        journal,
        quantdeck::live::Strategy::Models(vec![slot]),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let orders = rt.block_on(async {
        let last = res.equity.len() - 1;
        for (k, expect) in res.equity.iter().enumerate() {
            let bar = bars[start + k];
            let before = d
                .book(&sym.name)
                .map(|b| b.cash + b.qty * bar.close)
                .expect("book");
            assert!(
                (before - expect).abs() < 1e-6 * expect,
                "bar {k}: paper {before} vs backtest {expect}"
            );
            if k == last {
                break;
            }
            d.process_bar(&sym.name, bar).await.expect("paper step");
            let broker_equity = quantdeck::broker::simulated::f(
                d.broker().account().await.expect("account").equity,
            );
            let book = d.book(&sym.name).expect("book").equity;
            assert!(
                (broker_equity - book).abs() < 1e-6 * expect,
                "bar {k}: broker {broker_equity} vs book {book}"
            );
        }
        d.broker()
            .orders_since(chrono::DateTime::<chrono::Utc>::MIN_UTC)
            .await
            .expect("orders")
    });
    let filled: Vec<(chrono::DateTime<chrono::Utc>, f64, f64)> = orders
        .iter()
        .filter(|o| o.filled_qty > rust_decimal::Decimal::ZERO)
        .map(|o| {
            let q = quantdeck::broker::simulated::f(o.filled_qty);
            let sign = if o.side == quantdeck::broker::types::Side::Buy {
                1.0
            } else {
                -1.0
            };
            let px = o
                .filled_avg_price
                .map(quantdeck::broker::simulated::f)
                .unwrap_or(0.0);
            (o.filled_at.expect("filled at"), sign * q, px)
        })
        .collect();
    assert_eq!(
        filled.len(),
        res.fills.len(),
        "the daemon filled {} orders, the backtest {}",
        filled.len(),
        res.fills.len()
    );
    for (f, (at, qty, px)) in res.fills.iter().zip(&filled) {
        assert_eq!(bars[f.bar].ts, *at, "fill bar");
        assert!(
            (f.qty - qty).abs() <= 1e-6 * f.qty.abs().max(1.0),
            "qty {} vs {qty}",
            f.qty
        );
        assert!(
            (f.price - px).abs() <= 1e-9 * f.price,
            "price {} vs {px}",
            f.price
        );
    }
    orders
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

/// The run directories under `home/runs` whose names start with `prefix`, oldest first.
pub fn runs_named(home: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<std::path::PathBuf> = std::fs::read_dir(home.join("runs"))
        .expect("runs folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    v.sort();
    v
}

/// Every event a run recorded, in order.
pub fn run_events(run: &std::path::Path) -> Vec<quantdeck::jobs::EventRecord> {
    std::fs::read_to_string(run.join("events.jsonl"))
        .expect("events.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event"))
        .collect()
}

/// Runs the binary with `--config CONFIG` and `args` under `home`, asserting success; its
/// stdout and stderr.
pub fn qd_ok(home: &std::path::Path, config: &str, args: &[&str]) -> String {
    let mut all = vec!["--config", config];
    all.extend_from_slice(args);
    let o = qd(home, &all);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    text(&o)
}
