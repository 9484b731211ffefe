//! Does it learn? `cargo bench --bench learning` (release) trains on the default synthetic market
//! through the train job — the quick_test mode, then quick_test's settings for a longer CPU budget
//! — and backtests the trained policy out of sample beside the oracle (which knows the planted
//! drift: the upper bound), the momentum rule fitted on the training bars, buy-and-hold, random
//! and flat, on the same bars with the same costs.
//!
//! Arguments (after `--`):
//! - `--budget-s S`: wall-clock budget of the long run (default 600); its step count is sized from
//!   the quick run's speed, and it is stopped at 1.25 × S whatever happens;
//! - `--steps N`: the long run's steps instead (no sizing); `--no-long`, `--no-quick`;
//! - `--symbol SYNA`; `--eval-end YYYY-MM-DD` (default 2025-12-31): the out-of-sample bars run
//!   from the end of the validation range to this day (the synthetic market is generated from its
//!   start, so the configured period's bars are unchanged);
//! - `--config FILE`: a config file layered over quick_test (to try other settings);
//! - `--out FILE` (default `$QUANTDECK_HOME/bench/learning.json`, or `target/learning.json`);
//! - `--seeds K`: train K seeds (`ppo.seed` 1…K) of each run and report each contender's median
//!   (and the policies' range) over them; one lucky seed is not skill;
//! - `calibrate [--seeds K]`: no training; the oracle and momentum rule over a grid of
//!   `synthetic.edge` × `synthetic.drift_halflife` on the three equities and K market seeds.
//!
//! Training runs live in a fresh directory under the target folder, so a store of other bars can
//! never be trained on by mistake.

use chrono::NaiveDate;
use quantdeck::config::{self, Config};
use quantdeck::data::store::hash_bars;
use quantdeck::engine::{checkpoint, HostPolicy};
use quantdeck::eval::learning::{self, Costs, Scoreboard, SyntheticMarket};
use quantdeck::eval::metrics;
use quantdeck::features::events::EventTable;
use quantdeck::jobs::{self, CancelToken, Event, JobRequest, JobSummary};
use quantdeck::market::Symbol;
use quantdeck::paths::Paths;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Args {
    budget_s: f64,
    steps: Option<u64>,
    quick: bool,
    long: bool,
    symbol: String,
    eval_end: NaiveDate,
    out: Option<PathBuf>,
    calibrate: bool,
    seeds: Option<u64>,
    config: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut a = Args {
        budget_s: 600.0,
        steps: None,
        quick: true,
        long: true,
        symbol: "SYNA".into(),
        eval_end: NaiveDate::from_ymd_opt(2025, 12, 31).expect("date"),
        out: None,
        calibrate: false,
        seeds: None,
        config: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match arg.as_str() {
            "--budget-s" => a.budget_s = value("--budget-s").parse().expect("--budget-s SECONDS"),
            "--steps" => a.steps = Some(value("--steps").parse().expect("--steps N")),
            "--no-quick" => a.quick = false,
            "--no-long" => a.long = false,
            "--symbol" => a.symbol = value("--symbol"),
            "--eval-end" => {
                a.eval_end = NaiveDate::parse_from_str(&value("--eval-end"), "%Y-%m-%d")
                    .expect("--eval-end YYYY-MM-DD")
            }
            "--out" => a.out = Some(value("--out").into()),
            "--seeds" => a.seeds = Some(value("--seeds").parse().expect("--seeds K")),
            "--config" => a.config = Some(value("--config").into()),
            "calibrate" => a.calibrate = true,
            // cargo bench passes `--bench`; other harness flags mean nothing here.
            _ => {}
        }
    }
    a
}

