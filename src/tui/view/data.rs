//! Pane 1: the stored series and live fetch progress.

use super::widgets::{block, dim, group, header_style, highlight_style};
use crate::jobs::JobKind;
use crate::tui::app::{App, RunView};
use chrono::{DateTime, Utc};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Gauge, Paragraph, Row, Table, TableState};
use ratatui::Frame;

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or("–".into(), |t| t.format("%Y-%m-%d %H:%M").to_string())
}

fn source_cell(source: &str) -> Cell<'static> {
    if source == "synthetic" {
        Cell::from(Span::styled(
            " SYNTHETIC ",
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ))
    } else {
        Cell::from(source.to_string())
    }
}

fn quality_cell(flags: &[String]) -> Cell<'static> {
    if flags.is_empty() {
        Cell::from(Span::styled("ok", Style::new().fg(Color::Green)))
    } else {
        Cell::from(Span::styled(flags.join(" "), Style::new().fg(Color::Red)))
    }
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let fetch_runs: Vec<_> = app
        .runs_of(JobKind::Fetch)
        .into_iter()
        .filter(|r| r.is_running())
        .collect();
    let fetch_h = if app.fetch.is_empty() && fetch_runs.is_empty() {
        0
    } else {
        (app.fetch.len() + 2 * fetch_runs.len() + 3).min(14) as u16
    };
    let [table_area, fetch_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(fetch_h)]).areas(area);
    let (table_area, features_area) = if app.show_features {
        let [t, f] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(24)]).areas(table_area);
        (t, Some(f))
    } else {
        (table_area, None)
    };
    if let Some(f) = features_area {
        features_panel(frame, f, app);
    }
    series_table(frame, table_area, app);
    if fetch_h > 0 {
        fetch_panel(frame, fetch_area, app, &fetch_runs);
    }
}

