//! Batch-1 decision latency (`--decision`): the host forward the backtest and the paper trader
//! run once per bar, timed call by call after a warm-up (p50 and p99 of the calls). Cases: the
//! MLP (1024, 512, 256) on the single-symbol observation (obs 1859), beside PyTorch eager at
//! batch 1 under `no_grad` (`--torch`), and the seed's GRU (hidden 256 × 2 layers, heads 128)
//! on a 10-symbol portfolio's observation (the configured universe's first ten): one decision
//! covers every symbol.

use candle_core::Device;
use quantdeck::engine::gru::{GruNet, GruSpec};
use quantdeck::engine::host_gru::HostGru;
use quantdeck::engine::{ActorCritic, HostPolicy};
use quantdeck::features::portfolio::PortfolioSpec;
use quantdeck::sim::portfolio::N_REGIMES;
use std::process::Command;
use std::time::Instant;

/// p50 and p99 in µs of `calls` timed calls after `calls / 10` untimed ones.
fn latency(policy: &HostPolicy, obs: &[f32], calls: usize) -> (f64, f64) {
    let mut sink = 0usize;
    for _ in 0..calls / 10 {
        sink += policy.act(obs).0;
    }
    let mut t: Vec<f64> = (0..calls)
        .map(|_| {
            let s = Instant::now();
            sink += policy.act(std::hint::black_box(obs)).0;
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    std::hint::black_box(sink);
    t.sort_by(f64::total_cmp);
    (t[calls / 2], t[calls * 99 / 100])
}

/// PyTorch eager's p50 and p99 (µs) for the same MLP at batch 1.
fn torch_mlp(python: &str, obs: usize, hidden: &[usize], calls: usize, threads: usize) -> String {
    let h: Vec<String> = hidden.iter().map(|x| x.to_string()).collect();
    let script = format!(
        "import time, torch\n\
         torch.set_num_threads({threads})\n\
         dims = [{obs}] + [{h}]\n\
         layers = []\n\
         for a, b in zip(dims, dims[1:]): layers += [torch.nn.Linear(a, b), torch.nn.Tanh()]\n\
         trunk = torch.nn.Sequential(*layers)\n\
         actor, critic = torch.nn.Linear(dims[-1], 8), torch.nn.Linear(dims[-1], 1)\n\
         x = torch.randn(1, {obs})\n\
         def act():\n\
         \x20   with torch.no_grad():\n\
         \x20       f = trunk(x)\n\
         \x20       p = torch.softmax(actor(f), -1)\n\
         \x20       critic(f)\n\
         \x20       return int(p.argmax())\n\
         for _ in range({calls} // 10): act()\n\
         t = []\n\
         for _ in range({calls}):\n\
         \x20   s = time.perf_counter(); act(); t.append((time.perf_counter() - s) * 1e6)\n\
         t.sort()\n\
         print(f'{{t[len(t) // 2]:.1f}} / {{t[len(t) * 99 // 100]:.1f}}')\n",
        h = h.join(", ")
    );
    match Command::new(python).args(["-c", &script]).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => format!("failed: {}", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => format!("cannot run {python}: {e}"),
    }
}

pub fn run(cfg: &quantdeck::config::Config, torch: Option<&str>, threads: usize) {
    let calls = 2000;
    let (obs_dim, hidden) = (1859, [1024, 512, 256]);
    let model = ActorCritic::new(obs_dim, &hidden, 8, 1, &Device::Cpu).expect("MLP");
    let mlp = HostPolicy::from_model(&model).expect("host MLP");
    let obs: Vec<f32> = (0..obs_dim)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    let (p50, p99) = latency(&mlp, &obs, calls);
    println!("decision latency, batch 1, {calls} calls (p50 / p99):");
    println!("  MLP {hidden:?}, obs {obs_dim}: quantdeck {p50:.1} / {p99:.1} µs");
    if let Some(py) = torch {
        let t = torch_mlp(py, obs_dim, &hidden, calls, threads);
        println!("  MLP {hidden:?}, obs {obs_dim}: torch eager ({threads} threads) {t} µs");
    }
    // The configured universe's first ten symbols: a 10-symbol portfolio's layout.
    let all = PortfolioSpec::from_config(cfg).expect("portfolio layout");
    let ten = &all.symbols[..all.symbols.len().min(10)];
    let ps = PortfolioSpec::new(ten, all.timeframe, all.window, all.lookback);
    let spec = GruSpec {
        seq_len: ps.seq_len(),
        step_dim: ps.step_dim(),
        tail_dim: ps.tail_dim(),
        hidden: 256,
        layers: 2,
        head_hidden: 128,
        n_actions: N_REGIMES,
    };
    let net = GruNet::new(spec.clone());
    let theta = net.init_theta(1, &Device::Cpu).expect("GRU init");
    let host =
        HostGru::new(spec.clone(), net.host_tensors(&theta).expect("tensors")).expect("host GRU");
    let gru = HostPolicy::Gru(Box::new(host));
    let obs: Vec<f32> = (0..spec.obs_dim())
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    let (p50, p99) = latency(&gru, &obs, calls / 4);
    println!(
        "  portfolio GRU (hidden 256 × 2, {} symbols, obs {}): quantdeck {p50:.0} / {p99:.0} µs",
        ps.n_symbols(),
        spec.obs_dim()
    );
}
