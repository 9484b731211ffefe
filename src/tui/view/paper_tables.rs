//! The Paper pane's tables: one row per model (its book beside the broker's quantity, what is in
//! flight, the room left below the position cap, the stop-loss and take-profit prices, a stopped
//! symbol in red), the open orders with the rejected and unknown-outcome ones, and the fills
//! from every source (stream, REST look-ups, reconciliation).

use super::paper::red;
use super::widgets::{block, dim, header_style, money, num, pct, signed_color};
use crate::jobs::events::PaperSnapshot;
use crate::live::view::SymbolRow;
use crate::tui::app::RunView;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row, Table};
use ratatui::Frame;

/// Fills and orders shown, newest first.
const RECENT: usize = 8;

fn gate_cell(r: &SymbolRow) -> Cell<'static> {
    if let Some(why) = &r.stopped {
        return Cell::from(Span::styled(format!("STOPPED: {why}"), red()));
    }
    let style = if r.gate.starts_with("blocked") || r.gate.contains("halt") {
        Style::new().fg(Color::Red)
    } else if r.gate.starts_with("resized") || r.gate.starts_with("waiting") {
        Style::new().fg(Color::Yellow)
    } else {
        dim()
    };
    Cell::from(Span::styled(r.gate.clone(), style))
}

/// The broker's quantity: yellow where someone else holds part of it, red when stopped.
fn broker_cell(r: &SymbolRow) -> Cell<'static> {
    let Some(b) = r.broker_qty else {
        return Cell::from(Span::styled("–", dim()));
    };
    let style = if r.stopped.is_some() {
        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
    } else if (b - r.position.qty).abs() > 1e-9 {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new()
    };
    Cell::from(Span::styled(num(b), style))
}

fn qty_cell(r: &SymbolRow) -> Cell<'static> {
    if r.in_flight == 0.0 {
        return Cell::from(num(r.position.qty));
    }
    Cell::from(Span::styled(
        format!("{}{:+}", num(r.position.qty), num(r.in_flight)),
        Style::new().fg(Color::Yellow),
    ))
}

fn cap_cell(r: &SymbolRow) -> Cell<'static> {
    match r.cap_room {
        Some(c) if c < 0.0 => Cell::from(Span::styled(pct(c), Style::new().fg(Color::Red))),
        Some(c) => Cell::from(Span::styled(format!("{:.1}%", c * 100.0), dim())),
        None => Cell::from(Span::styled("–", dim())),
    }
}

