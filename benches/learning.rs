//! Does it learn? `cargo bench --bench learning` (release) trains, on each synthetic symbol (SYNA,
//! SYNB, SYNC and SYNX/USD by default) and 3 training seeds, through the train job — the
//! quick_test mode, then quick_test's settings for a longer CPU budget — and backtests each trained
//! policy out of sample beside the oracle (which knows the planted drift: the upper bound), the
//! drift filter (the best observer of past bars that knows the generator's parameters), the
//! momentum rule fitted on the training bars, buy-and-hold, random and flat, on the same bars with
//! the same costs. It ends with one table per costs setting: per symbol and run, the policies'
//! median and worst seed beside the rules, out of sample and in sample. Every symbol gets the same
//! configuration.
//!
//! Arguments (after `--`):
//! - `--budget-s S`: wall-clock budget of one long run (one seed; default 600); its step count is
//!   sized once, from the first quick run's speed, and kept for every symbol and seed; each run is
//!   stopped at 1.25 × S whatever happens;
//! - `--steps N`: the long runs' steps instead (no sizing: results then do not depend on the
//!   machine's load); `--no-long`, `--no-quick`;
//! - `--symbols SYNA,SYNB` (default: the universe's four); `--symbol SYNA` for one;
//! - `--eval-end YYYY-MM-DD` (default 2025-12-31): the out-of-sample bars run from the end of the
//!   validation range to this day (the synthetic market is generated from its start, so the
//!   configured period's bars are unchanged);
//! - `--config FILE`: a config file layered over quick_test (to try other settings);
//! - `--out FILE` (default `$QUANTDECK_HOME/bench/learning.json`, or `target/learning.json`);
//! - `--seeds K` (default 3): train K seeds (`ppo.seed` 1…K) of each run and report each
//!   contender's median and the policies' worst seed; one lucky seed is not skill;
//! - `--first-seed F` (default 1): seeds F…F+K−1 instead, to finish a set of seeds in parts;
//! - `--oos-paths N` (default 16; 0: none): every policy and rule also trades the test range of
//!   N other paths of the market (`common/learning_paths.rs`): means and paired differences;
//! - `calibrate [--seeds K]`: no training; the oracle and momentum rule over a grid of
//!   `synthetic.edge` × `synthetic.drift_halflife` on the three equities and K market seeds.
//!
//! Training runs live in a fresh directory under the target folder, so a store of other bars can
//! never be trained on by mistake.

#[path = "common/learning_args.rs"]
mod args;
#[path = "common/calibrate.rs"]
mod calibrate;
#[path = "common/learning_checkpoints.rs"]
mod checkpoints;
#[path = "common/learning_paths.rs"]
mod oos;
#[path = "common/learning_summary.rs"]
mod summary;

