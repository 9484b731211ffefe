//! One truth from validation to paper, through the binary: a simulated paper replay of a
//! walk-forward fold trades exactly what the fold reported — the same decisions, fills and
//! equity, bar for bar — and the session's expectation per day is walk-forward's.

use crate::common;
use quantdeck::eval::FoldResult;
use quantdeck::jobs::Event;

/// Small enough to train in seconds.
const CONFIG: &str = "[universe]\nequities = [\"SYNA\"]\ncrypto = []\n[data]\nend = \"2024-03-28\"\n\
[features]\nwindow = 8\n[ppo]\ndevice = \"cpu\"\nn_envs = 8\nn_steps = 32\nminibatch = 64\nepochs = 1\n\
validation_interval = 1\nhidden_dims = [16]\n[live]\ncooldown_s = 1800\n";

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn a_replay_of_a_fold_trades_what_walk_forward_reported() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let cfg = h.join("small.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let cfg = cfg.display().to_string();
    let ok = |args: &[&str]| common::qd_ok(h, &cfg, args);
    let walk = |args: &[&str]| {
        ok(args);
        let wf = common::runs_named(h, "walk-forward-")
            .pop()
            .expect("a walk-forward run");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(wf.join("walkforward.json")).unwrap())
                .unwrap();
        let folds: Vec<FoldResult> = serde_json::from_value(json["folds"].clone()).unwrap();
        (json, folds)
    };
    ok(&["fetch"]);
    ok(&["train", "SYNA", "--timesteps", "2048"]);
    // A barely trained policy is unsure: set the threshold at its median confidence, so about
    // half of its choices are held and the rest trade.
    let (_, folds) = walk(&["walk-forward", "--folds", "4"]);
    let mut medians: Vec<f32> = folds
        .iter()
        .filter_map(|f| f.confidence)
        .map(|c| c[1])
        .collect();
    medians.sort_by(f32::total_cmp);
    let threshold = medians[medians.len() / 2];
    std::fs::write(
        &cfg,
        format!("{CONFIG}confidence_threshold = {threshold}\n"),
    )
    .unwrap();
    let (json, folds) = walk(&["walk-forward", "--folds", "4"]);
    assert_eq!(
        json["rules"]["confidence_threshold"].as_f64().unwrap() as f32,
        threshold
    );
    // The fold with the most fills, so the comparison has trades in it.
    let fold = folds.iter().max_by_key(|f| f.orders.len()).unwrap().clone();
    let summary: Vec<_> = folds
        .iter()
        .map(|f| (f.orders.len(), f.held, f.bars))
        .collect();
    assert!(
        !fold.orders.is_empty(),
        "no fold traded: (fills, held, bars) {summary:?}"
    );
    assert!(fold.held > 0, "the threshold held nothing: {summary:?}");
    let out = ok(&[
        "paper",
        "--broker",
        "sim",
        "--speed",
        "0",
        "--fold",
        &fold.fold.to_string(),
    ]);
    assert!(out.contains("replaying fold"), "{out}");
    let session = common::runs_named(h, "paper-")
        .pop()
        .expect("a paper session");
    let ev = common::run_events(&session);

    // Every decision of the fold, at the fold's equity, and nothing after its last bar.
    let decided: Vec<_> = ev
        .iter()
        .filter_map(|r| match &r.event {
            Event::Decided(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(decided.len(), fold.bars, "decisions vs fold bars");
    assert_eq!(decided[0].bar, fold.start);
    let initial = 100_000.0;
    for (k, d) in decided.iter().enumerate() {
        assert!(
            close(d.equity, fold.equity[k] * initial),
            "bar {k} ({}): paper equity {} vs walk-forward {}",
            d.bar,
            d.equity,
            fold.equity[k] * initial
        );
    }
    // The fills: same bars, quantities and prices.
    let fills: Vec<_> = ev
        .iter()
        .filter_map(|r| match &r.event {
            Event::Order(o) if o.filled_qty > 0.0 => Some(o.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(fills.len(), fold.orders.len(), "fills vs fold orders");
    for (o, f) in fills.iter().zip(&fold.orders) {
        let signed = if o.side == "buy" {
            o.filled_qty
        } else {
            -o.filled_qty
        };
        assert_eq!(o.at, Some(f.ts), "fill time");
        assert!(close(signed, f.qty), "qty {signed} vs {}", f.qty);
        assert!(close(o.fill_price.unwrap(), f.price), "price");
    }
    // The session ends at the fold's last mark, and expects walk-forward's figure per day.
    let last = ev
        .iter()
        .rev()
        .find_map(|r| match &r.event {
            Event::Paper(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    let end = fold.equity.last().unwrap() * initial;
    assert!(
        close(last.account.equity, end),
        "{} vs {end}",
        last.account.equity
    );
    let expected = quantdeck::jobs::replay::per_day(&folds).unwrap();
    assert!(close(last.rows[0].expected_daily.unwrap(), expected));
}
