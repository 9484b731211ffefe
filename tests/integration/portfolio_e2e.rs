//! A portfolio model through every stage, as a user runs it: the real binary on a fresh home,
//! fetch → train → gate → walk-forward → paper on the synthetic universe (issue 10).

use crate::common::{self, qd, text};
use quantdeck::config::Config;
use quantdeck::engine::load_policy;
use quantdeck::eval::{Baseline, FoldResult};
use quantdeck::jobs::{list_runs, Event, EventRecord, JobKind};
use quantdeck::live::view::PaperSnapshot;
use quantdeck::paths::Paths;
use std::path::Path;

/// A 4-symbol synthetic universe over 3½ years of days, 8-day windows, tiny PPO.
fn tiny_portfolio() -> Config {
    let mut cfg = common::tiny_config();
    cfg.portfolio.synthetic_symbols = (1..=4).map(|i| format!("SYNP{i:02}")).collect();
    cfg.portfolio.start = "2021-01-04".into();
    cfg.portfolio.end = "2024-06-28".into();
    cfg.portfolio.window = 8;
    cfg.portfolio.episode_len = 64;
    // Paper: the regime's weights as they are (the default gates cap a position at 20 % of
    // equity), no latch from a random market, replay at full speed. The confidence threshold
    // stays the default: a portfolio model's (0) lets its choices through where the seed's 0.40
    // for the 8 sizing actions would hold a young 12-way policy every day.
    cfg.live.cooldown_s = 0;
    cfg.live.cash_buffer = 0.0;
    cfg.live.max_position = 1.0;
    cfg.live.max_exposure = 1.0;
    cfg.live.daily_loss_limit = 1.0;
    cfg.live.bars_per_second = 0.0;
    cfg.backtest.drawdown_halve = 0.99;
    cfg.backtest.drawdown_halt = 0.99;
    quantdeck::config::validate(&cfg).unwrap();
    cfg
}

fn run_dir(home: &Path, kind: JobKind) -> std::path::PathBuf {
    let runs = list_runs(&Paths::under(home));
    let r = runs
        .iter()
        .rev()
        .find(|r| r.manifest.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} run"));
    r.path.clone()
}