/// The stored series, one row each, under a title that flags synthetic data.
fn series_table(frame: &mut Frame, area: Rect, app: &App) {
    let mut title = vec![Span::raw(" Data — stored series ")];
    if app.any_synthetic() {
        title.push(Span::styled(
            " SYNTHETIC DATA ",
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ));
        title.push(Span::raw(" "));
    }
    if app.series.is_empty() {
        let text = if app.store_read {
            "No stored bars yet: press f to fetch the universe."
        } else {
            "reading the store…"
        };
        let p = Paragraph::new(text)
            .style(dim())
            .block(block(Line::from(title)));
        frame.render_widget(p, area);
        return;
    }
    let header = Row::new([
        "Symbol",
        "Class",
        "TF",
        "Bars",
        "First bar",
        "Last bar",
        "Source",
        "Cover",
        "Quality",
    ])
    .style(header_style());
    let rows = app.series.iter().map(|s| {
        Row::new(vec![
            Cell::from(s.symbol.clone()),
            Cell::from(s.class.as_str()),
            Cell::from(s.timeframe.to_string()),
            Cell::from(group(s.bars as u64)),
            Cell::from(when(s.first)),
            Cell::from(when(s.last)),
            source_cell(&s.source),
            Cell::from(format!("{:.1}%", s.coverage * 100.0)),
            quality_cell(&s.flags),
        ])
    });
    let widths = [
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(16),
        Constraint::Length(16),
        Constraint::Length(11),
        Constraint::Length(7),
        Constraint::Min(10),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(block(Line::from(title)))
        .row_highlight_style(highlight_style())
        .highlight_symbol("▶ ");
    let mut state = TableState::default()
        .with_selected(Some(app.sel.data.min(app.series.len().saturating_sub(1))));
    frame.render_stateful_widget(table, area, &mut state);
}

/// Running fetches as gauges, then the symbols fetched so far.
fn fetch_panel(frame: &mut Frame, area: Rect, app: &App, fetch_runs: &[&RunView]) {
    let inner_block = block(" Fetch ");
    let inner = inner_block.inner(area);
    frame.render_widget(inner_block, area);
    let gauges_h = (2 * fetch_runs.len() as u16).min(inner.height);
    let [gauges_area, list_area] =
        Layout::vertical([Constraint::Length(gauges_h), Constraint::Min(0)]).areas(inner);
    for (i, run) in fetch_runs.iter().enumerate() {
        let y = gauges_area.y + 2 * i as u16;
        if y + 1 >= gauges_area.bottom() {
            break;
        }
        let label_area = Rect::new(gauges_area.x, y, gauges_area.width, 1);
        let gauge_area = Rect::new(gauges_area.x, y + 1, gauges_area.width, 1);
        fetch_gauge(frame, label_area, gauge_area, run);
    }
    let lines: Vec<Line> = app
        .fetch
        .iter()
        .map(|(sym, f)| {
            let src = if f.source == "synthetic" {
                Span::styled("SYNTHETIC", Style::new().fg(Color::Yellow))
            } else {
                Span::raw(f.source.clone())
            };
            Line::from(vec![
                Span::styled("✓ ", Style::new().fg(Color::Green)),
                Span::raw(format!(
                    "{sym:<10} {:>9} bars {:<6} ",
                    group(f.bars as u64),
                    f.timeframe
                )),
                src,
                Span::styled(format!("  {} → {}", when(f.first), when(f.last)), dim()),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), list_area);
}

/// One running fetch: its run id on one line, its progress gauge on the next.
fn fetch_gauge(frame: &mut Frame, label_area: Rect, gauge_area: Rect, run: &RunView) {
    let (ratio, text) = match &run.progress {
        Some(p) if p.total > 0 => (
            (p.done as f64 / p.total as f64).clamp(0.0, 1.0),
            format!("{}/{} {}", p.done, p.total, p.message),
        ),
        _ => (0.0, "starting…".to_string()),
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(run.id.clone(), Style::new().fg(Color::Cyan)),
            Span::styled(if run.ours { "" } else { " (elsewhere)" }, dim()),
        ])),
        label_area,
    );
    frame.render_widget(
        Gauge::default()
            .ratio(ratio)
            .label(text)
            .gauge_style(Style::new().fg(Color::Cyan)),
        gauge_area,
    );
}

/// The selected series' newest observation row: every feature with its value and a sign bar,
/// in as many columns as fit.
fn features_panel(frame: &mut Frame, area: Rect, app: &App) {
    let Some(fv) = app.current_features() else {
        frame.render_widget(
            Paragraph::new("computing features…")
                .style(dim())
                .block(block(" Features ")),
            area,
        );
        return;
    };
    let title = format!(
        " Features of {} {} at {} — {} (v hides) ",
        fv.symbol,
        fv.timeframe,
        when(fv.at),
        fv.layout
    );
    let b = block(title);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    if let Some(e) = &fv.error {
        frame.render_widget(
            Paragraph::new(e.clone()).style(Style::new().fg(Color::Red)),
            inner,
        );
        return;
    }
    const CELL: u16 = 36;
    let cols = (inner.width / CELL).max(1) as usize;
    let rows = inner.height.max(1) as usize;
    let per_col = fv.values.len().div_ceil(cols).max(1);
    let mut lines: Vec<Line> = Vec::new();
    for r in 0..per_col.min(rows) {
        let mut spans = Vec::new();
        for c in 0..cols {
            let Some((name, v)) = fv.values.get(c * per_col + r) else {
                continue;
            };
            let bar_len = ((v.abs().min(1.0)) * 6.0).round() as usize;
            let color = if *v >= 0.0 { Color::Green } else { Color::Red };
            spans.push(Span::raw(format!("{:<19}", truncate(name, 18))));
            spans.push(Span::styled(format!("{v:>+7.3} "), Style::new().fg(color)));
            spans.push(Span::styled(
                format!("{:<7}", "█".repeat(bar_len)),
                Style::new().fg(color),
            ));
            spans.push(Span::raw(" "));
        }
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