/// `<target>/` from the bench executable (`<target>/<profile>/deps/learning-…`).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn main() {
    // As the quantdeck binary does: candle's element-wise ops stay on the training thread.
    // SAFETY: first thing in main, before any thread exists (candle reads it lazily).
    unsafe { quantdeck::engine::device::prefer_single_threaded_elementwise() };
    let args = parse_args();
    let mut cfg = config::load(Some("quick_test"), args.config.as_deref()).expect("config");
    cfg.ppo.device = "cpu".into();
    if args.calibrate {
        calibrate(&cfg, args.seeds.unwrap_or(4), args.eval_end);
        return;
    }
    let sym = cfg.universe.resolve(&args.symbol).expect("symbol");
    let events = EventTable::embedded();
    let market = SyntheticMarket::build(&cfg, &sym, &events, Some(args.eval_end)).expect("market");
    let (bars, test) = (&market.series.bars, market.test.clone());
    let period = format!(
        "{} → {}",
        bars[test.start].ts.format("%Y-%m-%d"),
        bars[test.end - 1].ts.format("%Y-%m-%d")
    );
    println!(
        "learning benchmark: synthetic {sym} {}, edge {}, drift half-life {} bars; out of sample {period} ({} bars); load average {}",
        cfg.data.timeframe,
        cfg.synthetic.edge,
        cfg.synthetic.drift_halflife,
        test.len(),
        load_average()
    );
    let reference: Vec<(Costs, Vec<learning::Row>)> = Costs::ALL
        .iter()
        .map(|&c| {
            let (rules, risk) = c.rules(&cfg, sym.class);
            let bt = market.backtester(rules, risk);
            let (rows, m) = learning::reference_rows(
                &bt,
                &market.series.drift,
                &market.filtered,
                market.train.clone(),
                test.clone(),
                1000,
            );
            println!("momentum spans ({c:?} costs): EMA {}/{}", m.fast, m.slow);
            (c, rows)
        })
        .collect();

    let work = tempfile::Builder::new()
        .prefix("learning-bench-")
        .tempdir_in(target_dir())
        .or_else(|_| tempfile::tempdir())
        .expect("work dir");
    let paths = Paths::under(work.path());
    paths.ensure().expect("dirs");
    let seeds = args.seeds.unwrap_or(1).max(1);
    let mut runs = Vec::new();
    let mut medians = Vec::new();
    let mut sps_hint = None;
    if args.quick {
        let group = train_seeds(&paths, &cfg, "quick_test", None, seeds, &market, &reference);
        sps_hint = group.first().map(|r| r.sps);
        medians.extend(report_medians("quick_test", &group));
        runs.extend(group);
    }
    if args.long {
        let mut long = cfg.clone();
        let per_update = long.ppo.steps_per_update();
        let steps = args.steps.unwrap_or_else(|| {
            // Validation and start-up take a little of the budget: size for 90 % of it.
            let sps = sps_hint.unwrap_or_else(|| probe_sps(&paths, &cfg));
            (sps * args.budget_s * 0.9) as u64
        });
        long.ppo.total_timesteps = (steps / per_update).max(1) * per_update;
        let limit = args
            .steps
            .is_none()
            .then(|| Duration::from_secs_f64(args.budget_s * 1.25));
        let label = match args.steps {
            Some(_) => format!("{} steps", long.ppo.total_timesteps),
            None => format!("{:.0}-minute budget", args.budget_s / 60.0),
        };
        let group = train_seeds(&paths, &long, &label, limit, seeds, &market, &reference);
        medians.extend(report_medians(&label, &group));
        runs.extend(group);
    }

    let out = args
        .out
        .clone()
        .unwrap_or_else(|| match std::env::var_os("QUANTDECK_HOME") {
            Some(h) => PathBuf::from(h).join("bench").join("learning.json"),
            None => target_dir().join("learning.json"),
        });
    let report = json!({
        "symbol": sym.name,
        "timeframe": cfg.data.timeframe.to_string(),
        "synthetic": cfg.synthetic,
        "out_of_sample": { "period": period, "bars": test.len() },
        "load_average": load_average(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "seeds": seeds,
        "medians": medians,
        "runs": runs.iter().map(|r| json!({
            "label": r.label, "steps": r.steps, "updates": r.updates, "wall_s": r.wall_s,
            "sps": r.sps, "cancelled": r.cancelled, "boards": r.boards,
            "in_sample": r.in_sample,
        })).collect::<Vec<_>>(),
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("output dir");
    }
    std::fs::write(&out, serde_json::to_vec_pretty(&report).expect("json")).expect("write");
    println!("\nwritten: {}", out.display());
}

/// `seeds` runs of one setting, ppo.seed 1…seeds, each trained and scored.
fn train_seeds(
    paths: &Paths,
    cfg: &Config,
    label: &str,
    limit: Option<Duration>,
    seeds: u64,
    market: &SyntheticMarket,
    reference: &[(Costs, Vec<learning::Row>)],
) -> Vec<RunScore> {
    (1..=seeds)
        .map(|seed| {
            let mut c = cfg.clone();
            c.ppo.seed = seed;
            let label = if seeds > 1 {
                format!("{label}, seed {seed}")
            } else {
                label.to_string()
            };
            train_and_score(paths, &c, &label, limit, market, reference)
        })
        .collect()
}

/// Prints (and returns) each costs board's median over the seeds of one setting, with the
/// policies' worst and best Sharpe beside.
fn report_medians(label: &str, group: &[RunScore]) -> Vec<serde_json::Value> {
    if group.len() < 2 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for k in 0..group[0].boards.len() {
        let boards: Vec<Scoreboard> = group.iter().map(|r| r.boards[k].clone()).collect();
        let Some(median) = Scoreboard::median_of(&boards) else {
            continue;
        };
        println!(
            "\n{label}, median of {} seeds, {} costs:\n{}",
            group.len(),
            costs_label(median.costs),
            median.table()
        );
        for name in ["policy (final)", "policy (best val.)"] {
            let sh: Vec<f64> = boards
                .iter()
                .filter_map(|b| b.get(name).map(|r| r.sharpe))
                .collect();
            if sh.is_empty() {
                // No validation was scored: no run saved a best checkpoint.
                continue;
            }
            let (lo, hi) = sh
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                    (a.min(*x), b.max(*x))
                });
            println!(
                "{name}: Sharpe over the {} seed(s) that have it {lo:.2} … {hi:.2}",
                sh.len()
            );
        }
        out.push(json!({ "label": label, "median": median }));
    }
    out
}

