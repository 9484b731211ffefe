//! The paper parts of the TUI fixture: a two-model session on Alpaca paper, and the same session
//! reporting from a portfolio model. A child module of `tui_fixture`.

use super::{feed, full_app, Feed, PAPER, TRAIN, TRAIN_OLD};
use chrono::{DateTime, Duration, TimeZone, Utc};
use quantdeck::broker::BrokerKind;
use quantdeck::jobs::{Event, JobKind, LogLevel};
use quantdeck::live::view::{
    AccountView, ExternalPosition, FillView, Health, Link, Modes, OrderView, PaperSnapshot,
    PositionView as LivePosition, SymbolRow,
};
use quantdeck::tui::App;

/// The start of the session's bar `b` (15-minute bars from 2024-11-04 14:30 UTC).
fn bar_ts(b: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 11, 4, 14, 30, 0)
        .single()
        .unwrap_or_default()
        + Duration::minutes(15 * b)
}

/// A paper session of two models on Alpaca paper: 120 bars of snapshots, orders and fills, one
/// external position, the trade stream up and the market open.
pub(super) fn add_paper(app: &mut App) {
    app.mark_ours(PAPER, JobKind::Paper, Some(TRAIN.into()));
    let mut f = feed(app, PAPER);
    f.send(
        240,
        Event::Started {
            kind: JobKind::Paper,
            label: "SYNA-SYNX/USD".into(),
        },
    );
    for b in 0..120i64 {
        let x = b as f64;
        let price = 100.0 + 0.05 * x + 0.8 * (x * 0.2).sin();
        let equity = 100_000.0 + 35.0 * x + 250.0 * (x * 0.15).sin();
        let qty = if b >= 40 { 20.0 } else { 0.0 };
        if b == 40 || b == 90 {
            send_trade(&mut f, b, price);
        }
        let snapshot = snapshot(b, price, equity, qty);
        f.send(241, Event::Paper(Box::new(snapshot)));
    }
    f.send(
        241,
        Event::Log {
            level: LogLevel::Error,
            message: "order rejected: insufficient buying power".into(),
        },
    );
}

/// The full state, with the paper session's newest report from a portfolio model: the regime
/// chosen, and each member's target against actual weight (one member masked at the last bar).
pub fn portfolio_paper_app() -> App {
    use quantdeck::live::view::{PortfolioView, WeightRow};
    let mut app = full_app();
    let mut snap = app
        .runs
        .get(PAPER)
        .and_then(|r| r.paper.snapshot.clone())
        .expect("the fixture's paper session has a snapshot");
    let at = snap.at + Duration::minutes(15);
    snap.at = at;
    snap.rows.clear();
    let row =
        |symbol: &str, target: f64, actual: f64, qty: f64, price: f64, gate: &str| WeightRow {
            symbol: symbol.into(),
            target,
            actual,
            qty,
            price,
            gate: gate.into(),
            broker_qty: Some(qty),
        };
    snap.portfolio = Some(PortfolioView {
        run: TRAIN.into(),
        timeframe: "1Day".into(),
        last_bar: Some(at),
        regime: Some("MOMENTUM".into()),
        chosen: Some("MOMENTUM".into()),
        confidence: 0.61,
        rows: vec![
            row("SYNP01", 0.4408, 0.4372, 221.03, 205.64, "ok"),
            row("SYNP02", 0.4408, 0.4391, 532.61, 85.71, "ok"),
            row("SYNP03", 0.0, 0.0, 0.0, 41.07, "ok"),
            row(
                "SYNP04",
                0.1184,
                0.1184,
                311.92,
                39.46,
                "masked: no bar at this time",
            ),
        ],
        cash: 0.0053,
        live_daily: None,
        expected_daily: None,
    });
    let mut f = feed(&mut app, PAPER);
    // After every event the session already reported (a replayed sequence number is dropped).
    f.seq = 1_000_000;
    f.send(250, Event::Paper(Box::new(snap)));
    app
}

