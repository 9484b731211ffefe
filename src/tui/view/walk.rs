//! Pane 4: one walk-forward run — per-fold returns against buy-and-hold, fold metrics beside
//! every baseline's, the equity over all folds with the baselines' behind it, and the deployment
//! decision with the baselines the model beats.

use super::training::run_title;
use super::widgets::{
    block, decision_color, dim, empty, header_style, line_chart, num, pct, pct_abs, signed_color,
    Series,
};
use crate::eval::Baseline;
use crate::jobs::events::FoldResult;
use crate::jobs::JobKind;
use crate::tui::app::{App, RunView};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Cell, Paragraph, Row, Table};
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
    let table_h = (run.folds.len() as u16 + 3).max(4);
    let [head, charts, table] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Min(0),
        Constraint::Length(table_h),
    ])
    .areas(area);
    decision(frame, head, app, run);
    let [bars_area, curves_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(charts);
    fold_bars(frame, bars_area, run);
    curves(frame, curves_area, run);
    fold_table(frame, table, run);
}

fn decision(frame: &mut Frame, area: Rect, app: &App, run: &RunView) {
    let mut spans = vec![Span::styled("decision ", dim())];
    let mut second = Vec::new();
    match &run.decision {
        Some(d) => {
            spans.push(Span::styled(
                format!(" {} ", d.decision.as_str()),
                Style::new()
                    .fg(Color::Black)
                    .bg(decision_color(d.decision))
                    .add_modifier(Modifier::BOLD),
            ));
            spans.push(Span::raw(format!(
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
            second.push(Span::styled("baselines ", dim()));
            second.push(Span::styled(d.baselines_line(), Style::new().fg(color)));
        }
        None => spans.push(Span::styled(
            match &run.progress {
                Some(p) => format!("pending — fold {}/{}", p.done, p.total),
                None => "pending".to_string(),
            },
            dim(),
        )),
    }
    if let Some(parent) = &run.parent {
        spans.push(Span::styled(format!("  of {parent}"), dim()));
    }
    let p = Paragraph::new(vec![Line::from(spans), Line::from(second)]).block(block(run_title(
        app,
        run,
        JobKind::WalkForward,
    )));
    frame.render_widget(p, area);
}

/// Bar heights are |return| in basis points (bars cannot go below zero); the sign is in the
/// colour and the printed value.
fn fold_bars(frame: &mut Frame, area: Rect, run: &RunView) {
    let title = Line::from(vec![
        Span::raw(" Return per fold: "),
        Span::styled("strategy", Style::new().fg(Color::Cyan)),
        Span::raw(" vs "),
        Span::styled("buy & hold", Style::new().fg(Color::Gray)),
        Span::styled(" (red = loss) ", dim()),
    ]);
    if run.folds.is_empty() {
        frame.render_widget(
            Paragraph::new("no folds yet")
                .style(dim())
                .block(block(title)),
            area,
        );
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
    let groups: Vec<BarGroup> = run
        .folds
        .iter()
        .map(|f| {
            BarGroup::new([
                bar(f.total_return, Color::Cyan),
                bar(f.buy_hold_return, Color::Gray),
            ])
            .label(Line::from(format!("F{}", f.fold)))
        })
        .collect();
    // Fit the bars to the width: two bars and a gap per fold.
    let inner_w = area.width.saturating_sub(2) as usize;
    let per_group = inner_w / run.folds.len().max(1);
    let bar_w = (per_group.saturating_sub(2) / 2).clamp(1, 7) as u16;
    let mut chart = BarChart::default()
        .block(block(title))
        .bar_width(bar_w)
        .bar_gap(0)
        .group_gap(2);
    for g in groups {
        chart = chart.data(g);
    }
    frame.render_widget(chart, area);
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

/// The baselines the run's folds carry, in display order (a portfolio run's differ).
fn present(run: &RunView) -> Vec<Baseline> {
    Baseline::ALL
        .into_iter()
        .filter(|b| {
            run.folds
                .iter()
                .any(|f| f.baselines.iter().any(|r| r.baseline == *b))
        })
        .collect()
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

fn column_name(b: Baseline) -> &'static str {
    match b {
        Baseline::EqualWeight => "Equal wt",
        Baseline::BuyHold => "Buy&hold",
        Baseline::Flat => "Flat",
        Baseline::Random => "Random",
        Baseline::Momentum => "Momentum",
    }
}

/// A baseline's return and Sharpe in one fold, "–" when the fold has none.
fn baseline_cell(f: &FoldResult, b: Baseline) -> Cell<'static> {
    match f.baselines.iter().find(|r| r.baseline == b) {
        Some(r) => Cell::from(Line::from(vec![
            Span::styled(
                format!("{:>7}", pct(r.total_return)),
                Style::new().fg(signed_color(r.total_return)),
            ),
            Span::styled(format!(" {:>5}", num(r.sharpe)), dim()),
        ])),
        None => Cell::from(Span::styled("–", dim())),
    }
}

fn fold_table(frame: &mut Frame, area: Rect, run: &RunView) {
    let shown = present(run);
    let portfolio = run.folds.iter().any(|f| f.portfolio.is_some());
    let mut header: Vec<&str> = vec![
        "Fold",
        "Period",
        "Bars",
        "Return",
        "Sharpe",
        "Max DD",
        "Win",
        "PF",
        if portfolio { "Turnover" } else { "Trades" },
    ];
    header.extend(shown.iter().map(|b| column_name(*b)));
    let header = Row::new(header).style(header_style());
    let rows = run.folds.iter().map(|f| {
        let colored = |x: f64| Cell::from(Span::styled(pct(x), Style::new().fg(signed_color(x))));
        let mut cells = vec![
            Cell::from(format!("F{}", f.fold)),
            Cell::from(format!(
                "{} → {}",
                f.start.format("%Y-%m-%d"),
                f.end.format("%Y-%m-%d")
            )),
            Cell::from(f.bars.to_string()),
            colored(f.total_return),
            Cell::from(num(f.sharpe)),
            Cell::from(pct_abs(f.max_drawdown)),
            Cell::from(pct_abs(f.win_rate)),
            Cell::from(num(f.profit_factor)),
            Cell::from(match &f.portfolio {
                Some(p) => format!("{:.2}×", p.turnover),
                None => f.trades.to_string(),
            }),
        ];
        cells.extend(shown.iter().map(|b| baseline_cell(f, *b)));
        Row::new(cells)
    });
    let mut widths = vec![
        Constraint::Length(4),
        Constraint::Length(23),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(if portfolio { 8 } else { 6 }),
    ];
    widths.extend(shown.iter().map(|_| Constraint::Length(13)));
    let table = Table::new(rows, widths).header(header).block(block(
        " Folds — model, then each baseline's return and Sharpe ",
    ));
    frame.render_widget(table, area);
}