struct RunScore {
    label: String,
    steps: u64,
    updates: usize,
    wall_s: f64,
    sps: f64,
    cancelled: bool,
    boards: Vec<Scoreboard>,
    in_sample: Scoreboard,
}

/// Trains through the train job (stopped by cancellation after `limit`), then scores the final
/// and the best-validation model beside the reference rows.
fn train_and_score(
    paths: &Paths,
    cfg: &Config,
    label: &str,
    limit: Option<Duration>,
    market: &SyntheticMarket,
    reference: &[(Costs, Vec<learning::Row>)],
) -> RunScore {
    println!(
        "\n== {label}: {} steps ({} updates of {}), hidden {:?}, {} epochs",
        cfg.ppo.total_timesteps,
        cfg.ppo.updates(),
        cfg.ppo.steps_per_update(),
        cfg.ppo.hidden_dims,
        cfg.ppo.epochs
    );
    let cancel = CancelToken::new();
    let started = Instant::now();
    if let Some(limit) = limit {
        let c = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            c.cancel();
        });
    }
    let every = (cfg.ppo.updates() / 10).max(1);
    let observer: jobs::Observer = Box::new(move |rec| match &rec.event {
        Event::Update(m) if m.update % every == 0 || m.update == m.updates => println!(
            "  update {:>4}/{}: {:>8.0} steps/s, reward {:+.4}, entropy {:.3}, EV {:+.2}, kl {:.4}",
            m.update, m.updates, m.sps, m.mean_reward, m.entropy, m.explained_variance, m.approx_kl
        ),
        Event::Validation(v) => println!(
            "  validation @ {:>4}: Sharpe {:+.2}, return {:+.2}%, trades {}, hold {:.0}%",
            v.update,
            v.sharpe,
            100.0 * v.total_return,
            v.trades,
            100.0 * v.hold_pct
        ),
        _ => {}
    });
    let id = jobs::run_job(
        paths,
        cfg,
        &JobRequest::Train {
            symbol: market.symbol.name.clone(),
            group: None,
        },
        &cancel,
        Some(observer),
    )
    .expect("training run");
    let wall_s = started.elapsed().as_secs_f64();
    let dir = jobs::RunDir::open(paths, &id).expect("run");
    let (steps, updates, sps, cancelled) = match dir.read_manifest().expect("manifest").summary {
        JobSummary::Train {
            timesteps,
            updates,
            sps,
            cancelled,
            ..
        } => (timesteps, updates, sps, cancelled),
        other => panic!("not a training summary: {other:?}"),
    };
    let mut policies = Vec::new();
    for (name, file) in [
        ("policy (final)", "model.safetensors"),
        ("policy (best val.)", "best.safetensors"),
    ] {
        let path = dir.path.join(file);
        if !path.exists() {
            continue;
        }
        let (model, meta) =
            checkpoint::load_model(&path, &candle_core::Device::Cpu).expect("model");
        // The job generated its own bars: they must be the ones scored here, and the model must
        // have seen none of the test bars.
        let bars = &market.series.bars;
        assert_eq!(
            meta.seen_until(),
            bars[market.validation.end - 1].ts,
            "the model's training and validation ranges differ from the evaluation's split"
        );
        let stored = bars.partition_point(|b| b.ts <= meta.data_last);
        assert_eq!(
            hash_bars(&bars[..stored]),
            meta.data_sha256,
            "different bars"
        );
        policies.push((name, HostPolicy::from_model(&model).expect("policy")));
    }
    println!(
        "trained {steps} steps ({updates} updates) in {wall_s:.0} s ({sps:.0} steps/s){}",
        if cancelled {
            ", stopped at the time limit"
        } else {
            ""
        }
    );
    // The same contenders on the training bars: a policy far better there than out of sample
    // has memorised its one training path rather than learned the drift.
    let in_sample = {
        let (rules, risk) = Costs::Training.rules(cfg, market.symbol.class);
        let bt = market.backtester(rules, risk);
        let mut rows: Vec<_> = policies
            .iter()
            .map(|(name, p)| learning::policy_row(name, &bt, p, market.train.clone()))
            .collect();
        let (refs, _) = learning::reference_rows(
            &bt,
            &market.series.drift,
            &market.filtered,
            market.train.clone(),
            market.train.clone(),
            1000,
        );
        rows.extend(refs.into_iter().filter(|r| {
            [learning::ORACLE, learning::FILTER, learning::MOMENTUM].contains(&r.name.as_str())
        }));
        let board = Scoreboard {
            costs: Costs::Training,
            rows,
        };
        println!(
            "\n{label}, in sample (the training bars), training-env costs:\n{}",
            board.table()
        );
        board
    };
    let mut boards = Vec::new();
    for (costs, refs) in reference {
        let (rules, risk) = costs.rules(cfg, market.symbol.class);
        let bt = market.backtester(rules, risk);
        let mut rows: Vec<_> = policies
            .iter()
            .map(|(name, p)| learning::policy_row(name, &bt, p, market.test.clone()))
            .collect();
        rows.extend(refs.iter().cloned());
        let board = Scoreboard {
            costs: *costs,
            rows,
        };
        println!(
            "\n{label}, {} costs:\n{}",
            costs_label(*costs),
            board.table()
        );
        for (name, _) in &policies {
            let filter = board.get(learning::FILTER).map(|f| f.sharpe);
            let of_filter = match (board.get(name), filter) {
                (Some(p), Some(f)) if f > 0.0 => format!("{:.0} %", 100.0 * p.sharpe / f),
                _ => "—".into(),
            };
            println!(
                "{name}: {} of the oracle's Sharpe, {of_filter} of the drift filter's; beats momentum: {}",
                board
                    .share_of_oracle(name)
                    .map(|p| format!("{p:.0} %"))
                    .unwrap_or_else(|| "—".into()),
                match board.beats_momentum(name) {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "—",
                }
            );
        }
        boards.push(board);
    }
    RunScore {
        label: label.to_string(),
        steps,
        updates,
        wall_s,
        sps,
        cancelled,
        boards,
        in_sample,
    }
}

