//! Pane 4: one walk-forward run — the rules it traded by and the gate verdict beside the
//! decision, per-fold returns of the model against the buy-and-hold baseline, the equity over all
//! folds with the baselines' behind it, and the fold table (`walk_table`).

use super::training::run_title;
use super::walk_table::{self, present};
use super::widgets::{block, class_color, decision_color, dim, empty, line_chart, num, Series};
use crate::eval::walkforward::{GateVerdict, WalkSetup};
use crate::eval::{Baseline, GateClass};
use crate::jobs::events::FoldResult;
use crate::jobs::JobKind;
use crate::sim::TradingRules;
use crate::tui::app::{App, RunView};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Paragraph};
use ratatui::Frame;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let Some(run) = app.selected_run(JobKind::WalkForward) else {
        empty(
            frame,
            area,
            " Walk-forward ",
            "No walk-forward runs yet: press w to validate the newest completed training run.",
        );
        return;
    };
    let table_h = (run.folds.len() as u16 + 4).max(5);
    let [head, charts, table] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Min(0),
        Constraint::Length(table_h),
    ])
    .areas(area);
    decision(frame, head, app, run);
    let [bars_area, curves_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(charts);
    fold_bars(frame, bars_area, run);
    curves(frame, curves_area, run);
    walk_table::render(frame, table, run);
}

/// The decision and the gate verdict; the baselines it beats; the rules it traded by.
fn decision(frame: &mut Frame, area: Rect, app: &App, run: &RunView) {
    let mut first = vec![Span::styled("decision ", dim())];
    let mut second = vec![Span::styled("baselines ", dim())];
    match &run.decision {
        Some(d) => {
            first.push(Span::styled(
                format!(" {} ", d.decision.as_str()),
                Style::new()
                    .fg(Color::Black)
                    .bg(decision_color(d.decision))
                    .add_modifier(Modifier::BOLD),
            ));
            first.push(Span::raw(format!(
                "  {}/{} folds positive  Sharpe σ {}",
                d.positive_folds,
                d.folds,
                num(d.sharpe_std)
            )));
            let color = if d.trails.is_empty() {
                Color::Green
            } else if d.beats.is_empty() {
                Color::Red
            } else {
                Color::Yellow
            };
            second.push(Span::styled(d.baselines_line(), Style::new().fg(color)));
        }
        None => {
            first.push(Span::styled(
                match &run.progress {
                    Some(p) => format!("pending — fold {}/{}", p.done, p.total),
                    None => "pending".to_string(),
                },
                dim(),
            ));
            second.push(Span::styled("pending", dim()));
        }
    }
    first.push(Span::raw("  "));
    first.push(gate_span(run));
    if let Some(parent) = &run.parent {
        second.push(Span::styled(format!("  of {parent}"), dim()));
    }
    let width = area.width.saturating_sub(2) as usize;
    let lines = vec![
        Line::from(first),
        Line::from(second),
        rules_line(run, width),
    ];
    let title = run_title(app, run, JobKind::WalkForward);
    frame.render_widget(Paragraph::new(lines).block(block(title)), area);
}

/// The model's gate verdict: red and explicit for a DROP, "not gated" when it never was.
fn gate_span(run: &RunView) -> Span<'static> {
    let verdict: Option<&GateVerdict> = run
        .decision
        .as_ref()
        .and_then(|d| d.gate.as_ref())
        .or_else(|| run.walk_setup.as_ref().and_then(|s| s.gate.as_ref()));
    match verdict {
        Some(g) if g.class == GateClass::Drop => Span::styled(
            format!("{}: do not trade it", g.line()),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
        Some(g) => Span::styled(g.line(), Style::new().fg(class_color(g.class))),
        None if run.walk_setup.is_some() => {
            Span::styled("not gated", Style::new().fg(Color::Yellow))
        }
        // Runs from before walk-forward recorded the verdict.
        None => Span::styled("gate verdict not recorded", dim()),
    }
}

