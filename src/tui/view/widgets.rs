//! Shared pieces of the panes: blocks, charts, number formats and the colour of outcomes.

use crate::eval::{Decision, GateClass, GateFlag};
use crate::jobs::JobStatus;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph, Wrap};
use ratatui::Frame;

pub fn block(title: impl Into<Line<'static>>) -> Block<'static> {
    Block::bordered().title(title.into())
}

pub fn header_style() -> Style {
    Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan)
}

pub fn highlight_style() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

pub fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// A rectangle of at most `w`×`h` centred in `area` (never larger than `area`).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// A paragraph saying a pane has nothing to show yet, and how to get something.
pub fn empty(frame: &mut Frame, area: Rect, title: &'static str, hint: &str) {
    let p = Paragraph::new(hint.to_string())
        .style(dim())
        .wrap(Wrap { trim: true })
        .block(block(title));
    frame.render_widget(p, area);
}

pub fn status_color(status: JobStatus, stale: bool) -> Color {
    match status {
        JobStatus::Running if stale => Color::Magenta,
        JobStatus::Running => Color::Cyan,
        JobStatus::Completed => Color::Green,
        JobStatus::Cancelled => Color::Yellow,
        JobStatus::Failed => Color::Red,
    }
}

/// Gate classes: APPROVED green, REVIEW yellow, DROP red.
pub fn class_color(class: GateClass) -> Color {
    match class {
        GateClass::Approved => Color::Green,
        GateClass::Review => Color::Yellow,
        GateClass::Drop => Color::Red,
    }
}

/// Walk-forward decisions: LIVE green, PAPER cyan, RETRAIN yellow, DROP red.
pub fn decision_color(decision: Decision) -> Color {
    match decision {
        Decision::Live => Color::Green,
        Decision::Paper => Color::Cyan,
        Decision::Retrain => Color::Yellow,
        Decision::Drop => Color::Red,
    }
}

/// Gate flags as one comma-separated string (`sep` between them), `none` when empty.
pub fn flags_text(flags: &[GateFlag], sep: &str, none: &str) -> String {
    if flags.is_empty() {
        return none.to_string();
    }
    flags
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(sep)
}

pub fn signed_color(x: f64) -> Color {
    if x > 0.0 {
        Color::Green
    } else if x < 0.0 {
        Color::Red
    } else {
        Color::Gray
    }
}

/// A short number for tight columns: 0.000123 → 1.23e-4, 12345 → 12.3k.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else if a >= 0.01 {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
}

/// Axis ends: whole numbers (updates, bar counts) without decimals.
fn axis_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e7 {
        format!("{x:.0}")
    } else {
        num(x)
    }
}

/// A fraction as a signed percentage: 0.0321 → +3.21%.
pub fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.2}%", x * 100.0)
    } else {
        "–".into()
    }
}

/// A fraction as an unsigned percentage (drawdowns, win rates).
pub fn pct_abs(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", x.abs() * 100.0)
    } else {
        "–".into()
    }
}

pub fn money(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let cents = (x.abs() * 100.0).round() as u64;
    let whole = group(cents / 100);
    let sign = if x < 0.0 { "-" } else { "" };
    format!("{sign}{whole}.{:02}", cents % 100)
}

/// Thousands separators: 1234567 → 1,234,567.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds as 45s, 12m05s or 3h07m.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "–".into();
    }
    let s = secs.round() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// Text cut to `n` characters with an ellipsis, for fixed-width cells.
pub fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else if n == 0 {
        String::new()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// One line of a chart: a name, a colour and its points. A dimmed line is context (a
/// baseline) behind the lines that matter.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: Color,
    pub dim: bool,
    pub points: &'a [(f64, f64)],
}

impl Series<'_> {
    pub fn style(&self) -> Style {
        let s = Style::new().fg(self.color);
        if self.dim {
            s.add_modifier(Modifier::DIM)
        } else {
            s
        }
    }
}

/// Bounds of the finite points, widened when flat so the chart has a visible range.
fn bounds(series: &[Vec<(f64, f64)>]) -> Option<([f64; 2], [f64; 2])> {
    let pts = series.iter().flatten();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    let mut any = false;
    for &(x, y) in pts {
        any = true;
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !any {
        return None;
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        let pad = if y0 == 0.0 { 1.0 } else { y0.abs() * 0.01 };
        y0 -= pad;
        y1 += pad;
    }
    Some(([x0, x1], [y0, y1]))
}

/// A line chart of one or more series in a titled block; the title carries the legend so
/// small charts keep all their room for the lines.
pub fn line_chart(frame: &mut Frame, area: Rect, title: Line<'static>, series: &[Series]) {
    if area.is_empty() {
        return;
    }
    let finite: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect()
        })
        .collect();
    let Some((xb, yb)) = bounds(&finite) else {
        let p = Paragraph::new("no data yet")
            .style(dim())
            .block(block(title));
        frame.render_widget(p, area);
        return;
    };
    let datasets: Vec<Dataset> = series
        .iter()
        .zip(&finite)
        .map(|(s, pts)| {
            Dataset::default()
                .name(s.name.to_string())
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(s.style())
                .data(pts)
        })
        .collect();
    // Axis labels only where there is room for them next to the plot.
    let roomy = area.width >= 24 && area.height >= 7;
    let mut x_axis = Axis::default().bounds(xb).style(dim());
    let mut y_axis = Axis::default().bounds(yb).style(dim());
    if roomy {
        x_axis = x_axis.labels([axis_num(xb[0]), axis_num(xb[1])]);
        y_axis = y_axis.labels([num(yb[0]), num(yb[1])]);
    }
    let chart = Chart::new(datasets)
        .block(block(title))
        .x_axis(x_axis)
        .y_axis(y_axis)
        .legend_position(None);
    frame.render_widget(chart, area);
}

/// A chart title: the name and the latest value in the series colour.
pub fn chart_title(name: &str, color: Color, latest: Option<f64>) -> Line<'static> {
    let mut spans = vec![Span::styled(name.to_string(), Style::new().fg(color))];
    if let Some(v) = latest {
        spans.push(Span::raw(format!(" {}", num(v))));
    }
    Line::from(spans)
}

/// Splits `area` into a `rows`×`cols` grid, row by row.
pub fn grid(area: Rect, rows: u16, cols: u16) -> Vec<Rect> {
    let row_areas = Layout::vertical((0..rows).map(|_| Constraint::Ratio(1, rows as u32)))
        .split(area)
        .to_vec();
    row_areas
        .into_iter()
        .flat_map(|r| {
            Layout::horizontal((0..cols).map(|_| Constraint::Ratio(1, cols as u32)))
                .split(r)
                .to_vec()
        })
        .collect()
}

/// A label-value pair for info lines.
pub fn kv(label: &str, value: String) -> Vec<Span<'static>> {
    vec![
        Span::styled(format!("{label} "), dim()),
        Span::raw(value),
        Span::raw("  "),
    ]
}
