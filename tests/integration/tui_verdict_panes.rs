//! The verdict panes read at a glance: fold baselines coloured by whether the model beat them,
//! the walk-forward chart against the buy-and-hold baseline, the rules and the gate verdict in
//! its header, the gate's baseline comparison and a seed group's spread — at 120 columns.

use crate::common::tui_fixture::*;
use crate::common::tui_screen::*;
use quantdeck::tui::Pane;
use ratatui::buffer::Buffer;
use ratatui::style::Color;

/// The cell at the row whose text starts with `row` (inside the box border) and under the first
/// header naming `column`: its first non-blank character's foreground colour and that character.
fn table_cell(buf: &Buffer, row: &str, column: &str) -> Option<(char, Color)> {
    let area = buf.area;
    let line = |y: u16| -> String {
        (area.left()..area.right())
            .map(|x| buf[(x, y)].symbol())
            .collect()
    };
    let (hy, hx) = (area.top()..area.bottom()).find_map(|y| {
        let l = line(y);
        l.find(column).map(|b| (y, l[..b].chars().count() as u16))
    })?;
    let y = (hy..area.bottom()).find(|&y| line(y).trim_start_matches('│').starts_with(row))?;
    (hx..area.right()).find_map(|x| {
        let cell = &buf[(area.left() + x, y)];
        let c = cell.symbol().chars().next()?;
        (c != ' ').then_some((c, cell.fg))
    })
}

fn walk_screen(width: u16, height: u16) -> (Buffer, String) {
    let buf = render(&on(Pane::WalkForward), width, height);
    let s = text(&buf);
    (buf, s)
}

/// A baseline's cell says whether the model beat it in that fold, not whether it made money:
/// in F4 buy-and-hold lost money (−0.59 %) but the model beat it (green); in F2 momentum made
/// money and the model lost (red); flat, at zero, is coloured by the comparison too.
#[test]
fn fold_baselines_are_coloured_by_comparison_with_the_model() {
    let (buf, s) = walk_screen(140, 42);
    assert_eq!(
        table_cell(&buf, "F4", "Buy&hold"),
        Some(('-', Color::Green)),
        "{s}"
    );
    assert_eq!(
        table_cell(&buf, "F2", "Momentum"),
        Some(('+', Color::Red)),
        "{s}"
    );
    assert_eq!(
        table_cell(&buf, "F1", "Flat").map(|c| c.1),
        Some(Color::Green)
    );
    assert_eq!(
        table_cell(&buf, "F2", "Flat").map(|c| c.1),
        Some(Color::Red)
    );
    // The model's own return keeps its sign's colour; the raw policy is dimmed.
    assert_eq!(
        table_cell(&buf, "F2", "Model"),
        Some(('-', Color::Red)),
        "{s}"
    );
    assert_eq!(
        table_cell(&buf, "F1", "Raw policy").map(|c| c.1),
        Some(Color::DarkGray)
    );
}

/// At 120 columns every baseline, the raw policy and the held decisions still fit; the chart
/// plots the buy-and-hold baseline (not the asset's raw move) and says so; the header carries
/// the rules and the gate verdict.
#[test]
fn walk_forward_pane_at_120_columns() {
    let (_, s) = walk_screen(120, 40);
    for needle in [
        "Buy&hold",
        "Flat",
        "Random",
        "Momentum",
        "Raw policy",
        "no thresh.",
        "34 (h 12)",
        "model as traded vs buy-and-hold baseline",
        "% of equity, same size and costs",
        "gated APPROVED",
        "size 10 % · costs 0.05 % + $1/order · confidence ≥ 0.40 · stop 2 % / take 4 % · momentum EMA 8/32",
    ] {
        assert!(s.contains(needle), "{needle:?} missing:\n{s}");
    }
    assert!(!s.contains("buy & hold"), "{s}");
    // F1's bars: the model +4.3 and buy-and-hold's baseline +1.2 (not the asset's +1.0).
    assert!(s.contains("+4.3") && s.contains("+1.2"), "{s}");
    insta::assert_snapshot!(s);
}

/// A model its gate dropped: the decision line says so in red, whatever walk-forward decided.
#[test]
fn walk_forward_of_a_dropped_model_says_do_not_trade_it() {
    use quantdeck::eval::walkforward::GateVerdict;
    use quantdeck::eval::{GateClass, GateFlag};
    let mut app = on(Pane::WalkForward);
    let drop = GateVerdict {
        class: GateClass::Drop,
        flags: vec![GateFlag::LowPf, GateFlag::BelowBaseline],
    };
    let run = app.runs.get_mut(WALK).expect("the fixture's walk-forward");
    if let Some(d) = run.decision.as_mut() {
        d.gate = Some(drop.clone());
    }
    if let Some(w) = run.walk_setup.as_mut() {
        w.gate = Some(drop);
    }
    let buf = render(&app, 140, 42);
    let s = text(&buf);
    let needle = "gated DROP (LOW_PF, BELOW_BASELINE): do not trade it";
    assert!(s.contains(needle), "{s}");
    assert_eq!(color_of(&buf, needle).map(|c| c.0), Some(Color::Red));
    // Never gated: said plainly.
    let run = app.runs.get_mut(WALK).expect("the fixture's walk-forward");
    if let Some(d) = run.decision.as_mut() {
        d.gate = None;
    }
    if let Some(w) = run.walk_setup.as_mut() {
        w.gate = None;
    }
    assert!(text(&render(&app, 140, 42)).contains("not gated"));
}