/// A number without trailing zeros: 10, 0.05, 2.5.
fn trim(x: f64) -> String {
    let s = format!("{x:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The rules that matter most at a glance: sizing, costs, threshold, stop and take.
fn short_rules(r: &TradingRules) -> String {
    let threshold = if r.has_threshold() {
        format!("confidence ≥ {:.2}", r.confidence_threshold)
    } else {
        "no confidence threshold".to_string()
    };
    format!(
        "size {} % · costs {} % + ${}/order · {threshold} · stop {} % / take {} %",
        trim(r.position_size * 100.0),
        trim(r.slippage * 100.0),
        trim(r.commission),
        trim(r.risk.stop_loss * 100.0),
        trim(r.risk.take_profit * 100.0)
    )
}

/// What the model was traded by: every rule where the line has room, else the short form.
fn rules_text(setup: &WalkSetup, portfolio: bool, room: usize) -> String {
    if portfolio {
        // The portfolio's own rule set (threshold, drawdown rules, capital gates, costs).
        let full = format!(
            "portfolio as traded: {}; baselines equal weight, all cash, random regime at the same costs",
            setup.rules.describe_portfolio()
        );
        if full.chars().count() <= room {
            return full;
        }
        return format!(
            "portfolio as traded: regime confidence ≥ {:.2}, capital gates, costs {} % + ${}/order",
            setup.rules.portfolio_confidence_threshold,
            trim(setup.rules.slippage * 100.0),
            trim(setup.rules.commission)
        );
    }
    let momentum = setup
        .momentum
        .map(|m| format!(" · momentum EMA {}/{}", m.fast, m.slow))
        .unwrap_or_default();
    let full = format!("{}{momentum}", setup.rules.describe());
    if full.chars().count() <= room {
        full
    } else {
        format!("{}{momentum}", short_rules(&setup.rules))
    }
}

fn rules_line(run: &RunView, width: usize) -> Line<'static> {
    const LABEL: &str = "rules     ";
    let text = match &run.walk_setup {
        Some(s) => {
            let portfolio = s.momentum.is_none() || run.folds.iter().any(|f| f.portfolio.is_some());
            Span::raw(rules_text(s, portfolio, width.saturating_sub(LABEL.len())))
        }
        None => Span::styled(
            "not recorded (a run from before walk-forward recorded them)",
            dim(),
        ),
    };
    Line::from(vec![Span::styled(LABEL, dim()), text])
}

/// What the model's bars are set against: the buy-and-hold baseline (equal weight for a
/// portfolio), at the model's size and costs; or, for runs from before baselines, the asset's
/// own move.
#[derive(Clone, Copy)]
enum Reference {
    Baseline(Baseline),
    AssetMove,
}

impl Reference {
    fn of(run: &RunView) -> Reference {
        let b = if run.folds.iter().any(|f| f.portfolio.is_some()) {
            Baseline::EqualWeight
        } else {
            Baseline::BuyHold
        };
        if run
            .folds
            .iter()
            .all(|f| f.baselines.iter().any(|r| r.baseline == b))
        {
            Reference::Baseline(b)
        } else {
            Reference::AssetMove
        }
    }

    fn value(self, f: &FoldResult) -> f64 {
        match self {
            Reference::Baseline(b) => f
                .baselines
                .iter()
                .find(|r| r.baseline == b)
                .map_or(f64::NAN, |r| r.total_return),
            Reference::AssetMove => f.buy_hold_return,
        }
    }

    fn label(self) -> String {
        match self {
            Reference::Baseline(b) => format!("{} baseline", b.name()),
            Reference::AssetMove => "asset move (full size, no costs)".into(),
        }
    }
}

/// Bar heights are |return| in basis points (bars cannot go below zero); the sign is in the
/// colour and the printed value (% of equity).
fn fold_bars(frame: &mut Frame, area: Rect, run: &RunView) {
    let reference = Reference::of(run);
    let title = match reference {
        Reference::Baseline(_) => " Return per fold, % of equity, same size and costs ",
        Reference::AssetMove => " Return per fold, % ",
    };
    let outer = block(title);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let [legend, chart_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    let mut legend_line = Line::from(vec![
        Span::styled("model as traded", Style::new().fg(Color::Cyan)),
        Span::raw(" vs "),
        Span::styled(reference.label(), Style::new().fg(Color::Gray)),
    ]);
    let loss = Span::styled(" · red = loss", dim());
    if legend_line.width() + loss.width() <= usize::from(legend.width) {
        legend_line.push_span(loss);
    }
    frame.render_widget(Paragraph::new(legend_line), legend);
    if run.folds.is_empty() {
        frame.render_widget(Paragraph::new("no folds yet").style(dim()), chart_area);
        return;
    }
    let bar = |x: f64, color: Color| {
        let bps = if x.is_finite() {
            (x.abs() * 10_000.0).round() as u64
        } else {
            0
        };
        let color = if x < 0.0 { Color::Red } else { color };
        Bar::new(bps)
            .text_value(format!("{:+.1}", x * 100.0))
            .style(Style::new().fg(color))
            .value_style(Style::new().fg(Color::Black).bg(color))
    };
    // Fit the bars to the width: two bars and a gap per fold.
    let per_group = chart_area.width as usize / run.folds.len().max(1);
    let bar_w = (per_group.saturating_sub(2) / 2).clamp(1, 7) as u16;
    let mut chart = BarChart::default().bar_width(bar_w).bar_gap(0).group_gap(2);
    for f in &run.folds {
        chart = chart.data(
            BarGroup::new([
                bar(f.total_return, Color::Cyan),
                bar(reference.value(f), Color::Gray),
            ])
            .label(Line::from(format!("F{}", f.fold))),
        );
    }
    frame.render_widget(chart, chart_area);
}

/// Baselines drawn behind the model, dimmed.
fn baseline_color(b: Baseline) -> Color {
    match b {
        Baseline::BuyHold => Color::Yellow,
        Baseline::Flat => Color::Gray,
        Baseline::Random => Color::Magenta,
        Baseline::Momentum => Color::Green,
        Baseline::EqualWeight => Color::Yellow,
    }
}

/// Curves of the folds placed end to end, each fold compounding from where the last ended
/// (every fold starts a fresh account at 1.0).
fn chained<'f>(curves: impl Iterator<Item = &'f [f64]>) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut level = 1.0;
    for c in curves {
        for e in c {
            out.push((out.len() as f64, level * e));
        }
        level *= c.last().copied().unwrap_or(1.0);
    }
    out
}

