//! The Paper pane's view of a portfolio model: the regime chosen at the last decision (and the
//! policy's confidence), then one row per member — target weight against actual weight, the
//! difference, the position and the gates' word — and cash; beside the title, the session's
//! return per day against walk-forward's expectation when there is one.

use super::widgets::{block, dim, header_style, money, num, pct, signed_color};
use crate::live::view::{PortfolioView, WeightRow};
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table};
use ratatui::Frame;

/// A weight difference this small is within rounding and costs: not highlighted.
const CLOSE_ENOUGH: f64 = 0.01;

/// Rows the table takes: the members, cash, the header and the borders.
pub fn height(pv: &PortfolioView) -> u16 {
    pv.rows.len() as u16 + 4
}

/// A share of equity (signed: cash below zero is a debit).
fn weight(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", x * 100.0)
    } else {
        "–".into()
    }
}

fn diff(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1}%", x * 100.0)
    } else {
        "–".into()
    }
}

pub fn render(frame: &mut Frame, area: Rect, pv: &PortfolioView) {
    let header = Row::new(["Symbol", "Target", "Actual", "Diff", "Qty", "Price", "Gate"])
        .style(header_style());
    let mut rows: Vec<Row> = pv.rows.iter().map(member_row).collect();
    rows.push(cash_row(pv));
    let widths = [
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(12),
        Constraint::Length(10),
        Constraint::Min(12),
    ];
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block(Line::from(title(pv)))),
        area,
    );
}

/// A member's row: target against actual weight, the difference (dim when within rounding),
/// the position and the gates' word (red when blocked or masked, yellow when resized).
fn member_row(r: &WeightRow) -> Row<'static> {
    let d = r.actual - r.target;
    let d_style = if d.abs() <= CLOSE_ENOUGH {
        dim()
    } else {
        Style::new().fg(signed_color(d))
    };
    let gate_style = if r.gate.starts_with("blocked") || r.gate.starts_with("masked") {
        Style::new().fg(Color::Red)
    } else if r.gate.starts_with("resized") {
        Style::new().fg(Color::Yellow)
    } else {
        dim()
    };
    Row::new(vec![
        Cell::from(r.symbol.clone()),
        Cell::from(weight(r.target)),
        Cell::from(weight(r.actual)),
        Cell::from(Span::styled(diff(d), d_style)),
        Cell::from(num(r.qty)),
        Cell::from(money(r.price)),
        Cell::from(Span::styled(r.gate.clone(), gate_style)),
    ])
}

/// Cash's row: what the targets leave over against the cash held.
fn cash_row(pv: &PortfolioView) -> Row<'static> {
    let target_cash = 1.0 - pv.rows.iter().map(|r| r.target).sum::<f64>();
    Row::new(vec![
        Cell::from("CASH"),
        Cell::from(weight(target_cash)),
        Cell::from(weight(pv.cash)),
        Cell::from(diff(pv.cash - target_cash)),
        Cell::from(""),
        Cell::from(""),
        Cell::from(""),
    ])
    .style(dim())
}

/// The title: the regime (and the policy's own choice when below the threshold), the last
/// decision's time and the return per day against walk-forward's expectation.
fn title(pv: &PortfolioView) -> Vec<Span<'static>> {
    let regime = pv.regime.clone().unwrap_or_else(|| "–".into());
    let mut title = vec![
        Span::raw(format!(
            " Portfolio {} · {} · regime ",
            pv.run, pv.timeframe
        )),
        Span::styled(
            regime.clone(),
            Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan),
        ),
    ];
    match &pv.chosen {
        Some(c) if *c != regime => title.push(Span::raw(format!(
            " (policy: {c} at {:.2}, below the threshold) ",
            pv.confidence
        ))),
        _ => title.push(Span::raw(format!(" at {:.2} ", pv.confidence))),
    }
    if let Some(t) = pv.last_bar {
        title.push(Span::styled(
            format!("· decided {} ", t.format("%m-%d %H:%M")),
            dim(),
        ));
    }
    if let Some(e) = pv.expected_daily {
        let live = pv.live_daily.map_or("–".into(), pct);
        title.push(Span::raw(format!(
            "· {live}/day vs walk-forward {}/day ",
            pct(e)
        )));
    }
    title
}
