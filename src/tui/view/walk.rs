//! Pane 4: one walk-forward run — per-fold returns against buy-and-hold, fold metrics, the
//! folds' equity curves and the deployment decision.

use super::training::run_title;
use super::widgets::{
    block, decision_color, dim, empty, header_style, line_chart, num, pct, pct_abs, signed_color,
    Series,
};
use crate::jobs::JobKind;
use crate::tui::app::{App, RunView};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Cell, Paragraph, Row, Table};
use ratatui::Frame;

/// Colours the fold curves cycle through.
const FOLD_COLORS: [Color; 6] = [
    Color::Cyan,
    Color::Green,
    Color::Yellow,
    Color::Magenta,
    Color::LightBlue,
    Color::LightRed,
];

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
        Constraint::Length(3),
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
    let p =
        Paragraph::new(Line::from(spans)).block(block(run_title(app, run, JobKind::WalkForward)));
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

fn curves(frame: &mut Frame, area: Rect, run: &RunView) {
    let pts: Vec<Vec<(f64, f64)>> = run
        .folds
        .iter()
        .map(|f| {
            f.equity
                .iter()
                .enumerate()
                .map(|(i, e)| (i as f64, *e))
                .collect()
        })
        .collect();
    let names: Vec<String> = run.folds.iter().map(|f| format!("F{}", f.fold)).collect();
    let series: Vec<Series> = pts
        .iter()
        .zip(&names)
        .enumerate()
        .map(|(i, (p, n))| Series {
            name: n,
            color: FOLD_COLORS[i % FOLD_COLORS.len()],
            points: p,
        })
        .collect();
    let mut title = vec![Span::raw(" Fold equity ")];
    for s in &series {
        title.push(Span::styled(
            format!("{} ", s.name),
            Style::new().fg(s.color),
        ));
    }
    line_chart(frame, area, Line::from(title), &series);
}

fn fold_table(frame: &mut Frame, area: Rect, run: &RunView) {
    let header = Row::new([
        "Fold", "Period", "Bars", "Return", "Sharpe", "Max DD", "Win", "PF", "Trades", "B&H",
    ])
    .style(header_style());
    let rows = run.folds.iter().map(|f| {
        let colored = |x: f64| Cell::from(Span::styled(pct(x), Style::new().fg(signed_color(x))));
        Row::new(vec![
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
            Cell::from(f.trades.to_string()),
            colored(f.buy_hold_return),
        ])
    });
    let widths = [
        Constraint::Length(4),
        Constraint::Length(23),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(8),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(block(" Folds "));
    frame.render_widget(table, area);
}
