//! How long one decision takes: `cargo bench --bench decision [-- --torch PYTHON] [--iters N]`.
//!
//! 1. Batch-1 policy latency — one observation of the default layout (58 features × 32 bars + 3
//!    = 1,859 values) through `HostPolicy::act` (the forward pass, softmax and arg-max every
//!    evaluator and the paper trader run per bar), for the MLP at (256, 128, 64), (1024, 512,
//!    256) and the seed's production (2048, 1024, 512, 256), on 1 and then 2 threads. With
//!    `--torch`, the same network in PyTorch eager (`benches/decision_torch_ref.py`,
//!    `torch.inference_mode`, the same thread count) is timed right after each.
//! 2. A 10-symbol portfolio decision — `live::portfolio::PortfolioSlot::decide` at each new bar
//!    time of a 10-member synthetic universe: the trailing history aligned into a panel, the
//!    portfolio features, the observation, the policy (the MLP and the seed's GRU, hidden 256 × 2)
//!    and the regime's targets. What the daemon does per bar time before its orders.
//!
//! Latencies are per decision: p50 / p99 / mean in µs over `--iters` timed calls (default 3,000)
//! after 300 warm-up calls.

use candle_core::Device;
use chrono::NaiveDate;
use quantdeck::config::{self, Encoder};
use quantdeck::data::synthetic;
use quantdeck::engine::gru::GruSpec;
use quantdeck::engine::host_gru::HostGru;
use quantdeck::engine::{ActorCritic, HostPolicy};
use quantdeck::features::portfolio::PortfolioSpec;
use quantdeck::live::portfolio::PortfolioSlot;
use quantdeck::market::{AssetClass, Bar, Symbol, Timeframe};
use quantdeck::rng::Rng;
use std::process::Command;
use std::time::Instant;

const OBS: usize = 1859;
const WARMUP: usize = 300;

struct Args {
    torch: Option<String>,
    iters: usize,
}