/// The entry (bar 40) or exit (bar 90) order of SYNA, partly filled.
fn send_trade(f: &mut Feed, b: i64, price: f64) {
    let side = if b == 40 { "buy" } else { "sell" };
    let id = format!(
        "qd-3f9a1c07b2-SYNA-{}-{}1",
        bar_ts(b).timestamp(),
        if b == 40 { "e" } else { "x" }
    );
    f.send(
        241,
        Event::Fill(FillView {
            at: bar_ts(b) + Duration::seconds(2),
            client_order_id: id.clone(),
            symbol: "SYNA".into(),
            side: side.into(),
            qty: 12.0,
            price,
            execution_id: Some(format!("ex-{b}")),
        }),
    );
    f.send(
        241,
        Event::Order(OrderView {
            client_order_id: id,
            symbol: "SYNA".into(),
            side: side.into(),
            qty: 20.0,
            filled_qty: 12.0,
            fill_price: Some(price),
            order_type: "market".into(),
            status: "partially_filled".into(),
            external: false,
            at: Some(bar_ts(b)),
        }),
    );
}

/// The session's report at bar `b`: SYNA held from bar 40, SYNX/USD flat and resized, one
/// external AAPL order and position, paused from bar 100.
fn snapshot(b: i64, price: f64, equity: f64, qty: f64) -> PaperSnapshot {
    PaperSnapshot {
        at: bar_ts(b),
        broker: BrokerKind::AlpacaPaper,
        session: "3f9a1c07b2".into(),
        account: AccountView {
            cash: equity - qty * price,
            equity,
            buying_power: 2.0 * equity - qty * price,
            day_pnl: equity - 100_500.0,
            initial: 100_000.0,
        },
        rows: vec![syna_row(b, price, equity, qty), synx_row(b)],
        open_orders: vec![OrderView {
            client_order_id: "manual-7".into(),
            symbol: "AAPL".into(),
            side: "buy".into(),
            qty: 5.0,
            filled_qty: 0.0,
            fill_price: None,
            order_type: "limit".into(),
            status: "new".into(),
            external: true,
            at: Some(bar_ts(b)),
        }],
        external_positions: vec![ExternalPosition {
            symbol: "AAPL".into(),
            qty: 10.0,
        }],
        health: Health {
            trade_stream: Link::Up,
            data_stream: Link::Up,
            last_bar: Some(bar_ts(b)),
            last_bar_seen: None,
            market_open: Some(true),
            next_open: None,
            rest_errors: 1,
            reconnects: 2,
        },
        modes: Modes {
            paused: b >= 100,
            ..Modes::default()
        },
        problem_orders: Vec::new(),
        portfolio: None,
    }
}

/// SYNA at bar `b`: held from bar 40 with its stop and take-profit.
fn syna_row(b: i64, price: f64, equity: f64, qty: f64) -> SymbolRow {
    let x = b as f64;
    SymbolRow {
        symbol: "SYNA".into(),
        run: TRAIN.into(),
        timeframe: "15Min".into(),
        last_bar: Some(bar_ts(b)),
        action: Some(if b % 7 == 0 { "BUY_25" } else { "HOLD" }.into()),
        confidence: 0.52,
        gate: "ok".into(),
        level: if qty > 0.0 { 0.25 } else { 0.0 },
        position: LivePosition {
            qty,
            avg_price: 101.2,
            price,
            unrealized_pnl: qty * (price - 101.2),
        },
        pnl: 35.0 * x / 2.0,
        live_daily: Some(0.0012),
        expected_daily: Some(0.0009),
        broker_qty: Some(qty),
        in_flight: 0.0,
        cap_room: Some(0.2 - qty * price / equity),
        stop_loss: (qty > 0.0).then_some(99.18),
        take_profit: (qty > 0.0).then_some(105.25),
        stopped: None,
    }
}

/// SYNX/USD at bar `b`: flat, its order resized by the exposure cap.
fn synx_row(b: i64) -> SymbolRow {
    SymbolRow {
        symbol: "SYNX/USD".into(),
        run: TRAIN_OLD.into(),
        timeframe: "15Min".into(),
        last_bar: Some(bar_ts(b)),
        action: Some("HOLD".into()),
        confidence: 0.31,
        gate: "resized: 70 % exposure cap".into(),
        level: 0.0,
        position: LivePosition::default(),
        pnl: -12.5,
        live_daily: Some(-0.0002),
        expected_daily: None,
        broker_qty: Some(0.0),
        in_flight: 0.0,
        cap_room: Some(0.2),
        stop_loss: None,
        take_profit: None,
        stopped: None,
    }
}
