//! A fixed, realistic TUI state built only from hand-made events (fixed timestamps), shared by
//! the TUI tests through `#[path]`. Compiled on its own it has no tests.
#![allow(dead_code)]

// A child module, so that the benches that include this file by path get it too.
#[path = "tui_paper.rs"]
mod paper;
#[path = "tui_verdicts.rs"]
mod verdicts;

use chrono::{DateTime, Duration, TimeZone, Utc};
pub use paper::*;
use quantdeck::config::{self, Config};
use quantdeck::data::SeriesInfo;
use quantdeck::eval::walkforward::WalkSetup;
use quantdeck::eval::{
    Baseline, BaselineResult, CompositeScore, Decision, DecisionReport, GateClass, GateFlag,
    GateResult, MomentumRule, RawFigures,
};
use quantdeck::jobs::events::{FoldResult, UpdateMetrics, ValidationMetrics};
use quantdeck::jobs::{CheckpointReason, LogLevel};
use quantdeck::jobs::{Event, EventRecord, JobKind, JobStatus, JobSummary, Manifest, RunSummary};
use quantdeck::market::{AssetClass, Timeframe};
use quantdeck::tui::chooser;
use quantdeck::tui::{apply_event, App, Msg};
pub use verdicts::*;

pub const FETCH: &str = "fetch-20240601-080000-universe";
/// Failed before its first validation.
pub const TRAIN_FAILED: &str = "train-20240531-200000-synx-usd";
/// Killed mid-way on another machine: its manifest's heartbeat stopped.
pub const TRAIN_KILLED: &str = "train-20240531-210000-syna";
pub const TRAIN_OLD: &str = "train-20240601-070000-synb";
pub const TRAIN: &str = "train-20240601-091500-syna";
pub const GATE_OLD: &str = "gate-20240601-071000-train-20240531-220000-sync";
/// Gates the interrupted run: its last validation was insufficient, so the best one is graded.
pub const GATE_KILLED: &str = "gate-20240601-073000-train-20240531-210000-syna";
/// No validation of its run was scored: nothing graded.
pub const GATE_THIN: &str = "gate-20240601-074500-train-20240531-235000-synb";
pub const GATE_REVIEW: &str = "gate-20240601-080500-train-20240531-230000-btc";
pub const GATE: &str = "gate-20240601-102000-train-20240601-091500-syna";
pub const WALK: &str = "walk-forward-20240601-103000-syna";
pub const PAPER: &str = "paper-20240601-110000-syna";

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 7, 0, 0)
        .single()
        .unwrap_or_default()
}

pub fn at(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

/// Feeds events of one run with consecutive sequence numbers.
pub struct Feed<'a> {
    pub app: &'a mut App,
    pub run: &'a str,
    pub seq: u64,
}

impl Feed<'_> {
    pub fn send(&mut self, minute: i64, event: Event) {
        let rec = EventRecord {
            seq: self.seq,
            at: at(minute),
            run_id: self.run.to_string(),
            event,
        };
        self.seq += 1;
        apply_event(self.app, &rec);
    }
}

pub fn feed<'a>(app: &'a mut App, run: &'a str) -> Feed<'a> {
    Feed { app, run, seq: 0 }
}

fn series(symbol: &str, class: AssetClass, bars: usize, source: &str) -> SeriesInfo {
    SeriesInfo {
        symbol: symbol.into(),
        class,
        timeframe: Timeframe::Minute(15),
        source: source.into(),
        bars,
        first: Some(
            Utc.with_ymd_and_hms(2024, 1, 2, 14, 30, 0)
                .single()
                .unwrap_or_default(),
        ),
        last: Some(
            Utc.with_ymd_and_hms(2024, 12, 31, 20, 45, 0)
                .single()
                .unwrap_or_default(),
        ),
        sha256: "ab".repeat(32),
        updated: t0(),
        coverage: if source == "alpaca" { 0.962 } else { 1.0 },
        flags: if source == "alpaca" {
            vec!["MISSING_BARS".into(), "ZERO_VOLUME".into()]
        } else {
            Vec::new()
        },
    }
}