use args::{parse_args, Args};
use quantdeck::config::{self, Config};
use quantdeck::data::store::hash_bars;
use quantdeck::data::synthetic;
use quantdeck::engine::{checkpoint, HostPolicy};
use quantdeck::eval::learning::{self, Costs, Scoreboard, SyntheticMarket};
use quantdeck::features::events::EventTable;
use quantdeck::jobs::{self, CancelToken, Event, JobRequest, JobSummary};
use quantdeck::market::Symbol;
use quantdeck::paths::Paths;
use quantdeck::sim::TradingRules;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
        calibrate::calibrate(&cfg, args.seeds, args.eval_end);
        return;
    }
    let names = args
        .symbols
        .clone()
        .unwrap_or_else(|| cfg.universe.symbols().into_iter().map(|s| s.name).collect());
    println!(
        "learning benchmark: {} × seeds {:?}, synthetic {}, edge {}, drift half-life {} bars, train_paths {}{}; load average {}",
        names.join(", "),
        args.seed_range(),
        cfg.data.timeframe,
        cfg.synthetic.edge,
        cfg.synthetic.drift_halflife,
        cfg.synthetic.train_paths,
        match cfg.synthetic.redraw_every {
            0 => String::new(),
            k => format!(" redrawn every {k} updates"),
        },
        load_average()
    );
    let work = tempfile::Builder::new()
        .prefix("learning-bench-")
        .tempdir_in(target_dir())
        .or_else(|_| tempfile::tempdir())
        .expect("work dir");
    let paths = Paths::under(work.path());
    paths.ensure().expect("dirs");
    let mut long_steps = args.steps;
    let reports: Vec<SymbolReport> = names
        .iter()
        .map(|name| bench_symbol(&args, &cfg, name, &paths, &mut long_steps))
        .collect();
    for costs in Costs::ALL {
        summary::print(&reports, Some(costs));
        if costs == Costs::Backtest {
            summary::print_rule_costs(&reports);
            summary::print_checkpoint_choice(&reports);
            summary::print_drawn(&reports);
        }
    }
    summary::print(&reports, None);

    let out = args
        .out
        .clone()
        .unwrap_or_else(|| match std::env::var_os("QUANTDECK_HOME") {
            Some(h) => PathBuf::from(h).join("bench").join("learning.json"),
            None => target_dir().join("learning.json"),
        });
    let report = json!({
        "timeframe": cfg.data.timeframe.to_string(),
        "synthetic": cfg.synthetic,
        "load_average": load_average(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "seeds": args.seeds,
        "first_seed": args.first_seed,
        "symbols": reports.iter().map(SymbolReport::json).collect::<Vec<_>>(),
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("output dir");
    }
    std::fs::write(&out, serde_json::to_vec_pretty(&report).expect("json")).expect("write");
    println!("\nwritten: {}", out.display());
}

/// One symbol's runs: each setting's seeds, scored.
struct SymbolReport {
    symbol: String,
    period: String,
    bars: usize,
    groups: Vec<(String, Vec<RunScore>)>,
    /// The reference rules' Sharpe on each drawn out-of-sample path (`--oos-paths`).
    drawn_reference: Vec<(String, Vec<f64>)>,
}

/// The bars a policy trains on, for the in-sample table: the stored path's training range, or
/// with `synthetic.train_paths` > 1 the first drawn path (the same days, its own seed). With
/// `synthetic.redraw_every` it trains only the first generation's updates, so it is nearly out
/// of sample too: the in-sample table then measures little.
fn trained_market(cfg: &Config, sym: &Symbol, events: &EventTable) -> SyntheticMarket {
    let mut c = cfg.clone();
    if cfg.synthetic.train_paths > 1 {
        c.synthetic.seed = synthetic::path_seed(cfg.synthetic.seed, 0);
    }
    SyntheticMarket::build(&c, sym, events, None).expect("training market")
}

/// Trains and scores every setting of one symbol; `long_steps` is sized on the first quick run
/// (when no `--steps` was given) and then kept, so every symbol gets the same configuration.
fn bench_symbol(
    args: &Args,
    cfg: &Config,
    name: &str,
    paths: &Paths,
    long_steps: &mut Option<u64>,
) -> SymbolReport {
    let sym = cfg.universe.resolve(name).expect("symbol");
    let events = EventTable::embedded();
    let market = SyntheticMarket::build(cfg, &sym, &events, Some(args.eval_end)).expect("market");
    let trained = trained_market(cfg, &sym, &events);
    let (bars, test) = (&market.series.bars, market.test.clone());
    let period = format!(
        "{} → {}",
        bars[test.start].ts.format("%Y-%m-%d"),
        bars[test.end - 1].ts.format("%Y-%m-%d")
    );
    println!(
        "\n===== {sym}: out of sample {period} ({} bars); load average {}",
        test.len(),
        load_average()
    );
    let reference: Vec<(Costs, Vec<learning::Row>)> = Costs::ALL
        .iter()
        .map(|&c| {
            let (rules, risk) = c.rules(cfg, sym.class);
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
    let drawn = (args.oos_paths > 0)
        .then(|| oos::OosPaths::build(cfg, &sym, &events, args.eval_end, args.oos_paths));
    if let Some(d) = &drawn {
        for (name, scores) in &d.reference {
            println!(
                "on {} drawn paths, {}",
                d.len(),
                oos::line(name, scores, d.momentum())
            );
        }
    }
    let scoring = Scoring {
        market: &market,
        trained: &trained,
        reference: &reference,
        drawn: drawn.as_ref(),
    };
    let mut groups = Vec::new();
    if args.quick {
        let group = train_seeds(paths, cfg, "quick_test", None, args.seed_range(), &scoring);
        if long_steps.is_none() && args.long {
            // Validation and start-up take a little of the budget: size for 90 % of it.
            let sps = group.first().map_or(1000.0, |r| r.sps);
            *long_steps = Some((sps * args.budget_s * 0.9) as u64);
        }
        groups.push(("quick_test".to_string(), group));
    }
    if args.long {
        let mut long = cfg.clone();
        let per_update = long.ppo.steps_per_update();
        let steps = *long_steps
            .get_or_insert_with(|| (probe_sps(paths, cfg, &sym.name) * args.budget_s * 0.9) as u64);
        long.ppo.total_timesteps = (steps / per_update).max(1) * per_update;
        let limit = args
            .steps
            .is_none()
            .then(|| Duration::from_secs_f64(args.budget_s * 1.25));
        let label = format!("{} steps", long.ppo.total_timesteps);
        let group = train_seeds(paths, &long, &label, limit, args.seed_range(), &scoring);
        groups.push((label, group));
    }
    SymbolReport {
        symbol: sym.name.clone(),
        period,
        bars: test.len(),
        groups,
        drawn_reference: drawn.map(|d| d.reference).unwrap_or_default(),
    }
}

/// What a trained policy is scored on: the evaluation market, the market it trained on, and the
/// reference rules' out-of-sample rows per costs setting.
struct Scoring<'a> {
    market: &'a SyntheticMarket,
    trained: &'a SyntheticMarket,
    reference: &'a [(Costs, Vec<learning::Row>)],
    drawn: Option<&'a oos::OosPaths>,
}

/// One run of one setting per seed (`ppo.seed`), each trained and scored.
fn train_seeds(
    paths: &Paths,
    cfg: &Config,
    label: &str,
    limit: Option<Duration>,
    seeds: std::ops::RangeInclusive<u64>,
    scoring: &Scoring,
) -> Vec<RunScore> {
    let runs: Vec<RunScore> = seeds
        .map(|seed| {
            let mut c = cfg.clone();
            c.ppo.seed = seed;
            let label = format!("{} {label}, seed {seed}", scoring.market.symbol);
            train_and_score(paths, &c, &label, limit, scoring)
        })
        .collect();
    if let (Some(d), true) = (scoring.drawn, runs.len() > 1) {
        let policies: Vec<_> = runs.iter().map(|r| r.policies.as_slice()).collect();
        let label = format!("{} {label}", scoring.market.symbol);
        d.score_ensembles(cfg, &policies, &[FINAL, GATED], &label);
    }
    runs
}

const FINAL: &str = "policy (final)";
const BEST: &str = "policy (best val.)";
/// The model the verdicts trade: the run gated by the gate job, then chosen as walk-forward and
/// paper choose it (`jobs::resolve_model`): the best checkpoint when the gate found the final
/// model's validation fitness declined from its peak, else the final model.
const GATED: &str = "policy (gate's pick)";

struct RunScore {
    label: String,
    steps: u64,
    updates: usize,
    wall_s: f64,
    sps: f64,
    cancelled: bool,
    boards: Vec<Scoreboard>,
    in_sample: Scoreboard,
    /// Each kept checkpoint's (update, out-of-sample Sharpe as traded).
    checkpoints: Vec<(usize, f64)>,
    /// (k, Sharpe as traded) of the mean weights of the last k kept checkpoints.
    averaged: Vec<(usize, f64)>,
    /// Each policy's Sharpe on each drawn out-of-sample path, as traded (`--oos-paths`).
    drawn: Vec<(String, Vec<f64>)>,
    /// Each kept checkpoint's (update, mean Sharpe over the drawn paths).
    drawn_checkpoints: Vec<(usize, f64)>,
    /// The policies scored (name, policy), for the seeds' ensemble.
    policies: Vec<(&'static str, HostPolicy)>,
}

/// Trains through the train job (stopped by cancellation after `limit`), then scores the final
/// and the best-validation model beside the reference rows.
fn train_and_score(
    paths: &Paths,
    cfg: &Config,
    label: &str,
    limit: Option<Duration>,
    scoring: &Scoring,
) -> RunScore {
    let (market, reference) = (scoring.market, scoring.reference);
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
    let gated = gate_pick(paths, cfg, &id);
    let mut policies = Vec::new();
    let files = [
        (FINAL, dir.path.join("model.safetensors")),
        (BEST, dir.path.join("best.safetensors")),
        (GATED, gated),
    ];
    for (name, path) in files {
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
    // The same contenders on the bars trained on: a policy far better there than out of sample
    // has memorised its training path(s) rather than learned the drift.
    let in_sample = {
        let trained = scoring.trained;
        let (rules, risk) = Costs::Training.rules(cfg, trained.symbol.class);
        let bt = trained.backtester(rules, risk);
        let mut rows: Vec<_> = policies
            .iter()
            .map(|(name, p)| learning::policy_row(name, &bt, p, trained.train.clone()))
            .collect();
        let (refs, _) = learning::reference_rows(
            &bt,
            &trained.series.drift,
            &trained.filtered,
            trained.train.clone(),
            trained.train.clone(),
            1000,
        );
        rows.extend(refs);
        let board = Scoreboard {
            costs: Costs::Training,
            rows,
        };
        println!(
            "\n{label}, in sample (the bars trained on), training-env costs:\n{}",
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
        if let (Some(tr), Some((_, fin))) = (risk, policies.iter().find(|(n, _)| *n == FINAL)) {
            rows.extend(without_each_rule(market, rules, tr, fin));
        }
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
    let drawn = scoring
        .drawn
        .map_or_else(Vec::new, |d| d.score_all(cfg, &policies, label));
    let on_drawn = |p: &HostPolicy| scoring.drawn.map(|d| oos::mean_se(&d.score(cfg, p)).0);
    let (checkpoints, averaged, drawn_checkpoints) =
        checkpoints::study(cfg, market, &dir.path, &[2, 4, 8], &on_drawn);
    println!(
        "\n{label}, each kept checkpoint out of sample as traded (update: Sharpe): {}",
        checkpoints::line(&checkpoints)
    );
    println!(
        "{label}, the mean weights of the last k kept checkpoints, as traded (k: Sharpe): {}",
        checkpoints::line(&averaged)
    );
    if !drawn_checkpoints.is_empty() {
        println!(
            "{label}, each kept checkpoint's mean over the drawn paths (update: Sharpe): {}",
            checkpoints::line(&drawn_checkpoints)
        );
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
        checkpoints,
        averaged,
        drawn,
        drawn_checkpoints,
        policies,
    }
}

const NO_THRESHOLD: &str = "final, no threshold";
const NO_EXITS: &str = "final, no stop/take";
const NO_EITHER: &str = "final, neither";

/// Gates `train_run` through the gate job and returns the model file the verdicts then use.
fn gate_pick(paths: &Paths, cfg: &Config, train_run: &str) -> PathBuf {
    let request = JobRequest::Gate {
        train_run: train_run.to_string(),
    };
    jobs::run_job(paths, cfg, &request, &CancelToken::new(), None).expect("gate");
    let choice = jobs::resolve_model(paths, train_run).expect("the gated model");
    println!("gate's pick: {} ({})", choice.why, choice.path.display());
    choice.path
}

/// The final policy as traded with one rule lifted at a time — the confidence threshold, the
/// stop-loss/take-profit exits (which the training env does not apply), or both — to show which
/// rule costs what (the baselines trade without either).
fn without_each_rule(
    market: &SyntheticMarket,
    rules: quantdeck::sim::Rules,
    tr: TradingRules,
    policy: &HostPolicy,
) -> Vec<learning::Row> {
    let no_exits = |t: TradingRules| TradingRules {
        risk: quantdeck::sim::RiskRules {
            stop_loss: f64::INFINITY,
            take_profit: f64::INFINITY,
            ..t.risk
        },
        ..t
    };
    [
        (NO_THRESHOLD, tr.raw()),
        (NO_EXITS, no_exits(tr)),
        (NO_EITHER, no_exits(tr.raw())),
    ]
    .into_iter()
    .map(|(name, t)| {
        let bt = market.backtester(rules, Some(t));
        learning::policy_row(name, &bt, policy, market.test.clone())
    })
    .collect()
}

fn costs_label(c: Costs) -> &'static str {
    match c {
        Costs::Training => "training-env ([env] slippage, no risk gates)",
        Costs::Backtest => "as traded ([backtest] account and costs, [live] threshold and gates)",
    }
}

/// Steps per second of two quick_test updates, when the quick run was skipped.
fn probe_sps(paths: &Paths, cfg: &Config, symbol: &str) -> f64 {
    let mut probe = cfg.clone();
    probe.ppo.total_timesteps = 2 * probe.ppo.steps_per_update();
    let id = jobs::run_job(
        paths,
        &probe,
        &JobRequest::Train {
            symbol: symbol.to_string(),
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
