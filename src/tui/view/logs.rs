//! Pane 6: every run's log lines, job starts and finishes, newest at the bottom.

use super::widgets::{block, dim};
use crate::jobs::LogLevel;
use crate::tui::app::{App, LogLine};
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

fn level_style(level: LogLevel) -> Style {
    match level {
        LogLevel::Error => Style::new().fg(Color::Red),
        LogLevel::Warn => Style::new().fg(Color::Yellow),
        LogLevel::Debug => dim(),
        LogLevel::Info => Style::new().fg(Color::Green),
    }
}

fn line(l: &LogLine) -> Line<'static> {
    let at =
        l.at.map_or("--:--:--".to_string(), |t| t.format("%H:%M:%S").to_string());
    let mut spans = vec![
        Span::styled(format!("{at} "), dim()),
        Span::styled(
            format!("{:<5} ", l.level.as_str().to_ascii_uppercase()),
            level_style(l.level),
        ),
    ];
    if !l.run_id.is_empty() {
        spans.push(Span::styled(
            format!("{} ", l.run_id),
            Style::new().fg(Color::Cyan),
        ));
    }
    spans.push(Span::raw(l.message.clone()));
    Line::from(spans)
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let total = app.logs.len();
    let scroll = app.sel.log_scroll.min(total.saturating_sub(1));
    let title = if scroll > 0 {
        format!(" Logs — {total} lines, {scroll} up (↓ / End for newest) ")
    } else {
        format!(" Logs — {total} lines ")
    };
    let b = block(title);
    let height = b.inner(area).height as usize;
    // The window ends `scroll` lines above the newest line.
    let end = total - scroll;
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = app.logs.range(start..end).map(line).collect();
    let p = if lines.is_empty() {
        Paragraph::new(Line::styled("no log lines yet", dim()))
    } else {
        Paragraph::new(lines)
    };
    frame.render_widget(p.block(b), area);
}