pub fn stored_series() -> Vec<SeriesInfo> {
    vec![
        series("AAPL", AssetClass::Equity, 6_552, "alpaca"),
        series("SYNA", AssetClass::Equity, 6_552, "synthetic"),
        series("SYNB", AssetClass::Equity, 6_552, "synthetic"),
        series("SYNX/USD", AssetClass::Crypto, 35_040, "synthetic"),
    ]
}

fn update(u: usize, updates: usize) -> UpdateMetrics {
    let x = u as f64;
    UpdateMetrics {
        update: u,
        updates,
        timesteps: (u * 8192) as u64,
        sps: 4100.0 + 30.0 * (x * 0.7).sin(),
        mean_reward: -0.4 + 0.06 * x + 0.05 * (x * 1.3).sin(),
        policy_loss: -0.012 + 0.004 * (x * 0.9).cos(),
        value_loss: 0.9 / (1.0 + 0.3 * x),
        entropy: 1.38 - 0.025 * x,
        approx_kl: 0.004 + 0.002 * (x * 0.5).sin().abs(),
        clip_fraction: 0.08 + 0.01 * (x * 0.3).cos(),
        explained_variance: 0.9 - 0.85 / (1.0 + 0.2 * x),
        lr: 3e-4 * (1.0 - x / updates as f64 * 0.9),
        ent_coef: 0.015 - 0.0005 * x,
        elapsed_s: 2.0 * x,
        ..Default::default()
    }
}

fn validation(u: usize) -> ValidationMetrics {
    let k = u as f64 / 5.0;
    ValidationMetrics {
        update: u,
        profit_factor: 1.05 + 0.12 * k,
        sharpe: 0.3 + 0.35 * k,
        max_drawdown: 0.09 - 0.01 * k,
        fitness: 0.1 + 0.08 * k,
        consistency: 0.55 + 0.05 * k,
        total_return: 0.01 + 0.008 * k,
        hold_pct: 0.4,
        trades: 40 + 3 * u,
        days: 18,
        insufficient: false,
        win_rate: None,
        portfolio: None,
        raw: None,
        drawn_paths: 0,
    }
}

fn add_fetch(app: &mut App) {
    let mut f = feed(app, FETCH);
    f.send(
        60,
        Event::Started {
            kind: JobKind::Fetch,
            label: "universe".into(),
        },
    );
    for (i, s) in stored_series().iter().enumerate() {
        f.send(
            61 + i as i64,
            Event::SymbolFetched {
                symbol: s.symbol.clone(),
                timeframe: s.timeframe,
                bars: s.bars,
                first: s.first,
                last: s.last,
                source: s.source.clone(),
            },
        );
        f.send(
            61 + i as i64,
            Event::Progress {
                done: i as u64 + 1,
                total: 4,
                message: s.symbol.clone(),
            },
        );
    }
    f.send(
        66,
        Event::Finished {
            status: JobStatus::Completed,
            message: "4 symbols".into(),
        },
    );
}

fn add_training(app: &mut App) {
    // A headless run in another terminal, still going.
    let mut f = feed(app, TRAIN_OLD);
    f.send(
        0,
        Event::Started {
            kind: JobKind::Train,
            label: "SYNB".into(),
        },
    );
    for u in 1..=8 {
        f.send(u as i64, Event::Update(update(u, 40)));
    }
    // The finished run the other panes evaluate.
    let mut f = feed(app, TRAIN);
    f.send(
        135,
        Event::Started {
            kind: JobKind::Train,
            label: "SYNA".into(),
        },
    );
    f.send(
        135,
        Event::Log {
            level: LogLevel::Info,
            message: "device cpu, 64 envs × 128 steps".into(),
        },
    );
    for u in 1..=20 {
        f.send(135 + u as i64, Event::Update(update(u, 20)));
        if u % 5 == 0 {
            f.send(135 + u as i64, Event::Validation(validation(u)));
        }
        if u == 10 || u == 20 {
            let reason = if u == 10 {
                CheckpointReason::Best
            } else {
                CheckpointReason::Final
            };
            f.send(
                135 + u as i64,
                Event::Checkpoint {
                    path: format!("runs/{TRAIN}/checkpoint-{u:05}.safetensors"),
                    update: u,
                    reason,
                },
            );
        }
    }
    f.send(
        156,
        Event::Log {
            level: LogLevel::Warn,
            message: "validation fitness plateaued".into(),
        },
    );
    f.send(
        156,
        Event::Finished {
            status: JobStatus::Completed,
            message: "20 updates, best fitness 0.42".into(),
        },
    );
    f.app.run_mut(TRAIN).ours = true;
}