fn costs_label(c: Costs) -> &'static str {
    match c {
        Costs::Training => "training-env ([env] slippage, no risk gates)",
        Costs::Backtest => "as traded ([backtest] account and costs, [live] threshold and gates)",
    }
}

/// Steps per second of two quick_test updates, when the quick run was skipped.
fn probe_sps(paths: &Paths, cfg: &Config) -> f64 {
    let mut probe = cfg.clone();
    probe.ppo.total_timesteps = 2 * probe.ppo.steps_per_update();
    let id = jobs::run_job(
        paths,
        &probe,
        &JobRequest::Train {
            symbol: cfg.universe.symbols()[0].name.clone(),
            group: None,
        },
        &CancelToken::new(),
        None,
    )
    .expect("probe run");
    match jobs::RunDir::open(paths, &id)
        .and_then(|d| d.read_manifest())
        .expect("manifest")
        .summary
    {
        JobSummary::Train { sps, .. } => sps,
        _ => 1000.0,
    }
}

/// The oracle and the momentum rule across a grid of market settings: mean and worst
/// out-of-sample Sharpe over the three equities × `seeds` seeds, on the configured period's
/// out-of-sample tail ("default OOS") and on the longer tail to `eval_end`.
fn calibrate(cfg: &Config, seeds: u64, eval_end: NaiveDate) {
    let events = EventTable::embedded();
    let edges = [0.0, 0.01, 0.05, 0.10, 0.15];
    let halflives = [24.0, 48.0, 96.0];
    println!(
        "mean (worst) out-of-sample Sharpe over 3 equities × {seeds} seeds; load average {}",
        load_average()
    );
    println!(
        "{:>5} {:>5} | {:>16} {:>16} | {:>16} {:>16} | {:>16} {:>16}",
        "edge",
        "h-l",
        "oracle env",
        "momentum env",
        "oracle bt",
        "momentum bt",
        "oracle env long",
        "mom env long"
    );
    for &edge in &edges {
        for &hl in &halflives {
            let mut c = cfg.clone();
            c.synthetic.edge = edge;
            c.synthetic.drift_halflife = hl;
            if config::validate(&c).is_err() {
                continue;
            }
            let mut cols: Vec<Vec<f64>> = vec![Vec::new(); 6];
            for seed in 1..=seeds {
                c.synthetic.seed = seed;
                for name in ["SYNA", "SYNB", "SYNC"] {
                    let sym = Symbol::equity(name);
                    let m =
                        SyntheticMarket::build(&c, &sym, &events, Some(eval_end)).expect("market");
                    let short = m.test.start..m.period_end;
                    for (k, costs) in Costs::ALL.iter().enumerate() {
                        let (rules, risk) = costs.rules(&c, sym.class);
                        let bt = m.backtester(rules, risk);
                        let mom = quantdeck::eval::MomentumRule::fit(&bt, m.train.clone());
                        let sh = |r: &quantdeck::eval::BacktestResult| {
                            metrics::daily_sharpe(&r.equity, &r.ts, sym.class)
                        };
                        cols[2 * k].push(sh(&quantdeck::eval::oracle::run(
                            &bt,
                            &m.series.drift,
                            short.clone(),
                        )));
                        cols[2 * k + 1].push(sh(&mom.run(&bt, short.clone())));
                        if *costs == Costs::Training {
                            cols[4].push(sh(&quantdeck::eval::oracle::run(
                                &bt,
                                &m.series.drift,
                                m.test.clone(),
                            )));
                            cols[5].push(sh(&mom.run(&bt, m.test.clone())));
                        }
                    }
                }
            }
            let cell = |v: &[f64]| {
                let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
                let worst = v.iter().copied().fold(f64::INFINITY, f64::min);
                format!("{mean:>7.2} ({worst:>6.2})")
            };
            println!(
                "{edge:>5.2} {hl:>5.0} | {:>16} {:>16} | {:>16} {:>16} | {:>16} {:>16}",
                cell(&cols[0]),
                cell(&cols[1]),
                cell(&cols[2]),
                cell(&cols[3]),
                cell(&cols[4]),
                cell(&cols[5])
            );
        }
    }
}