#[test]
fn fetch_train_gate_walk_forward_and_paper_a_portfolio_model() {
    let home = tempfile::tempdir().unwrap();
    let cfg_path = home.path().join("tiny.toml");
    std::fs::write(&cfg_path, toml::to_string(&tiny_portfolio()).unwrap()).unwrap();
    let cfg = cfg_path.display().to_string();
    let ok = |args: &[&str]| {
        let o = qd(home.path(), args);
        let out = text(&o);
        assert!(o.status.success(), "quantdeck {args:?}:\n{out}");
        out
    };

    // Fetch: the universe's daily bars, generated with their common factor.
    let out = ok(&["--config", &cfg, "fetch", "--portfolio"]);
    assert!(out.contains("4 symbol(s) stored"), "{out}");
    let store = quantdeck::data::Store::new(&Paths::under(home.path()).data);
    for i in 1..=4 {
        let sym = quantdeck::market::Symbol::parse(&format!("SYNP{i:02}"));
        let bars = store.read(&sym, quantdeck::market::Timeframe::Day).unwrap();
        assert!(bars.len() > 800, "{sym}: {} daily bars", bars.len());
    }

    // Train: a portfolio model with the universe's layout.
    ok(&[
        "--config",
        &cfg,
        "train",
        "--portfolio",
        "--iterations",
        "4",
    ]);
    let train_dir = run_dir(home.path(), JobKind::Train);
    let (_, meta) = load_policy(&train_dir.join("model.safetensors")).unwrap();
    let spec = meta.portfolio.clone().expect("a portfolio model");
    assert_eq!(spec.symbols, ["SYNP01", "SYNP02", "SYNP03", "SYNP04"]);

    // Gate: a class, the composite score, and equal weight beside the model.
    let out = ok(&["--config", &cfg, "gate"]);
    assert!(
        ["APPROVED", "REVIEW", "DROP"]
            .iter()
            .any(|c| out.contains(c)),
        "{out}"
    );
    assert!(
        out.contains("composite") && out.contains("equal weight"),
        "{out}"
    );

    // Walk-forward: folds strictly after the validation end, each beside equal weight.
    let out = ok(&["--config", &cfg, "walk-forward", "--folds", "3"]);
    assert!(out.contains("vs equal weight"), "{out}");
    let wf = run_dir(home.path(), JobKind::WalkForward);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(wf.join("walkforward.json")).unwrap())
            .unwrap();
    let folds: Vec<FoldResult> = serde_json::from_value(v["folds"].clone()).unwrap();
    assert_eq!(folds.len(), 3);
    let seen = meta.seen_until();
    for f in &folds {
        assert!(
            f.start > seen,
            "fold {} starts {} ≤ {seen}",
            f.fold,
            f.start
        );
        let ew = f
            .baselines
            .iter()
            .find(|b| b.baseline == Baseline::EqualWeight)
            .expect("equal weight in every fold");
        assert_eq!(ew.equity.len(), f.equity.len(), "same bars as the model");
        let p = f.portfolio.as_ref().expect("portfolio figures");
        assert_eq!(p.regimes.len(), 12);
        assert!((p.regimes.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // Equal weight buys once: its turnover is the initial purchase, about 1.
        assert!(
            p.equal_weight_turnover > 0.9 && p.equal_weight_turnover < 1.01,
            "{p:?}"
        );
    }
    // The folds tile the bars after the validation end: each is marked at the next one's first.
    assert!(folds.windows(2).all(|w| w[0].end == w[1].start));

    // A period inside what the model saw is refused, naming both ranges.
    let inside = meta.train_last.format("%Y-%m-%d").to_string();
    let o = qd(
        home.path(),
        &["--config", &cfg, "walk-forward", "--from", &inside],
    );
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("overlaps the bars the model saw"), "{out}");

    // Paper, on the simulated broker: the unseen days replayed, one decision per day over the
    // whole universe, the regime and each member's target against actual weight in the snapshot.
    let out = ok(&["--config", &cfg, "paper", "--broker", "sim"]);
    assert!(out.contains("replay finished"), "{out}");
    let sent: usize = out
        .split(" order(s) sent")
        .next()
        .and_then(|h| h.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(sent >= 4, "the regimes' targets were traded: {out}");
    let paper = run_dir(home.path(), JobKind::Paper);
    let snaps: Vec<PaperSnapshot> = std::fs::read_to_string(paper.join("events.jsonl"))
        .unwrap()
        .lines()
        .filter_map(
            |l| match serde_json::from_str::<EventRecord>(l).ok()?.event {
                Event::Paper(s) => Some(*s),
                _ => None,
            },
        )
        .collect();
    let views: Vec<_> = snaps.iter().filter_map(|s| s.portfolio.as_ref()).collect();
    let last = views.last().expect("portfolio snapshots");
    assert_eq!(
        last.rows
            .iter()
            .map(|r| r.symbol.as_str())
            .collect::<Vec<_>>(),
        ["SYNP01", "SYNP02", "SYNP03", "SYNP04"]
    );
    assert!(last.regime.is_some(), "a regime was chosen");
    let decided: Vec<_> = views.iter().filter_map(|v| v.last_bar).collect();
    assert!(
        decided.iter().all(|&t| t > seen),
        "decisions only on unseen days"
    );
    assert_eq!(
        decided.last(),
        folds.last().map(|f| &f.end),
        "the replay reached the last day"
    );
    // Actual weights and cash make up the portfolio.
    let total: f64 = last.rows.iter().map(|r| r.actual).sum::<f64>() + last.cash;
    assert!((total - 1.0).abs() < 0.02, "weights + cash = {total}");
}