fn args() -> Args {
    let mut a = Args {
        torch: None,
        iters: 3000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--torch" => a.torch = it.next(),
            "--iters" => a.iters = it.next().and_then(|v| v.parse().ok()).expect("--iters N"),
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

/// p50, p99 and mean of `samples` (µs).
fn summary(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    (at(0.5), at(0.99), mean)
}

fn time_calls(iters: usize, mut f: impl FnMut(usize)) -> (f64, f64, f64) {
    for i in 0..WARMUP {
        f(i);
    }
    let samples = (0..iters)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    summary(samples)
}

fn mlp_latency(hidden: &[usize], iters: usize) -> (f64, f64, f64) {
    let model = ActorCritic::new(OBS, hidden, 8, 7, &Device::Cpu).expect("model");
    let policy = HostPolicy::from_model(&model).expect("host policy");
    let mut rng = Rng::new(11);
    // A few distinct observations, so no call is answered from a warm cache of the last input.
    let obs: Vec<Vec<f32>> = (0..16)
        .map(|_| (0..OBS).map(|_| rng.normal() as f32).collect())
        .collect();
    let mut sink = 0usize;
    let r = time_calls(iters, |i| sink += policy.act(&obs[i % obs.len()]).0);
    std::hint::black_box(sink);
    r
}

fn torch_latency(
    python: &str,
    hidden: &[usize],
    iters: usize,
    threads: usize,
) -> Option<(f64, f64, f64)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/decision_torch_ref.py");
    let hidden: Vec<String> = hidden.iter().map(|h| h.to_string()).collect();
    let out = Command::new(python)
        .arg(script)
        .args(["--obs", &OBS.to_string(), "--hidden", &hidden.join(",")])
        .args([
            "--iters",
            &iters.to_string(),
            "--warmup",
            &WARMUP.to_string(),
        ])
        .args(["--threads", &threads.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<f64> = text
        .lines()
        .last()?
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (out.status.success() && nums.len() == 3).then(|| (nums[0], nums[1], nums[2]))
}

fn main() {
    let a = args();
    println!(
        "batch-1 decision, obs {OBS}, {} calls (µs: p50 / p99 / mean)",
        a.iters
    );
    for hidden in [
        vec![256, 128, 64],
        vec![1024, 512, 256],
        vec![2048, 1024, 512, 256],
    ] {
        println!("  MLP {hidden:?}");
        for threads in [1, 2] {
            // quantdeck's host forward splits only the largest products over its threads.
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            let ours = pool.install(|| mlp_latency(&hidden, a.iters));
            print!(
                "    {threads} thread(s): quantdeck {:.1} / {:.1} / {:.1}",
                ours.0, ours.1, ours.2
            );
            match a
                .torch
                .as_deref()
                .map(|py| torch_latency(py, &hidden, a.iters, threads))
            {
                Some(Some(t)) => println!(
                    "; torch eager {:.1} / {:.1} / {:.1}; p50 ratio {:.2}x",
                    t.0,
                    t.1,
                    t.2,
                    t.0 / ours.0
                ),
                Some(None) => println!("; the PyTorch reference failed"),
                None => println!(),
            }
        }
    }
    portfolio_decisions(a.iters.min(1000));
}

/// A 10-member universe of daily bars with enough history for the lookback and the window, then
/// one decision per new bar time.
fn portfolio_decisions(iters: usize) {
    let cfg = config::load(None, None).expect("default config");
    let names: Vec<String> = (1..=10).map(|i| format!("SYNP{i:02}")).collect();
    let spec = PortfolioSpec::new(&names, Timeframe::Day, cfg.portfolio.window, 20);
    // Enough daily bars for the history, the warm-up and every timed decision.
    let start = NaiveDate::from_ymd_opt(2012, 1, 3).expect("date");
    let end = NaiveDate::from_ymd_opt(2024, 12, 31).expect("date");
    let symbols: Vec<Symbol> = names
        .iter()
        .map(|n| Symbol {
            name: n.clone(),
            class: AssetClass::Equity,
        })
        .collect();
    println!(
        "10-symbol portfolio decision (obs {} = {} × {} + {}; µs: p50 / p99 / mean over {iters})",
        spec.obs_dim(),
        spec.seq_len(),
        spec.step_dim(),
        spec.tail_dim()
    );
    for encoder in [Encoder::Mlp, Encoder::Gru] {
        let policy = match encoder {
            Encoder::Mlp => {
                let m = ActorCritic::new(spec.obs_dim(), &cfg.ppo.hidden_dims, 12, 3, &Device::Cpu)
                    .expect("model");
                HostPolicy::from_model(&m).expect("host")
            }
            Encoder::Gru => {
                let g = GruSpec::from_config(
                    &cfg.ppo,
                    (spec.seq_len(), spec.step_dim(), spec.tail_dim()),
                    12,
                );
                let net = quantdeck::engine::gru::GruNet::new(g.clone());
                let theta = net.init_theta(3, &Device::Cpu).expect("init");
                let host =
                    HostGru::new(g, net.host_tensors(&theta).expect("tensors")).expect("gru");
                HostPolicy::Gru(Box::new(host))
            }
        };
        let mut slot = PortfolioSlot::new("bench", spec.clone(), symbols.clone(), policy);
        let need = slot.history_needed();
        // The members' own synthetic daily bars (on the session calendar), bar time by bar time.
        let series: Vec<Vec<Bar>> = symbols
            .iter()
            .map(|s| synthetic::generate(&cfg.synthetic, s, Timeframe::Day, start, end))
            .collect::<anyhow::Result<_>>()
            .expect("synthetic bars");
        let n = series.iter().map(Vec::len).min().unwrap_or(0);
        assert!(n >= need + 5 + WARMUP + iters, "{n} bars are too few");
        let feed = |slot: &mut PortfolioSlot, k: usize| {
            for (i, s) in series.iter().enumerate() {
                slot.push(i, s[k]);
            }
            series[0][k].ts
        };
        for k in 0..need + 5 {
            feed(&mut slot, k);
        }
        let tail = vec![0.0f32; spec.tail_dim()];
        let mut k = need + 5;
        let mut decided = 0usize;
        let r = time_calls(iters, |_| {
            let at = feed(&mut slot, k);
            k += 1;
            if let Ok(Some(_)) = slot.decide(at, &tail, 0.4) {
                decided += 1;
            }
        });
        assert_eq!(decided, WARMUP + iters, "every bar time decided");
        println!(
            "  {encoder:?} policy: {:.1} / {:.1} / {:.1} (bar push included; p99 {:.2} ms)",
            r.0,
            r.1,
            r.2,
            r.1 / 1000.0
        );
    }
}
