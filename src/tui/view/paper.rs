//! Pane 5: one paper session as its daemon reports it — account, connection health and the
//! session's modes (kill, pause and halt in red), one row per symbol (model, last bar, action and
//! confidence, gate, position, P&L beside the walk-forward expectation), the equity curve, open
//! orders and the fills stream. A portfolio session shows its regime and the members' target
//! against actual weights in place of the per-symbol rows (`paper_portfolio`).

use super::training::run_title;
use super::widgets::{
    block, dim, empty, header_style, kv, line_chart, money, num, pct, signed_color, Series,
};
use crate::broker::BrokerKind;
use crate::jobs::events::PaperSnapshot;
use crate::jobs::JobKind;
use crate::live::view::{Health, Link};
use crate::tui::app::{App, RunView};
use chrono::Utc;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

/// Fills and orders shown, newest first.
const RECENT: usize = 8;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let Some(run) = app.selected_run(JobKind::Paper) else {
        empty(
            frame,
            area,
            " Paper ",
            "No paper sessions yet: press p to paper-trade the newest training run (simulated broker unless live.broker = \"alpaca\").",
        );
        return;
    };
    let Some(s) = &run.paper.snapshot else {
        let p = Paragraph::new(vec![
            Line::raw(run.message.clone()),
            Line::styled("waiting for the daemon's first report…", dim()),
        ])
        .wrap(Wrap { trim: true })
        .block(block(run_title(app, run, JobKind::Paper)));
        frame.render_widget(p, area);
        return;
    };
    let rows_h = match &s.portfolio {
        Some(pv) => super::paper_portfolio::height(pv)
            .min(area.height / 2)
            .max(4),
        None => (s.rows.len() as u16 + 3).min(area.height / 3).max(4),
    };
    let [head, symbols, bottom] = Layout::vertical([
        Constraint::Length(6),
        Constraint::Length(rows_h),
        Constraint::Min(0),
    ])
    .areas(area);
    header(frame, head, app, run, s);
    match &s.portfolio {
        Some(pv) => super::paper_portfolio::render(frame, symbols, pv),
        None => symbol_rows(frame, symbols, s),
    }
    let [chart, right] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(bottom);
    let pnl = s.account.equity - s.account.initial;
    let color = signed_color(pnl);
    let series = [Series {
        name: "equity",
        color,
        dim: false,
        points: &run.paper.equity,
    }];
    let title = Line::from(vec![
        Span::styled(" equity ", Style::new().fg(color)),
        Span::raw(format!("{} ", money(s.account.equity))),
    ]);
    line_chart(frame, chart, title, &series);
    let [orders_area, fills_area] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(right);
    orders(frame, orders_area, s);
    fills(frame, fills_area, run);
}

fn red() -> Style {
    Style::new()
        .fg(Color::White)
        .bg(Color::Red)
        .add_modifier(Modifier::BOLD)
}

fn link(name: &str, l: &Link) -> Vec<Span<'static>> {
    let (text, style) = match l {
        Link::Unused => ("–".to_string(), dim()),
        Link::Connecting => ("connecting".to_string(), Style::new().fg(Color::Yellow)),
        Link::Up => ("up".to_string(), Style::new().fg(Color::Green)),
        Link::Down(w) => (format!("DOWN ({w})"), Style::new().fg(Color::Red)),
        Link::Polling(_) => ("polling REST".to_string(), Style::new().fg(Color::Yellow)),
    };
    vec![
        Span::styled(format!("{name} "), dim()),
        Span::styled(text, style),
        Span::raw("  "),
    ]
}

fn health_line(h: &Health) -> Line<'static> {
    let mut l = link("trades", &h.trade_stream);
    l.extend(link("bars", &h.data_stream));
    if let Some(t) = h.last_bar {
        let age = h
            .last_bar_seen
            .map(|s| (Utc::now() - s).num_seconds().max(0))
            .map_or(String::new(), |a| format!(" (seen {a} s ago)"));
        l.extend(kv("last bar", format!("{}{age}", t.format("%m-%d %H:%M"))));
    }
    match h.market_open {
        Some(true) => l.extend(kv("market", "OPEN".into())),
        Some(false) => l.extend(kv(
            "market",
            format!(
                "closed{}",
                h.next_open
                    .map(|t| format!(", opens {}", t.format("%m-%d %H:%M UTC")))
                    .unwrap_or_default()
            ),
        )),
        None => {}
    }
    if h.rest_errors > 0 || h.reconnects > 0 {
        l.extend(kv(
            "REST errors",
            format!("{}  reconnects {}", h.rest_errors, h.reconnects),
        ));
    }
    Line::from(l)
}