pub fn symbol_rows(frame: &mut Frame, area: Rect, s: &PaperSnapshot) {
    let header = Row::new([
        "Symbol", "Last bar", "Action", "Conf", "Gate", "Qty", "Broker", "Price", "Stop", "Take",
        "Cap", "Unreal.", "P&L", "Live/d", "WF/d",
    ])
    .style(header_style());
    let opt = |x: Option<f64>| x.map_or("–".to_string(), pct);
    let level = |x: Option<f64>| x.map_or("–".to_string(), money);
    let rows = s.rows.iter().map(|r| {
        let sym = if r.stopped.is_some() {
            Span::styled(r.symbol.clone(), Style::new().fg(Color::Red))
        } else {
            Span::raw(r.symbol.clone())
        };
        Row::new(vec![
            Cell::from(sym),
            Cell::from(
                r.last_bar
                    .map_or("–".into(), |t| t.format("%d %H:%M").to_string()),
            ),
            Cell::from(r.action.clone().unwrap_or_else(|| "–".into())),
            Cell::from(format!("{:.2}", r.confidence)),
            gate_cell(r),
            qty_cell(r),
            broker_cell(r),
            Cell::from(money(r.position.price)),
            Cell::from(Span::styled(
                level(r.stop_loss),
                Style::new().fg(Color::Red),
            )),
            Cell::from(Span::styled(
                level(r.take_profit),
                Style::new().fg(Color::Green),
            )),
            cap_cell(r),
            Cell::from(Span::styled(
                money(r.position.unrealized_pnl),
                Style::new().fg(signed_color(r.position.unrealized_pnl)),
            )),
            Cell::from(Span::styled(
                money(r.pnl),
                Style::new().fg(signed_color(r.pnl)),
            )),
            Cell::from(opt(r.live_daily)),
            Cell::from(opt(r.expected_daily)),
        ])
    });
    let widths = [
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(4),
        Constraint::Min(10),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(7),
    ];
    let mut title = format!(" Symbols ({}) ", s.rows.len());
    if !s.external_positions.is_empty() {
        title.push_str(&format!(
            "· EXTERNAL: {} ",
            s.external_positions
                .iter()
                .map(|p| format!("{} {:+}", p.symbol, p.qty))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    frame.render_widget(
        Table::new(rows, widths).header(header).block(block(title)),
        area,
    );
}

fn side_style(side: &str) -> Style {
    let color = if side == "buy" {
        Color::Green
    } else {
        Color::Red
    };
    Style::new().fg(color).add_modifier(Modifier::BOLD)
}

/// Open orders, then the orders that were refused or whose fate is (or was) unknown.
pub fn orders(frame: &mut Frame, area: Rect, s: &PaperSnapshot) {
    let header = Row::new([
        "Symbol",
        "Side",
        "Qty",
        "Filled",
        "Type",
        "Status",
        "Client order id",
    ])
    .style(header_style());
    let open = s.open_orders.iter().take(RECENT).map(|o| {
        Row::new(vec![
            Cell::from(o.symbol.clone()),
            Cell::from(Span::styled(o.side.clone(), side_style(&o.side))),
            Cell::from(num(o.qty)),
            Cell::from(num(o.filled_qty)),
            Cell::from(o.order_type.clone()),
            Cell::from(o.status.clone()),
            Cell::from(if o.external {
                Span::styled("EXTERNAL", Style::new().fg(Color::Magenta))
            } else {
                Span::styled(o.client_order_id.clone(), dim())
            }),
        ])
    });
    let problems = s.problem_orders.iter().rev().take(RECENT).map(|p| {
        let style = match p.state.as_str() {
            "rejected" | "never placed" => Style::new().fg(Color::Red),
            "unknown" => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            _ => dim(),
        };
        Row::new(vec![
            Cell::from(p.symbol.clone()),
            Cell::from(Span::styled(p.side.clone(), side_style(&p.side))),
            Cell::from(num(p.qty)),
            Cell::from("–"),
            Cell::from(""),
            Cell::from(Span::styled(p.state.to_uppercase(), style)),
            Cell::from(Span::styled(p.reason.clone(), style)),
        ])
    });
    let widths = [
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(12),
        Constraint::Min(10),
    ];
    let mut title = format!(" Open orders ({}) ", s.open_orders.len());
    if !s.problem_orders.is_empty() {
        title.push_str(&format!(
            "· rejected / unknown ({}) ",
            s.problem_orders.len()
        ));
    }
    frame.render_widget(
        Table::new(open.chain(problems), widths)
            .header(header)
            .block(block(title)),
        area,
    );
}

pub fn fills(frame: &mut Frame, area: Rect, run: &RunView) {
    let p = &run.paper;
    let header =
        Row::new(["Time", "Symbol", "Side", "Qty", "Price", "Order"]).style(header_style());
    let rows: Vec<Row> = if p.fills.is_empty() {
        // Sessions from before fills were reported from every source: the filled orders.
        p.orders
            .iter()
            .rev()
            .filter(|o| o.filled_qty > 0.0)
            .take(RECENT)
            .map(|o| {
                Row::new(vec![
                    Cell::from(o.at.map_or("–".into(), |t| t.format("%m-%d %H:%M").to_string())),
                    Cell::from(o.symbol.clone()),
                    Cell::from(Span::styled(o.side.clone(), side_style(&o.side))),
                    Cell::from(num(o.filled_qty)),
                    Cell::from(o.fill_price.map_or("–".into(), money)),
                    Cell::from(Span::styled(o.client_order_id.clone(), dim())),
                ])
            })
            .collect()
    } else {
        p.fills
            .iter()
            .rev()
            .take(RECENT)
            .map(|f| {
                Row::new(vec![
                    Cell::from(f.at.format("%m-%d %H:%M:%S").to_string()),
                    Cell::from(f.symbol.clone()),
                    Cell::from(Span::styled(f.side.clone(), side_style(&f.side))),
                    Cell::from(num(f.qty)),
                    Cell::from(money(f.price)),
                    Cell::from(Span::styled(f.client_order_id.clone(), dim())),
                ])
            })
            .collect()
    };
    let widths = [
        Constraint::Length(15),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Min(10),
    ];
    frame.render_widget(
        Table::new(rows, widths).header(header).block(block(format!(
            " Fills ({}) ",
            p.fills
                .len()
                .max(p.orders.iter().filter(|o| o.filled_qty > 0.0).count())
        ))),
        area,
    );
}
