//! Training throughput (env-steps/s) of `ppo::train` at the default and quick_test shapes, on the
//! default synthetic SYNA (≈6,500 15-minute bars, obs 58×32+3 = 1859).
//!
//!   cargo bench --bench training                         # both shapes
//!   cargo bench --bench training -- quick_test           # one shape
//!   cargo bench --bench training -- --torch /work/venv-torch/bin/python --reps 3
//!
//!   cargo bench --bench training -- --phases             # where an update's time goes
//!   cargo bench --bench training -- --portfolio          # the portfolio env (12 symbols, obs 2415)
//!   cargo bench --bench training -- --portfolio --oos 30 quick_test  # + 30 updates, then out of sample
//!   cargo bench --bench training -- --portfolio --encoder gru --gru-hidden 64 quick_test  # the GRU
//!   cargo bench --bench training -- --portfolio --encoder gru --envs 16 quick_test  # fewer envs
//!   cargo bench --bench training -- --portfolio --encoder gru --torch PY quick_test  # + PyTorch's GRU
//!   cargo bench --bench training -- --threads 1 --torch … # both sides on one core
//!
//! With `--torch PYTHON`, each repetition runs quantdeck and then `benches/ppo_torch_ref.py` (the
//! CleanRL-style PyTorch eager reference, tanh like quantdeck's network) at the same shape, back
//! to back; it reports the median of the per-repetition ratios and the ratio of each side's
//! fastest repetition. The first update of every run is warm-up and is not timed (the reference
//! does the same).

use chrono::NaiveDate;
use quantdeck::config::{self, Config};
use quantdeck::data::{store::hash_bars, synthetic};
use quantdeck::engine::ppo::{self, CheckpointReason, TrainData, TrainObserver, UpdateMetrics};
use quantdeck::engine::HostPolicy;
use quantdeck::features::portfolio::PortfolioSpec;
use quantdeck::features::{self, events::EventTable, FeatureSpec};
use quantdeck::market::Symbol;
use std::path::Path;
use std::process::Command;

#[path = "common/timing.rs"]
mod timing;

#[path = "common/phases.rs"]
mod phases;

#[path = "common/portfolio.rs"]
mod portfolio;

/// Collects the per-update throughput; never validates (the bench times training only).
struct Probe(Vec<f64>);

impl TrainObserver for Probe {
    fn on_update(&mut self, m: &UpdateMetrics) {
        self.0.push(m.sps);
    }
    fn validate(&mut self, _: usize, _: &HostPolicy) -> anyhow::Result<Option<f64>> {
        Ok(None)
    }
    fn on_checkpoint(&mut self, _: &Path, _: usize, _: CheckpointReason) {}
    fn should_stop(&self) -> bool {
        false
    }
}

/// The 1-minute load average: figures taken while other work runs are noisy.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn data(cfg: &Config) -> TrainData {
    let sym = Symbol::equity("SYNA");
    let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("config date");
    let bars = synthetic::generate(
        &cfg.synthetic,
        &sym,
        cfg.data.timeframe,
        date(&cfg.data.start),
        date(&cfg.data.end),
    )
    .expect("synthetic bars");
    let events = EventTable::embedded();
    let spec = FeatureSpec::current(cfg.features.window, &events);
    let fm = features::compute(&spec, &sym, &bars, &events);
    let (train, validation) =
        ppo::split(bars.len(), cfg.data.train_split, cfg.data.validation_split);
    TrainData {
        symbol: sym,
        timeframe: cfg.data.timeframe,
        source: synthetic::SOURCE.into(),
        sha256: hash_bars(&bars),
        bars,
        spec,
        fm,
        train,
        validation,
    }
}

/// Median env-steps/s of `updates` timed updates (after one warm-up update).
fn quantdeck_sps(cfg: &Config, data: &TrainData, updates: usize) -> f64 {
    let mut cfg = cfg.clone();
    cfg.ppo.device = "cpu".into();
    cfg.ppo.total_timesteps = (updates as u64 + 1) * cfg.ppo.steps_per_update();
    cfg.ppo.validation_interval = usize::MAX;
    let dir = tempfile::tempdir().expect("tmp");
    let mut probe = Probe(Vec::new());
    ppo::train(
        &cfg,
        data,
        &candle_core::Device::Cpu,
        dir.path(),
        &mut probe,
    )
    .expect("train");
    median(probe.0[1..].to_vec())
}