/// The model's equity over all folds, with the baselines' behind it. A baseline missing from a
/// fold (runs from before baselines existed) is left out rather than drawn misaligned.
fn curves(frame: &mut Frame, area: Rect, run: &RunView) {
    let model = chained(run.folds.iter().map(|f| f.equity.as_slice()));
    let baselines: Vec<(Baseline, Vec<(f64, f64)>)> = present(run)
        .into_iter()
        .filter_map(|b| {
            let per_fold: Option<Vec<&[f64]>> = run
                .folds
                .iter()
                .map(|f| {
                    f.baselines
                        .iter()
                        .find(|r| r.baseline == b)
                        .map(|r| r.equity.as_slice())
                })
                .collect();
            Some((b, chained(per_fold?.into_iter())))
        })
        .collect();
    let mut series: Vec<Series> = baselines
        .iter()
        .map(|(b, pts)| Series {
            name: b.name(),
            color: baseline_color(*b),
            dim: true,
            points: pts,
        })
        .collect();
    // Last, so it is drawn over the baselines.
    series.push(Series {
        name: "model",
        color: Color::Cyan,
        dim: false,
        points: &model,
    });
    let mut title = vec![Span::raw(" Equity, folds end to end: ")];
    for s in series.iter().rev() {
        title.push(Span::styled(format!("{} ", s.name), s.style()));
    }
    line_chart(frame, area, Line::from(title), &series);
}