/// A run from before walk-forward recorded its rules, the verdict, the raw policy or the
/// baselines: it renders, and says what it lacks; its chart falls back to the asset's move,
/// labelled as such.
#[test]
fn walk_forward_of_an_older_run_still_renders() {
    let mut app = on(Pane::WalkForward);
    let run = app.runs.get_mut(WALK).expect("the fixture's walk-forward");
    run.walk_setup = None;
    if let Some(d) = run.decision.as_mut() {
        d.gate = None;
    }
    for f in run.folds.iter_mut() {
        f.raw = None;
        f.held = 0;
        f.confidence = None;
        f.baselines.clear();
    }
    let s = text(&render(&app, 120, 40));
    for needle in [
        "rules     not recorded",
        "gate verdict not recorded",
        "model as traded vs asset move (full size, no costs)",
    ] {
        assert!(s.contains(needle), "{needle:?} missing:\n{s}");
    }
    assert!(!s.contains("Raw policy") && !s.contains("(h "), "{s}");
}

/// The gate that trails momentum: the table says so, the Selected box sets the model beside
/// momentum and buy-and-hold (return and Sharpe each) at 120×40.
#[test]
fn gating_pane_shows_the_baseline_comparison() {
    let mut app = gate_row(GATE_REVIEW);
    app.pane = Pane::Gating;
    let buf = render(&app, 120, 40);
    let s = text(&buf);
    let row = s
        .lines()
        .find(|l| l.contains("train-20240531-230000-btc"))
        .unwrap_or_default();
    assert!(row.contains("trails momentum"), "{row}");
    assert_eq!(
        color_of(&buf, "trails momentum").map(|c| c.0),
        Some(Color::Red)
    );
    let approved = s
        .lines()
        .find(|l| l.contains("train-20240601-091500-syna") && l.contains("APPROVED"))
        .unwrap_or_default();
    assert!(approved.contains("beats"), "{approved}");
    let detail = boxed(&s, "┌ Selected");
    for needle in [
        "trails momentum (BELOW_BASELINE: never APPROVED); beats buy-and-hold",
        "model as traded",
        "momentum 8/32",
        "buy-and-hold",
        "return",
        "Sharpe",
        "+3.60%",
        "+4.50%",
        "+0.52",
        "flags UNSTABLE_TRAINING, BELOW_BASELINE",
    ] {
        assert!(detail.contains(needle), "{needle:?} missing:\n{s}");
    }
    insta::assert_snapshot!(s);
}

/// A seed group: its id in the table, and in the Selected box the class counts, the fitness
/// spread, the median seed (the group's model) and every seed.
#[test]
fn gating_pane_of_a_seed_group() {
    let app = gate_row(GATE_GROUP);
    let s = text(&render(&app, 120, 40));
    let row = s.lines().find(|l| l.contains(GROUP)).unwrap_or_default();
    assert!(
        row.contains("REVIEW") && row.contains("s12 final @20"),
        "{row}"
    );
    let detail = boxed(&s, "┌ Selected");
    for needle in [
        "3 seeds: 2 APPROVED, 0 REVIEW, 1 DROP; fitness worst -0.120, median +0.380, best +0.450",
        "median seed 12 (train-20240601-085000-syna): the group's class and model · worst seed 11",
        "seed 11 DROP -0.120 · seed 12 APPROVED +0.380 · seed 13 APPROVED +0.450",
        "raw, no threshold",
        "WORST_SEED_DROP",
    ] {
        assert!(detail.contains(needle), "{needle:?} missing:\n{s}");
    }
    insta::assert_snapshot!(s);
}

/// A portfolio run's folds: the chart sets the model against the equal-weight baseline, the
/// table shows turnover, and the header says the portfolio's terms (it has no momentum rule).
#[test]
fn walk_forward_of_a_portfolio_plots_equal_weight() {
    use quantdeck::eval::portfolio_walk::PortfolioFold;
    use quantdeck::eval::Baseline;
    let mut app = on(Pane::WalkForward);
    let run = app.runs.get_mut(WALK).expect("the fixture's walk-forward");
    if let Some(w) = run.walk_setup.as_mut() {
        w.momentum = None;
    }
    for f in run.folds.iter_mut() {
        f.held = 0;
        f.raw = None;
        f.portfolio = Some(PortfolioFold {
            turnover: 1.5,
            ..PortfolioFold::default()
        });
        f.baselines.retain(|b| b.baseline != Baseline::Momentum);
        if let Some(b) = f
            .baselines
            .iter_mut()
            .find(|b| b.baseline == Baseline::BuyHold)
        {
            b.baseline = Baseline::EqualWeight;
        }
    }
    let s = text(&render(&app, 120, 40));
    for needle in [
        "model as traded vs equal-weight baseline",
        "Equal wt",
        "Turnover",
        "1.50×",
        "rules     portfolio as traded: regime confidence ≥ 0.00",
    ] {
        assert!(s.contains(needle), "{needle:?} missing:\n{s}");
    }
    // A portfolio's own rules, not the single-symbol threshold or a momentum baseline.
    assert!(
        !s.contains("Momentum") && !s.contains("· confidence ≥ 0.40"),
        "{s}"
    );
}
