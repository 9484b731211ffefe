//! Pane 5: one paper session as its daemon reports it — whether the daemon is alive at all
//! (heartbeat age; DAEMON DOWN in red once its process is gone, whatever its last report said),
//! the account, connection health and the session's modes (kill, pause, halt, a stopped symbol
//! in red), one row per symbol (`paper_tables`), the equity curve, open and problem orders and
//! the fills stream. A portfolio session shows its regime and the members' target against
//! actual weights in place of the per-symbol rows (`paper_portfolio`).

use super::paper_tables::{fills, orders, symbol_rows};
use super::training::run_title;
use super::widgets::{block, dim, empty, kv, line_chart, money, pct, signed_color, Series};
use crate::broker::BrokerKind;
use crate::jobs::events::PaperSnapshot;
use crate::jobs::{JobKind, JobStatus};
use crate::live::view::{Health, Link};
use crate::tui::app::{App, RunView};
use chrono::{DateTime, Utc};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

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
            liveness(run, app.clock())
                .unwrap_or_else(|| Line::styled("waiting for the daemon's first report…", dim())),
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

pub(super) fn red() -> Style {
    Style::new()
        .fg(Color::White)
        .bg(Color::Red)
        .add_modifier(Modifier::BOLD)
}

/// Whether the daemon is alive, from its manifest (not from its last report, which a dead
/// daemon never updates): `None` while it is alive; a red line once it is down or stopped.
fn liveness(run: &RunView, now: DateTime<Utc>) -> Option<Line<'static>> {
    let age = run.heartbeat.map(|b| (now - b).num_seconds().max(0));
    let beat = age.map_or("no heartbeat".to_string(), |a| {
        format!("last heartbeat {a} s ago")
    });
    let text = if run.stale {
        format!(
            " DAEMON DOWN: {beat} (pid {} on {} is gone or frozen) — nothing is trading ",
            run.pid, run.host
        )
    } else if run.status != JobStatus::Running {
        format!(
            " DAEMON STOPPED ({}) — nothing is trading; positions stay at the broker ",
            run.status.as_str()
        )
    } else {
        return None;
    };
    Some(Line::from(Span::styled(text, red())))
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

/// Links, the last bar, the market and the heartbeat's age — as the daemon last reported them
/// while it is alive; a dead daemon's links are not shown as up.
fn health_line(h: &Health, alive: bool, run: &RunView, now: DateTime<Utc>) -> Line<'static> {
    let mut l = Vec::new();
    if alive {
        l.extend(link("trades", &h.trade_stream));
        l.extend(link("bars", &h.data_stream));
    }
    if let Some(t) = h.last_bar {
        let age = h
            .last_bar_seen
            .map(|s| (now - s).num_seconds().max(0))
            .map_or(String::new(), |a| format!(" (seen {a} s ago)"));
        l.extend(kv("last bar", format!("{}{age}", t.format("%m-%d %H:%M"))));
    }
    match h.market_open {
        Some(true) if alive => l.extend(kv("market", "OPEN".into())),
        Some(false) if alive => l.extend(kv(
            "market",
            format!(
                "closed{}",
                h.next_open
                    .map(|t| format!(", opens {}", t.format("%m-%d %H:%M UTC")))
                    .unwrap_or_default()
            ),
        )),
        _ => {}
    }
    if h.rest_errors > 0 || h.reconnects > 0 {
        l.extend(kv(
            "REST errors",
            format!("{}  reconnects {}  ", h.rest_errors, h.reconnects),
        ));
    }
    if alive {
        if let Some(a) = run.heartbeat.map(|b| (now - b).num_seconds().max(0)) {
            l.extend(kv("heartbeat", format!("{a} s ago")));
        }
    }
    Line::from(l)
}

fn modes_line(s: &PaperSnapshot, alive: bool) -> Vec<Span<'static>> {
    let mut modes: Vec<Span> = Vec::new();
    let m = &s.modes;
    let mut flag = |text: String| {
        modes.push(Span::styled(text, red()));
        modes.push(Span::raw(" "));
    };
    if let Some(f) = &m.flatten {
        flag(format!(" KILL: flatten {f} "));
    }
    if m.halted {
        flag(" HALT: drawdown ".into());
    }
    if m.paused {
        flag(" PAUSED: exits only ".into());
    }
    if let Some(w) = &m.stale_feed {
        flag(format!(" STALE FEED: {w} "));
    }
    if m.daily_loss_hit {
        flag(" DAILY LOSS LIMIT ".into());
    }
    for why in &m.stopped {
        flag(format!(" STOPPED {why} "));
    }
    if modes.is_empty() && alive {
        modes.push(Span::styled("trading", Style::new().fg(Color::Green)));
    }
    modes
}

fn header(frame: &mut Frame, area: Rect, app: &App, run: &RunView, s: &PaperSnapshot) {
    let now = app.clock();
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
    let down = liveness(run, now);
    let mut modes = modes_line(s, down.is_none());
    modes.push(Span::styled(
        "   P pause/resume · K kill switch (flatten all) · C clear latches · X stop daemon",
        dim(),
    ));
    let venue = match s.broker {
        BrokerKind::Sim => {
            "simulated fills at the bar's close with the backtest's slippage and commission"
        }
        _ => "Alpaca paper: random partial fills ~10 % of the time; no slippage or fees modelled",
    };
    let lines = vec![
        Line::from(l),
        health_line(&s.health, down.is_none(), run, now),
        down.unwrap_or_else(|| Line::from(Vec::new())),
        Line::from(modes),
        Line::styled(venue, dim()),
    ];
    let lines: Vec<Line> = lines.into_iter().filter(|l| l.width() > 0).collect();
    let p = Paragraph::new(lines).block(block(run_title(app, run, JobKind::Paper)));
    frame.render_widget(p, area);
}