fn header(frame: &mut Frame, area: Rect, app: &App, run: &RunView, s: &PaperSnapshot) {
    let a = &s.account;
    let pnl = a.equity - a.initial;
    let mut l = vec![Span::styled(
        format!("{} ", s.broker.label()),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    l.extend(kv("cash", money(a.cash)));
    l.extend(kv("equity", money(a.equity)));
    l.extend(kv("buying power", money(a.buying_power)));
    l.push(Span::styled("day ", dim()));
    l.push(Span::styled(
        format!("{}  ", money(a.day_pnl)),
        Style::new().fg(signed_color(a.day_pnl)),
    ));
    l.push(Span::styled("session ", dim()));
    l.push(Span::styled(
        format!(
            "{} ({})",
            money(pnl),
            pct(if a.initial > 0.0 {
                pnl / a.initial
            } else {
                0.0
            })
        ),
        Style::new()
            .fg(signed_color(pnl))
            .add_modifier(Modifier::BOLD),
    ));
    let mut modes: Vec<Span> = Vec::new();
    let m = &s.modes;
    if let Some(f) = &m.flatten {
        modes.push(Span::styled(format!(" KILL: flatten {f} "), red()));
        modes.push(Span::raw(" "));
    }
    if m.halted {
        modes.push(Span::styled(" HALT: drawdown ", red()));
        modes.push(Span::raw(" "));
    }
    if m.paused {
        modes.push(Span::styled(" PAUSED: exits only ", red()));
        modes.push(Span::raw(" "));
    }
    if let Some(w) = &m.stale_feed {
        modes.push(Span::styled(format!(" STALE FEED: {w} "), red()));
        modes.push(Span::raw(" "));
    }
    if m.daily_loss_hit {
        modes.push(Span::styled(" DAILY LOSS LIMIT ", red()));
    }
    if modes.is_empty() {
        modes.push(Span::styled("trading", Style::new().fg(Color::Green)));
    }
    let venue = match s.broker {
        BrokerKind::Sim => {
            "simulated fills at the bar's close with the backtest's slippage and commission"
        }
        _ => "Alpaca paper: random partial fills ~10 % of the time; no slippage or fees modelled",
    };
    modes.push(Span::styled(
        "   P pause/resume · K kill switch (flatten all) · C clear latches · X stop daemon",
        dim(),
    ));
    let lines = vec![
        Line::from(l),
        health_line(&s.health),
        Line::from(modes),
        Line::styled(venue, dim()),
    ];
    let p = Paragraph::new(lines).block(block(run_title(app, run, JobKind::Paper)));
    frame.render_widget(p, area);
}

fn symbol_rows(frame: &mut Frame, area: Rect, s: &PaperSnapshot) {
    let header = Row::new([
        "Symbol",
        "Model run",
        "Last bar",
        "Action",
        "Conf",
        "Gate",
        "Qty",
        "Avg",
        "Price",
        "Unreal.",
        "P&L",
        "Live/day",
        "WF/day",
    ])
    .style(header_style());
    let opt = |x: Option<f64>| x.map_or("–".to_string(), pct);
    let rows = s.rows.iter().map(|r| {
        let gate_style = if r.gate.starts_with("blocked") || r.gate.contains("halt") {
            Style::new().fg(Color::Red)
        } else if r.gate.starts_with("resized") {
            Style::new().fg(Color::Yellow)
        } else {
            dim()
        };
        Row::new(vec![
            Cell::from(r.symbol.clone()),
            Cell::from(Span::styled(r.run.clone(), dim())),
            Cell::from(
                r.last_bar
                    .map_or("–".into(), |t| t.format("%m-%d %H:%M").to_string()),
            ),
            Cell::from(r.action.clone().unwrap_or_else(|| "–".into())),
            Cell::from(format!("{:.2}", r.confidence)),
            Cell::from(Span::styled(r.gate.clone(), gate_style)),
            Cell::from(num(r.position.qty)),
            Cell::from(money(r.position.avg_price)),
            Cell::from(money(r.position.price)),
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
        Constraint::Length(14),
        Constraint::Length(11),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Min(12),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(8),
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

fn orders(frame: &mut Frame, area: Rect, s: &PaperSnapshot) {
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
    let rows = s.open_orders.iter().take(RECENT).map(|o| {
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
    let widths = [
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(10),
        Constraint::Min(10),
    ];
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block(format!(" Open orders ({}) ", s.open_orders.len()))),
        area,
    );
}

fn fills(frame: &mut Frame, area: Rect, run: &RunView) {
    let p = &run.paper;
    let header =
        Row::new(["Time", "Symbol", "Side", "Qty", "Price", "Order"]).style(header_style());
    let rows: Vec<Row> = if p.fills.is_empty() {
        // The simulated broker has no trade stream: its fills are the filled orders.
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