fn torch_sps(
    python: &str,
    cfg: &Config,
    obs_features: usize,
    updates: usize,
    threads: usize,
) -> f64 {
    let p = &cfg.ppo;
    let hidden: Vec<String> = p.hidden_dims.iter().map(|h| h.to_string()).collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ppo_torch_ref.py");
    let out = Command::new(python)
        .arg(script)
        .args(["--act", "tanh"])
        .args(["--envs", &p.n_envs.to_string()])
        .args(["--steps", &p.n_steps.to_string()])
        .args(["--epochs", &p.epochs.to_string()])
        .args(["--mb", &p.minibatch.to_string()])
        .args(["--hidden", &hidden.join(",")])
        .args(["--window", &cfg.features.window.to_string()])
        .args(["--features", &obs_features.to_string()])
        .args(["--updates", &updates.to_string()])
        .args(["--threads", &threads.to_string()])
        .output()
        .expect("run the PyTorch reference");
    read_figure(out)
}

/// `benches/ppo_torch_gru_ref.py` at the portfolio GRU shape of `cfg`: env-steps/s.
fn torch_gru_sps(
    python: &str,
    cfg: &Config,
    spec: &PortfolioSpec,
    updates: usize,
    threads: usize,
) -> f64 {
    let p = &cfg.ppo;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ppo_torch_gru_ref.py");
    let n = |x: usize| x.to_string();
    let mut cmd = Command::new(python);
    cmd.arg(script);
    for (flag, v) in [
        ("--envs", n(p.n_envs)),
        ("--steps", n(p.n_steps)),
        ("--epochs", n(p.epochs)),
        ("--critic-epochs", n(p.critic_epochs)),
        ("--mb", n(p.minibatch)),
        ("--hidden", n(p.gru_hidden)),
        ("--layers", n(p.gru_layers)),
        ("--head", n(p.gru_head_hidden)),
        ("--dropout", p.gru_dropout.to_string()),
        ("--seq", n(spec.seq_len())),
        ("--step-dim", n(spec.step_dim())),
        ("--tail", n(spec.tail_dim())),
        ("--updates", n(updates)),
        ("--threads", n(threads)),
    ] {
        cmd.args([flag, v.as_str()]);
    }
    read_figure(cmd.output().expect("run the PyTorch GRU reference"))
}

/// The env-steps/s a reference script prints last.
fn read_figure(out: std::process::Output) -> f64 {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "PyTorch reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.split(": ")
        .last()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the reference's figure from {text:?}"))
}