/// A validation too small to score: its profit factor is the cap, which must never be shown.
fn thin_validation(u: usize, trades: usize, days: usize) -> ValidationMetrics {
    ValidationMetrics {
        update: u,
        profit_factor: 99.0,
        sharpe: 7.9,
        max_drawdown: 0.004,
        fitness: 7.8,
        consistency: 1.0,
        total_return: 0.003,
        hold_pct: 0.9,
        trades,
        days,
        insufficient: true,
        win_rate: None,
        portfolio: None,
        raw: None,
        drawn_paths: 0,
    }
}

/// A manifest of a run on another machine, as the watcher reads it.
pub fn manifest(id: &str, kind: JobKind, label: &str, created: DateTime<Utc>) -> Manifest {
    Manifest {
        id: id.into(),
        kind,
        label: label.into(),
        status: JobStatus::Running,
        created,
        finished: None,
        quantdeck_version: "0.1.0".into(),
        host: "gpu-box-2".into(),
        pid: 41_872,
        heartbeat: Some(created + Duration::minutes(14)),
        parent: None,
        config: serde_json::Value::Null,
        data: Vec::new(),
        artifacts: Vec::new(),
        summary: JobSummary::None,
        message: String::new(),
        group: None,
    }
}

fn add_failed_and_interrupted(app: &mut App) {
    let mut f = feed(app, TRAIN_FAILED);
    f.send(
        -660,
        Event::Started {
            kind: JobKind::Train,
            label: "SYNX/USD".into(),
        },
    );
    f.send(
        -660,
        Event::Finished {
            status: JobStatus::Failed,
            message: "cannot read data/bars/15Min/SYNX%2FUSD.parquet: parquet: \
                      out of specification: invalid footer (the file was quarantined: fetch \
                      SYNX/USD again)"
                .into(),
        },
    );

    let mut f = feed(app, TRAIN_KILLED);
    f.send(
        -600,
        Event::Started {
            kind: JobKind::Train,
            label: "SYNA".into(),
        },
    );
    for u in 1..=12 {
        f.send(-600 + u as i64, Event::Update(update(u, 40)));
        let v = match u {
            4 => Some(thin_validation(4, 3, 4)),
            8 => Some(validation(8)),
            12 => Some(thin_validation(12, 2, 5)),
            _ => None,
        };
        if let Some(v) = v {
            f.send(-600 + u as i64, Event::Validation(v));
        }
        if u == 8 {
            f.send(
                -600 + u as i64,
                Event::Checkpoint {
                    path: format!("runs/{TRAIN_KILLED}/best.safetensors"),
                    update: 8,
                    reason: CheckpointReason::Best,
                },
            );
        }
    }
    // No Finished event: the machine went down. The scan finds the heartbeat stopped.
    let stale = RunSummary {
        manifest: manifest(TRAIN_KILLED, JobKind::Train, "SYNA", at(-600)),
        path: format!("runs/{TRAIN_KILLED}").into(),
        stale: true,
    };
    quantdeck::tui::update(app, Msg::Runs(vec![stale]));
}

/// What a gate graded: the final model's validation at update 20.
pub fn graded(fitness: f64, profit_factor: f64, max_drawdown: f64) -> ValidationMetrics {
    ValidationMetrics {
        update: 20,
        fitness,
        profit_factor,
        max_drawdown,
        consistency: 0.5 + fitness,
        sharpe: 2.0 * fitness,
        total_return: fitness / 5.0,
        trades: 64,
        days: 18,
        ..ValidationMetrics::default()
    }
}

