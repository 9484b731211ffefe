//! Throughput figures: `cargo bench --bench pipeline` (release) or, reusing the test build,
//! `cargo bench --profile dev --bench pipeline`. Each figure is the median of several runs.

use candle_core::{Device, Tensor};
use chrono::NaiveDate;
use quantdeck::config::{self, SyntheticConfig};
use quantdeck::data::{synthetic, Store};
use quantdeck::engine::{env::VecEnv, ActorCritic, HostPolicy};
use quantdeck::eval::{walkforward, Backtester};
use quantdeck::features::events::EventTable;
use quantdeck::features::{self, FeatureSpec};
use quantdeck::jobs::{self, CancelToken, JobRequest};
use quantdeck::market::{Symbol, Timeframe};
use quantdeck::paths::Paths;
use quantdeck::sim::{Rules, TradingRules};
use std::time::Instant;

#[path = "common/timing.rs"]
mod timing;
use timing::median;

#[path = "../tests/integration/common/tui_fixture.rs"]
mod tui_fixture;

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let want = |name: &str| filter.is_empty() || name.contains(&filter);
    let cfg = config::load(Some("quick_test"), None).expect("config");
    let sym = Symbol::crypto("SYNX/USD");
    let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).expect("date");
    // ~140k 15Min crypto bars: four years.
    let bars = synthetic::generate(
        &SyntheticConfig::default(),
        &sym,
        Timeframe::Minute(15),
        d(2021, 1, 1),
        d(2024, 12, 29),
    )
    .expect("bars");
    println!("series: {} bars", bars.len());

    if want("alpaca-json") {
        // One full Alpaca page (10,000 bars, multi-symbol shape) parsed into bars.
        let page: Vec<serde_json::Value> = bars[..10_000]
            .iter()
            .map(|b| serde_json::json!({"t": b.ts.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "o": b.open, "h": b.high, "l": b.low, "c": b.close, "v": b.volume, "n": 12, "vw": b.close}))
            .collect();
        let body = serde_json::json!({"bars": {"SYNX/USD": page}, "next_page_token": "abc"})
            .to_string()
            .into_bytes();
        let s = median(
            || drop(quantdeck::data::alpaca::parse_bars_page(&body).expect("parse")),
            7,
        );
        println!(
            "alpaca JSON page of 10,000 bars ({} KB): {:.1} ms ({:.2} M bars/s)",
            body.len() / 1024,
            s * 1e3,
            10_000.0 / s / 1e6
        );
    }
    if want("features") {
        let spec = FeatureSpec::current(32, &EventTable::embedded());
        let s = median(
            || {
                drop(features::compute(
                    &spec,
                    &sym,
                    &bars,
                    &EventTable::embedded(),
                ))
            },
            5,
        );
        println!(
            "features/seed-58 {} bars: {:.1} ms ({:.1} M bars/s)",
            bars.len(),
            s * 1e3,
            bars.len() as f64 / s / 1e6
        );
    }
    if want("parquet") {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::new(dir.path());
        let w = median(
            || {
                drop(
                    store
                        .write(&sym, Timeframe::Minute(15), &bars, "bench")
                        .expect("write"),
                )
            },
            5,
        );
        let r = median(
            || drop(store.read(&sym, Timeframe::Minute(15)).expect("read")),
            5,
        );
        println!(
            "parquet write {} bars: {:.1} ms; read: {:.1} ms",
            bars.len(),
            w * 1e3,
            r * 1e3
        );
    }
    let spec = FeatureSpec::current(cfg.features.window, &EventTable::embedded());
    let fm = features::compute(&spec, &sym, &bars, &EventTable::embedded());
    let closes: Vec<f64> = bars.iter().map(|b| b.close).collect();
    if want("env") {
        let rules = Rules::training(&cfg.env, &cfg.backtest, sym.class);
        let n = cfg.ppo.n_envs;
        let mut env = VecEnv::new(
            &spec,
            &fm,
            &closes,
            0..bars.len(),
            rules,
            256,
            1000.0,
            n,
            1,
            &Device::Cpu,
        )
        .expect("env");
        let actions = Tensor::new(
            &(0..n as u32).map(|i| i % 8).collect::<Vec<_>>()[..],
            &Device::Cpu,
        )
        .expect("t");
        let steps = 200;
        let s = median(
            || {
                for _ in 0..steps {
                    env.observe().expect("obs");
                    env.step(&actions).expect("step");
                }
            },
            3,
        );
        println!(
            "env observe+step ({n} envs): {:.0} env-steps/s",
            (steps * n) as f64 / s
        );
    }
    if want("walkforward") {
        let model = ActorCritic::new(spec.obs_dim(), &cfg.ppo.hidden_dims, 8, 1, &Device::Cpu)
            .expect("model");
        let policy = HostPolicy::from_model(&model).expect("policy");
        let rules = TradingRules::from_config(&cfg);
        let bt = Backtester::as_traded(&spec, &fm, &closes, sym.class, &rules, true);
        let ts: Vec<_> = bars.iter().map(|b| b.ts).collect();
        let test = bars.len() * 85 / 100..bars.len();
        let momentum = quantdeck::eval::MomentumRule::fit(&bt, 0..bars.len() * 70 / 100);
        let s = median(
            || {
                for (i, r) in walkforward::folds(test.clone(), 5).into_iter().enumerate() {
                    walkforward::run_fold(&bt, &policy, i + 1, r, &ts, momentum);
                }
            },
            3,
        );
        println!(
            "walk-forward 5 folds over {} bars (hidden {:?}): {:.0} ms",
            test.len(),
            cfg.ppo.hidden_dims,
            s * 1e3
        );
    }
    if want("tui") {
        // The full fixture state (every pane populated) plus a long training run of 2,000
        // updates, drawn into a 160×45 buffer: the cost of one redraw.
        use quantdeck::jobs::{events::UpdateMetrics, Event};
        use ratatui::{backend::TestBackend, Terminal};
        let mut app = tui_fixture::full_app();
        let mut f = tui_fixture::feed(&mut app, tui_fixture::TRAIN);
        f.seq = 10_000;
        for u in 1..=2000 {
            let m = UpdateMetrics {
                update: u,
                updates: 2000,
                timesteps: u as u64 * 8192,
                sps: 12_000.0,
                mean_reward: (u as f64).ln(),
                lr: 3e-4,
                ..Default::default()
            };
            f.send(u as i64, Event::Update(m));
        }
        let mut term = Terminal::new(TestBackend::new(160, 45)).expect("terminal");
        for pane in quantdeck::tui::Pane::ALL {
            app.pane = pane;
            let s = median(
                || {
                    for _ in 0..20 {
                        term.draw(|fr| quantdeck::tui::view(fr, &app))
                            .expect("draw");
                    }
                },
                5,
            ) / 20.0;
            println!("tui frame {:?} 160x45: {:.2} ms", pane, s * 1e3);
        }
    }
    if want("train") {
        // The quick_test mode end to end (fetch included) on the default synthetic SYNA.
        let dir = tempfile::tempdir().expect("tmp");
        let paths = Paths::under(dir.path());
        paths.ensure().expect("dirs");
        let mut cfg = cfg.clone();
        cfg.ppo.device = "cpu".into();
        let s = Instant::now();
        let id = jobs::run_job(
            &paths,
            &cfg,
            &JobRequest::Train {
                symbol: "SYNA".into(),
                group: None,
            },
            &CancelToken::new(),
            None,
        )
        .expect("train");
        let secs = s.elapsed().as_secs_f64();
        let m = jobs::RunDir::open(&paths, &id)
            .expect("run")
            .read_manifest()
            .expect("manifest");
        let (steps, sps) = match m.summary {
            jobs::JobSummary::Train { timesteps, sps, .. } => (timesteps, sps),
            _ => (0, 0.0),
        };
        println!("train quick_test SYNA: {secs:.1} s total, {steps} steps, {sps:.0} steps/s");
    }
}