/// PyTorch's figures beside quantdeck's: medians and the median per-repetition ratio.
fn report_torch(ours: &[f64], theirs: &[f64], threads: usize, what: &str) {
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ratios: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a / b).collect();
    println!(
        "  torch {what} (eager, {threads} threads): {:.0} env-steps/s (median of [{}])\n  ratio quantdeck/torch: {:.2}x (median of [{}])",
        median(theirs.to_vec()),
        list(theirs),
        median(ratios.clone()),
        ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", ")
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    // Matmul threads for both sides (default 2, this machine's cores).
    let threads: usize = opt("--threads").and_then(|s| s.parse().ok()).unwrap_or(2);
    // SAFETY: first thing in main, before any thread exists (candle reads these lazily).
    unsafe {
        quantdeck::engine::device::prefer_single_threaded_elementwise();
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    quantdeck::engine::device::keep_freed_memory();
    let torch = opt("--torch");
    let reps: usize = opt("--reps").and_then(|s| s.parse().ok()).unwrap_or(3);
    let updates: usize = opt("--updates").and_then(|s| s.parse().ok()).unwrap_or(3);
    let show_phases = args.iter().any(|a| a == "--phases");
    let filter = args
        .iter()
        .enumerate()
        .find(|(i, a)| {
            !a.starts_with('-')
                && (*i == 0
                    || ![
                        "--torch",
                        "--reps",
                        "--updates",
                        "--threads",
                        "--oos",
                        "--encoder",
                        "--gru-hidden",
                        "--envs",
                    ]
                    .contains(&args[i - 1].as_str()))
        })
        .map(|(_, a)| a.clone())
        .unwrap_or_default();

    if args.iter().any(|a| a == "--portfolio") {
        let oos: Option<usize> = opt("--oos").and_then(|s| s.parse().ok());
        for mode in ["default", "quick_test"] {
            if !mode.contains(&filter) {
                continue;
            }
            let mut cfg = speed_shape(mode);
            if opt("--encoder").as_deref() == Some("gru") {
                cfg.ppo.encoder = config::Encoder::Gru;
            }
            if let Some(h) = opt("--gru-hidden").and_then(|s| s.parse().ok()) {
                cfg.ppo.gru_hidden = h;
            }
            // Fewer envs: a shape a slow network can be timed at.
            if let Some(n) = opt("--envs").and_then(|s| s.parse().ok()) {
                cfg.ppo.n_envs = n;
            }
            let data = portfolio::data(&cfg);
            let p = &cfg.ppo;
            let net = match p.encoder {
                config::Encoder::Mlp => format!("hidden {:?}", p.hidden_dims),
                config::Encoder::Gru => format!(
                    "gru hidden {} × {} layers, heads {}, dropout {}",
                    p.gru_hidden, p.gru_layers, p.gru_head_hidden, p.gru_dropout
                ),
            };
            let load_before = loadavg();
            let (mut all, mut theirs) = (Vec::new(), Vec::new());
            for _ in 0..reps {
                all.push(median(portfolio::sps(&cfg, &data, updates)));
                if let (Some(py), config::Encoder::Gru) = (&torch, p.encoder) {
                    theirs.push(torch_gru_sps(py, &cfg, &data.spec, updates, threads));
                }
            }
            println!(
                "portfolio {mode}: obs {}, {net}, {}x{} steps, {} epochs, minibatch {}; {threads} matmul threads\n  load average (1 min) {load_before} before, {} after\n  quantdeck: {:.0} env-steps/s (median of [{}])",
                data.spec.obs_dim(),
                p.n_envs,
                p.n_steps,
                p.epochs,
                p.minibatch,
                loadavg(),
                median(all.clone()),
                all.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ")
            );
            if !theirs.is_empty() {
                report_torch(&all, &theirs, threads, "GRU");
            }
            if let Some(n) = oos {
                portfolio::out_of_sample(&cfg, &data, n);
            }
        }
        return;
    }
    for mode in ["default", "quick_test"] {
        if !mode.contains(&filter) {
            continue;
        }
        let cfg = speed_shape(mode);
        let data = data(&cfg);
        let p = &cfg.ppo;
        let shape = format!(
            "{mode}: obs {}, hidden {:?}, {}x{} steps, {} epochs, minibatch {}",
            data.spec.obs_dim(),
            p.hidden_dims,
            p.n_envs,
            p.n_steps,
            p.epochs,
            p.minibatch
        );
        if show_phases {
            println!("{shape}: time per update, by phase");
            phases::run(&cfg, &data);
            continue;
        }
        let load_before = loadavg();
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..reps {
            ours.push(quantdeck_sps(&cfg, &data, updates));
            if let Some(py) = &torch {
                theirs.push(torch_sps(py, &cfg, data.fm.n_features, updates, threads));
            }
        }
        let fmt = |xs: &[f64]| {
            xs.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "{shape}; {threads} matmul threads\n  load average (1 min) {load_before} before, {} after\n  quantdeck: {:.0} env-steps/s (median of [{}])",
            loadavg(),
            median(ours.clone()),
            fmt(&ours)
        );
        if !theirs.is_empty() {
            let ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a / b).collect();
            // Each side's fastest repetition: the one least disturbed by other work (eager
            // PyTorch's threads slow down far more than quantdeck's when the cores are shared).
            let best = |xs: &[f64]| xs.iter().copied().fold(0.0, f64::max);
            println!(
                "  torch (tanh, eager, {threads} threads): {:.0} env-steps/s (median of [{}])\n  ratio quantdeck/torch: {:.2}x (median of [{}])",
                median(theirs.clone()),
                fmt(&theirs),
                median(ratios.clone()),
                ratios
                    .iter()
                    .map(|r| format!("{r:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!(
                "  best repetitions: quantdeck {:.0}, torch {:.0}: ratio {:.2}x",
                best(&ours),
                best(&theirs),
                best(&ours) / best(&theirs)
            );
        }
    }
}

/// A mode's configuration at the shape the speed figures are measured at (issue 17's table and
/// the README's): quick_test at 4 PPO epochs, as it trained until its epochs were doubled for
/// learning (README: "Does it learn?"), so that figures stay comparable across rounds.
fn speed_shape(mode: &str) -> config::Config {
    let mut cfg = config::load((mode != "default").then_some(mode), None).expect("config");
    if mode == "quick_test" {
        cfg.ppo.epochs = 4;
    }
    cfg
}