fn add_gates(app: &mut App) {
    use GateFlag::*;
    #[rustfmt::skip]
    let gates = [
        (GATE_OLD, 10, "train-20240531-220000-sync", GateClass::Drop,
         vec![LowPf, FitnessDecline], None, graded(0.04, 0.92, 0.31)),
        (GATE_KILLED, 30, TRAIN_KILLED, GateClass::Review,
         vec![InsufficientTrades, LowPf], Some(8), validation(8)),
        (GATE_THIN, 45, "train-20240531-235000-synb", GateClass::Drop,
         vec![InsufficientTrades], None, thin_validation(20, 1, 3)),
        (GATE_REVIEW, 65, "train-20240531-230000-btc", GateClass::Review,
         vec![UnstableTraining], Some(10), graded(0.18, 1.21, 0.12)),
        (GATE, 200, TRAIN, GateClass::Approved, vec![], Some(10), graded(0.42, 1.65, 0.05)),
    ];
    for (id, minute, parent, class, flags, use_checkpoint, metrics) in gates {
        // Gates from before the composite score have none (the thin one here).
        let k = metrics.fitness;
        let composite = (id != GATE_THIN).then_some(CompositeScore {
            total: 100.0 * (0.4 * k + 0.2 * 0.3 + 0.2 * 0.6 + 0.1 * 0.8 - 0.1 * 0.2),
            profitability: k,
            reward: 0.3,
            value: 0.6,
            exploration: 0.8,
            instability: 0.2,
        });
        let mut f = feed(app, id);
        f.send(
            minute,
            Event::Started {
                kind: JobKind::Gate,
                label: parent.into(),
            },
        );
        let mut result = GateResult {
            class,
            flags,
            use_checkpoint,
            metrics,
            composite,
            baselines: None,
            group: None,
        };
        // Gates from before the baseline check have none.
        if let Some(check) = baseline_check(id, &result.metrics) {
            result = result.with_baselines(check);
        }
        let class = result.class;
        f.send(minute + 1, Event::Gate(result));
        f.send(
            minute + 1,
            Event::Finished {
                status: JobStatus::Completed,
                message: class.as_str().into(),
            },
        );
        f.app.run_mut(id).parent = Some(parent.into());
    }
    add_group_gate(app);
}

fn fold(i: usize) -> FoldResult {
    let x = i as f64;
    let drift = [0.0008, -0.0003, 0.0006, 0.0011, 0.0002][i % 5];
    let equity: Vec<f64> = (0..60)
        .map(|b| {
            let b = b as f64;
            1.0 + drift * b + 0.004 * (b * 0.4 + x).sin()
        })
        .collect();
    let ret = equity.last().copied().unwrap_or(1.0) - 1.0;
    FoldResult {
        fold: i + 1,
        start: Utc
            .with_ymd_and_hms(2024, 8, 1, 0, 0, 0)
            .single()
            .unwrap_or_default()
            + Duration::days(20 * i as i64),
        end: Utc
            .with_ymd_and_hms(2024, 8, 20, 0, 0, 0)
            .single()
            .unwrap_or_default()
            + Duration::days(20 * i as i64),
        bars: 520,
        total_return: ret,
        sharpe: 1.2 + 0.3 * x - if ret < 0.0 { 2.0 } else { 0.0 },
        max_drawdown: 0.02 + 0.005 * x,
        win_rate: 0.48 + 0.02 * x,
        profit_factor: 1.1 + 0.15 * x,
        trades: 30 + 4 * i,
        buy_hold_return: 0.01 - 0.006 * x,
        baselines: baselines(i, equity.len()),
        equity,
        portfolio: None,
        // The threshold holds more as the folds go on; the raw policy acts on every choice.
        held: [0, 12, 25, 40, 52][i % 5],
        confidence: Some([0.34, 0.46, 0.61]),
        raw: Some(RawFigures {
            total_return: ret - 0.004 + 0.002 * x,
            sharpe: 0.9 + 0.2 * x - if ret < 0.0 { 1.5 } else { 0.0 },
            max_drawdown: 0.03 + 0.004 * x,
            trades: 48 + 6 * i,
        }),
        orders: Vec::new(),
    }
}

