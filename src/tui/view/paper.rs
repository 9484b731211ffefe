//! Pane 5: one paper-trading run — equity, account, positions and recent orders.

use super::training::run_title;
use super::widgets::{
    block, dim, empty, group, header_style, kv, line_chart, money, num, pct, signed_color, Series,
};
use crate::jobs::JobKind;
use crate::tui::app::{App, RunView};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

/// Orders shown in the table, newest first.
const RECENT_ORDERS: usize = 8;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let Some(run) = app.selected_run(JobKind::Paper) else {
        empty(
            frame,
            area,
            " Paper ",
            "No paper runs yet: press p to paper-trade the newest completed training run.",
        );
        return;
    };
    let orders_h = (run.paper.orders.len().min(RECENT_ORDERS) as u16 + 3).max(4);
    let [head, middle, orders_area] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Min(0),
        Constraint::Length(orders_h),
    ])
    .areas(area);
    account(frame, head, app, run);
    let [chart_area, positions_area] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(middle);
    let color = signed_color(pnl(run).unwrap_or(0.0));
    let latest = run.paper.last.as_ref().map(|t| t.equity);
    let series = [Series {
        name: "equity",
        color,
        dim: false,
        points: &run.paper.equity,
    }];
    let title = Line::from(vec![
        Span::styled(" equity ", Style::new().fg(color)),
        Span::raw(latest.map_or(String::new(), |e| format!("{} ", money(e)))),
    ]);
    line_chart(frame, chart_area, title, &series);
    positions(frame, positions_area, run);
    orders(frame, orders_area, run);
}

fn pnl(run: &RunView) -> Option<f64> {
    Some(run.paper.last.as_ref()?.equity - run.paper.first_equity?)
}

fn account(frame: &mut Frame, area: Rect, app: &App, run: &RunView) {
    let p = &run.paper;
    let mut lines = Vec::new();
    match &p.last {
        Some(t) => {
            let pnl = pnl(run).unwrap_or(0.0);
            let ret = p
                .first_equity
                .filter(|e| *e != 0.0)
                .map_or(0.0, |e| pnl / e);
            let mut l = vec![];
            l.extend(kv("cash", money(t.cash)));
            l.extend(kv("equity", money(t.equity)));
            l.push(Span::styled("P&L ", dim()));
            l.push(Span::styled(
                format!("{} ({})  ", money(pnl), pct(ret)),
                Style::new()
                    .fg(signed_color(pnl))
                    .add_modifier(Modifier::BOLD),
            ));
            let bars = match &run.progress {
                Some(pr) if pr.total > 0 => format!("{}/{}", group(p.bars), group(pr.total)),
                _ => group(p.bars),
            };
            l.extend(kv("bars", bars));
            lines.push(Line::from(l));
            let mut l = vec![];
            l.extend(kv("last bar", t.ts.format("%Y-%m-%d %H:%M").to_string()));
            l.extend(kv(&t.symbol, money(t.price)));
            l.push(Span::styled("action ", dim()));
            l.push(Span::styled(t.action.clone(), action_style(&t.action)));
            lines.push(Line::from(l));
        }
        None => lines.push(Line::styled("waiting for the first bar…", dim())),
    }
    let p = Paragraph::new(lines).block(block(run_title(app, run, JobKind::Paper)));
    frame.render_widget(p, area);
}

fn action_style(action: &str) -> Style {
    let a = action.to_ascii_lowercase();
    let color = if a.contains("buy") || a.contains("long") {
        Color::Green
    } else if a.contains("sell") || a.contains("short") {
        Color::Red
    } else {
        Color::Gray
    };
    Style::new().fg(color).add_modifier(Modifier::BOLD)
}

fn positions(frame: &mut Frame, area: Rect, run: &RunView) {
    let header = Row::new(["Symbol", "Qty", "Avg", "Price", "Unreal. P&L"]).style(header_style());
    let rows = run.paper.positions.iter().map(|p| {
        Row::new(vec![
            Cell::from(p.symbol.clone()),
            Cell::from(num(p.qty)),
            Cell::from(money(p.avg_price)),
            Cell::from(money(p.market_price)),
            Cell::from(Span::styled(
                money(p.unrealized_pnl),
                Style::new().fg(signed_color(p.unrealized_pnl)),
            )),
        ])
    });
    let widths = [
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Min(10),
    ];
    let title = format!(" Positions ({}) ", run.paper.positions.len());
    frame.render_widget(
        Table::new(rows, widths).header(header).block(block(title)),
        area,
    );
}

fn orders(frame: &mut Frame, area: Rect, run: &RunView) {
    let header = Row::new([
        "Time",
        "Symbol",
        "Side",
        "Qty",
        "Status",
        "Fill",
        "Client order id",
    ])
    .style(header_style());
    let rows = run.paper.orders.iter().rev().take(RECENT_ORDERS).map(|o| {
        Row::new(vec![
            Cell::from(o.at.format("%m-%d %H:%M").to_string()),
            Cell::from(o.symbol.clone()),
            Cell::from(Span::styled(o.side.clone(), action_style(&o.side))),
            Cell::from(num(o.qty)),
            Cell::from(o.status.clone()),
            Cell::from(o.fill_price.map_or("–".into(), money)),
            Cell::from(Span::styled(o.client_order_id.clone(), dim())),
        ])
    });
    let widths = [
        Constraint::Length(11),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Min(10),
    ];
    let title = format!(" Recent orders ({} total) ", run.paper.orders.len());
    frame.render_widget(
        Table::new(rows, widths).header(header).block(block(title)),
        area,
    );
}
