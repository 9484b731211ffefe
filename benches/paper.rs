//! The paper daemon's latency and idle cost: `cargo bench --bench paper` (release) or, reusing the
//! test build, `cargo bench --profile dev --bench paper`.
//!
//! The daemon runs as a real process (`quantdeck paper … --broker alpaca`) against the in-process
//! fake Alpaca on 127.0.0.1, fed an accelerated 1-minute bar stream. A model rewritten to trade on
//! every bar makes each closed 15-minute bar send an order; the latency is from the moment the
//! bar's last minute is pushed to the stream (its arrival) to the moment the fake receives
//! `POST /v2/orders` for it — features, policy, gates, broker rules, journal fsync and the HTTP
//! request included. Cases: a (256, 128, 64) model, a (1024, 512, 256) model, and a portfolio of
//! 10 symbols (the bar closes for all ten at once; each order's latency counts). Then the idle
//! daemon's CPU share and resident memory over 20 s without bars.

#[path = "../tests/integration/common/fake_alpaca/mod.rs"]
mod fake_alpaca;

#[path = "../tests/integration/common/alternating.rs"]
mod alternating;

use chrono::{DateTime, Duration, Utc};
use fake_alpaca::{FakeAlpaca, KEY_ID, SECRET};
use quantdeck::market::Bar;
use quantdeck::rng::Rng;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