/// The four baselines of fold `i`: buy-and-hold drifts with the fold, momentum a little less,
/// random loses its costs, flat stays at 1.
fn baselines(i: usize, n: usize) -> Vec<BaselineResult> {
    let x = i as f64;
    let curve = |drift: f64| -> Vec<f64> { (0..n).map(|b| 1.0 + drift * b as f64).collect() };
    [
        (Baseline::BuyHold, 0.0002 - 0.0001 * x, 0.6 - 0.4 * x),
        (Baseline::Flat, 0.0, 0.0),
        (Baseline::Random, -0.0002, -1.1),
        (Baseline::Momentum, 0.0003, 0.9 - 0.1 * x),
    ]
    .into_iter()
    .map(|(baseline, drift, sharpe)| {
        let equity = curve(drift);
        BaselineResult {
            baseline,
            total_return: equity.last().copied().unwrap_or(1.0) - 1.0,
            sharpe,
            max_drawdown: 0.0,
            equity,
        }
    })
    .collect()
}

fn add_walk(app: &mut App) {
    let mut f = feed(app, WALK);
    f.send(
        210,
        Event::Started {
            kind: JobKind::WalkForward,
            label: TRAIN.into(),
        },
    );
    f.send(
        210,
        Event::WalkSetup(Box::new(WalkSetup {
            rules: walk_rules(),
            momentum: Some(MomentumRule { fast: 8, slow: 32 }),
            gate: Some(approved()),
        })),
    );
    for i in 0..5 {
        f.send(211 + i as i64, Event::Fold(fold(i)));
        f.send(
            211 + i as i64,
            Event::Progress {
                done: i as u64 + 1,
                total: 5,
                message: String::new(),
            },
        );
    }
    f.send(
        217,
        Event::Decision(DecisionReport {
            decision: Decision::Paper,
            positive_folds: 4,
            folds: 5,
            sharpe_std: 1.31,
            beats: vec![Baseline::BuyHold, Baseline::Flat, Baseline::Random],
            trails: vec![Baseline::Momentum],
            gate: Some(approved()),
        }),
    );
    f.send(
        217,
        Event::Finished {
            status: JobStatus::Completed,
            message: "PAPER".into(),
        },
    );
    f.app.run_mut(WALK).parent = Some(TRAIN.into());
}

/// The full state: every pane has something to show.
pub fn full_app() -> App {
    let mut app = App::new();
    quantdeck::tui::update(&mut app, Msg::Series(stored_series()));
    add_fetch(&mut app);
    add_failed_and_interrupted(&mut app);
    add_training(&mut app);
    add_gates(&mut app);
    add_walk(&mut app);
    add_paper(&mut app);
    add_train_modes(&mut app);
    app.store_stale = false;
    app.message = "ready".into();
    app
}

/// This machine's name in the fixture.
pub const HOST: &str = "devbox";
/// A finished quick_test run on this machine: the chooser's measurement.
pub const QUICK_RUN: &str = "train-20240530-120000-syna";

/// A finished training run of `cfg` on `host` at `sps` env-steps/s, as its manifest says.
pub fn speed_run(id: &str, host: &str, cfg: &Config, sps: f64) -> RunSummary {
    let steps = cfg.ppo.total_timesteps;
    let mut m = manifest(id, JobKind::Train, "SYNA", at(-1200));
    m.status = JobStatus::Completed;
    m.host = host.into();
    m.config = serde_json::to_value(cfg).expect("a config serializes");
    m.summary = JobSummary::Train {
        symbol: "SYNA".into(),
        updates: 30,
        timesteps: steps,
        sps,
        elapsed_s: steps as f64 / sps,
        best_update: Some(25),
        last_validation: None,
        cancelled: false,
    };
    RunSummary {
        manifest: m,
        path: format!("runs/{id}").into(),
        stale: false,
    }
}

/// The four built-in modes, as a TUI started without flags offers them, and one quick_test run
/// here (and a faster one on another machine, which must not count).
fn add_train_modes(app: &mut App) {
    let startup = config::load(None, None).expect("the built-in defaults load");
    let (list, pre) = chooser::mode_configs(&startup, false, None);
    app.train = chooser::train_modes(&list, pre, false, HOST.into());
    let quick = config::load(Some("quick_test"), None).expect("quick_test loads");
    app.train.note_runs(&[
        speed_run(QUICK_RUN, HOST, &quick, 8_135.0),
        speed_run("train-20240530-130000-syna", "gpu-box-2", &quick, 95_000.0),
    ]);
}