fn qd(home: &Path, args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_quantdeck"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("QUANTDECK_HOME")
        .output()
        .expect("run quantdeck");
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

struct Case {
    name: &'static str,
    hidden: &'static str,
    symbols: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// CPU seconds (user + system) and resident memory (KiB) of a process.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    let hz = 100.0; // USER_HZ on Linux
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (ticks / hz, rss)
}

fn run_case(case: &Case, bars: usize) {
    let home = tempfile::tempdir().expect("tmp");
    let end = Utc::now() - Duration::days(3);
    let start = end - Duration::days(60);
    let names: Vec<String> = (0..case.symbols).map(|i| format!("SYN{i}/USD")).collect();
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let cfg = home.path().join("bench.toml");
    std::fs::write(
        &cfg,
        format!(
            "[universe]\nequities = []\ncrypto = [{}]\n[data]\nstart = \"{}\"\nend = \"{}\"\n[features]\nwindow = 32\n\
             [ppo]\ndevice = \"cpu\"\nn_envs = 8\nn_steps = 32\nminibatch = 64\nepochs = 1\nvalidation_interval = 1\nhidden_dims = [{}]\n\
             [gating]\nmin_trades = 1\nmin_days = 2\napproved = {{ fitness = -100.0, profit_factor = 0.0, consistency = 0.0, max_drawdown = 1.0 }}\n\
             review = {{ fitness = -100.0, profit_factor = 0.0, consistency = 0.0, max_drawdown = 1.0 }}\n\
             [backtest]\nstop_loss = 1.0\ntake_profit = 10.0\nposition_size = 0.05\n\
             [live]\nbroker = \"alpaca\"\nconfidence_threshold = 0.0\ncooldown_s = 0\ndaily_loss_limit = 1.0\nmax_position = 0.2\n",
            quoted.join(", "),
            start.format("%Y-%m-%d"),
            end.format("%Y-%m-%d"),
            case.hidden
        ),
    )
    .expect("config");
    let cfg = cfg.display().to_string();
    qd(home.path(), &["--config", &cfg, "fetch"]);
    let mut runs = Vec::new();
    for n in &names {
        qd(
            home.path(),
            &["--config", &cfg, "train", n, "--timesteps", "256"],
        );
        let run = std::fs::read_dir(home.path().join("runs"))
            .expect("runs")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|r| r.starts_with("train-") && !runs.contains(r))
            .max()
            .expect("train run");
        qd(home.path(), &["--config", &cfg, "gate", &run]);
        let dir = home.path().join("runs").join(&run);
        alternating::alternate(&dir.join("model.safetensors"));
        if dir.join("best.safetensors").exists() {
            alternating::alternate(&dir.join("best.safetensors"));
        }
        runs.push(run);
    }
    let fake = FakeAlpaca::trading();
    fake.set_cash("1000000");
    let mut args: Vec<String> = vec!["--config".into(), cfg.clone(), "paper".into()];
    args.extend(runs.iter().cloned());
    let child = Guard(
        Command::new(env!("CARGO_BIN_EXE_quantdeck"))
            .arg("--home")
            .arg(home.path())
            .args(&args)
            .env_remove("QUANTDECK_HOME")
            .env("APCA_API_KEY_ID", KEY_ID)
            .env("APCA_API_SECRET_KEY", SECRET)
            .env("APCA_API_BASE_URL", fake.url())
            .env("APCA_API_STREAM_URL", fake.trade_stream_url())
            .env("APCA_API_DATA_URL", fake.url())
            .env("APCA_API_DATA_STREAM_URL", fake.ws_url())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("daemon"),
    );
    // Ready: the trade stream and both sides subscribed.
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while fake.counters().trade_active == 0 || fake.counters().subscriptions.is_empty() {
        assert!(Instant::now() < deadline, "daemon not ready");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Idle first: the daemon connected, no bars. Meanwhile the client's token bucket (Alpaca's
    // 200 requests a minute) fills up, as it would during the quiet of a real 15-minute bar, so
    // the latencies below measure the daemon rather than the rate limit of an accelerated feed.
    let (cpu0, _) = usage(child.0.id());
    let t0 = Instant::now();
    std::thread::sleep(std::time::Duration::from_secs(30));
    let (cpu1, rss) = usage(child.0.id());
    let idle = (cpu1 - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    std::thread::sleep(std::time::Duration::from_secs(30));
    // The store ends at `end`'s last 15-minute bar; the feed continues from the next one.
    let mut next: DateTime<Utc> = (end + Duration::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let mut rng = Rng::new(5);
    let mut prices = vec![100.0f64; names.len()];
    let mut latencies = Vec::new();
    for bar in 0..bars {
        let mut pushed: Vec<(String, Instant)> = Vec::new();
        for minute in 0..15 {
            for (i, n) in names.iter().enumerate() {
                let open = prices[i];
                prices[i] *= 1.0 + 0.001 * rng.normal();
                let b = Bar {
                    ts: next,
                    open,
                    high: open.max(prices[i]),
                    low: open.min(prices[i]),
                    close: prices[i],
                    volume: 1.0,
                };
                fake.push_bar(n, b);
                if minute == 14 {
                    pushed.push((n.replace('/', ""), Instant::now()));
                }
            }
            next += Duration::minutes(1);
            if minute < 14 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        // Bars 100 ms apart: within the request budget the bucket holds.
        std::thread::sleep(std::time::Duration::from_millis(100));
        // Each symbol's order for this bar: its POST's arrival at the fake.
        let bar_start = (next - Duration::minutes(15)).timestamp();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let orders = fake.orders();
            let posts: Vec<_> = fake
                .requests_to("POST", "/v2/orders")
                .into_iter()
                .filter(|r| r.status == 200)
                .collect();
            let mine: Vec<(usize, &fake_alpaca::FakeOrder)> = orders
                .iter()
                .enumerate()
                .filter(|(_, o)| o.client_order_id.contains(&format!("-{bar_start}-")))
                .collect();
            if mine.len() == names.len() {
                for (i, o) in mine {
                    let sym = o
                        .client_order_id
                        .split('-')
                        .nth(2)
                        .unwrap_or("")
                        .to_string();
                    if let (Some(post), Some((_, t0))) =
                        (posts.get(i), pushed.iter().find(|(s, _)| *s == sym))
                    {
                        if bar > 2 {
                            latencies.push(
                                post.at.saturating_duration_since(*t0).as_secs_f64() * 1000.0,
                            );
                        }
                    }
                }
                break;
            }
            if Instant::now() > deadline {
                eprintln!("bar {bar}: {} of {} orders", mine.len(), names.len());
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    latencies.sort_by(f64::total_cmp);
    let (_, rss_busy) = usage(child.0.id());
    println!(
        "{}: bar arrival → order POST over {} orders: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; idle: CPU {:.2} % of one core, RSS {} MiB ({} MiB after trading)",
        case.name,
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0),
        idle,
        rss / 1024,
        rss_busy / 1024
    );
}

/// The daemon dies with the bench, a panicking one included.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let cases = [
        Case {
            name: "(256, 128, 64), 1 symbol",
            hidden: "256, 128, 64",
            symbols: 1,
        },
        Case {
            name: "(1024, 512, 256), 1 symbol",
            hidden: "1024, 512, 256",
            symbols: 1,
        },
        Case {
            name: "(256, 128, 64), 10 symbols",
            hidden: "256, 128, 64",
            symbols: 10,
        },
    ];
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before: {}", load.trim());
    for c in &cases {
        if filter.is_empty() || c.name.contains(&filter) {
            // 2 requests per bar and symbol (the account, the order): the 10-symbol case gets
            // fewer bars so the whole run fits the bucket.
            run_case(c, if c.symbols > 1 { 12 } else { 60 });
        }
    }
}
