//! The paper-trading daemon, as a user runs it (`quantdeck paper RUN --broker alpaca`, a real
//! process), against the in-process fake Alpaca on 127.0.0.1 (REST + websockets, real sockets):
//! an accelerated 1-minute bar feed, a model crafted to trade on every bar, and the faults that
//! matter for money — kill -9 at random points, lost fills, refusals, uncertain submits, dropped
//! streams — checked against the broker's own records.

use crate::common::desk::{broker_qty, intent_of, Desk, SYMBOL};
use crate::common::fake_alpaca::{OrderFault, KEY_ID, SECRET};
use crate::common::{qd_env, text};
use chrono::Duration;
use quantdeck::jobs::Event;
use quantdeck::market::Bar;
use quantdeck::rng::Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Kill -9 at random points of an accelerated feed, restart, again and again: never two orders
/// for one intent, never an id sent twice, and the model's position equals the broker's.
#[test]
fn sigkill_at_random_points_never_sends_an_order_twice() {
    let mut d = Desk::new("");
    let mut rng = Rng::new(2024);
    let mut child = d.spawn();
    d.wait_ready(1);
    for round in 0..6 {
        let minutes = 20 + rng.below(70);
        d.push_minutes(
            minutes,
            std::time::Duration::from_millis(2 + rng.below(4) as u64),
        );
        std::thread::sleep(std::time::Duration::from_millis(rng.below(60) as u64));
        child.kill();
        child = d.spawn();
        d.wait_ready(round + 2);
    }
    d.push_minutes(45, std::time::Duration::from_millis(3));
    d.wait_decided();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let snapshot = d.snapshot().unwrap();
    d.stop(child);

    let orders = d.fake.orders();
    assert!(
        orders.len() >= 8,
        "the model should trade every bar: {} orders",
        orders.len()
    );
    let mut per_intent: BTreeMap<(String, String), usize> = BTreeMap::new();
    for o in &orders {
        *per_intent.entry(intent_of(&o.client_order_id)).or_default() += 1;
    }
    let twice: Vec<_> = per_intent.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "two orders for one intent: {twice:?}");
    // The same id was never accepted twice (the fake would refuse it anyway) and, apart from
    // look-ups after an unknown outcome, never even posted twice.
    assert!(
        d.fake.posts().values().all(|n| *n <= 2),
        "{:?}",
        d.fake.posts()
    );
    let broker = broker_qty(&d.fake);
    assert!(
        (snapshot.rows[0].position.qty - broker).abs() < 1e-9,
        "model {} vs broker {broker}",
        snapshot.rows[0].position.qty
    );
    assert!(
        snapshot.external_positions.is_empty(),
        "{:?}",
        snapshot.external_positions
    );
    // One session across all restarts: one run directory, one order-id prefix.
    let sessions: std::collections::BTreeSet<String> = orders
        .iter()
        .map(|o| o.client_order_id.split('-').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
}

/// Fills and partial fills, a fill that never arrives on the stream, and a dropped trade stream:
/// the daemon's positions follow the broker's REST truth.
#[test]
fn partial_and_lost_fills_and_a_dropped_stream_settle_at_the_broker() {
    let mut d = Desk::new("");
    let child = d.spawn();
    d.wait_ready(1);
    // A partial fill first; the rest fills on the next price.
    d.fake.script_partial("0.4");
    d.push_minutes(15, std::time::Duration::from_millis(2));
    d.wait_decided();
    d.wait_for("the partial fill is booked", |s| {
        s.rows[0].position.qty > 0.0
    });
    d.push_minutes(15, std::time::Duration::from_millis(2));
    d.wait_decided();
    d.wait_settled();
    // A fill that never arrives on the stream: found over REST once the order stays silent
    // for order_timeout_s (2 s).
    d.fake.suppress_next_fill();
    let lookups = d
        .fake
        .requests_to("GET", "/v2/orders:by_client_order_id")
        .len();
    d.push_minutes(15, std::time::Duration::from_millis(2));
    d.wait_decided();
    d.wait_settled();
    assert!(
        d.fake
            .requests_to("GET", "/v2/orders:by_client_order_id")
            .len()
            > lookups,
        "the silent order was looked up by client id"
    );
    // A dropped trade stream: reconnect, resync over REST, carry on.
    let listings = d.fake.requests_to("GET", "/v2/orders").len();
    d.fake.drop_trade_streams();
    d.push_minutes(30, std::time::Duration::from_millis(2));
    d.wait_decided();
    let s = d.wait_settled();
    d.wait_for("the trade stream reconnected", |s| s.health.reconnects >= 1);
    assert!(
        d.fake.requests_to("GET", "/v2/orders").len() > listings,
        "orders re-read after the reconnect"
    );
    // Every fill is reported once, whichever way it was learned (the stream, or a look-up
    // over REST for the one the stream never announced).
    let reported: Vec<String> = d
        .events()
        .iter()
        .filter_map(|e| match &e.event {
            Event::Fill(f) => Some(f.client_order_id.clone()),
            _ => None,
        })
        .collect();
    for o in d.fake.orders().iter().filter(|o| !o.filled_qty.is_zero()) {
        assert!(
            reported.contains(&o.client_order_id),
            "{} never reported: {reported:?}",
            o.client_order_id
        );
    }
    assert!(s.rows[0].position.qty.is_finite());
    d.stop(child);
}

/// The broker's refusals and the answers that leave an order's fate unknown.
#[test]
fn refusals_and_uncertain_submits_are_settled_without_duplicates() {
    let mut d = Desk::new("");
    let child = d.spawn();
    d.wait_ready(1);
    // Bar 1 (an entry): insufficient buying power → resized once and sent as attempt 2.
    d.fake.push_order_fault(OrderFault::InsufficientBuyingPower);
    d.push_minutes(15, std::time::Duration::from_millis(2));
    d.wait_decided();
    // Bar 2 (the exit): accepted, then a 500 — it must be found, not sent again.
    d.fake.push_order_fault(OrderFault::AcceptThenStatus(500));
    d.push_minutes(15, std::time::Duration::from_millis(2));
    d.wait_decided();
    // Bar 3 (an entry): accepted, then the connection drops without an answer.
    d.fake.push_order_fault(OrderFault::AcceptThenDrop);
    d.push_minutes(15, std::time::Duration::from_millis(2));
    d.wait_decided();
    // Bar 4 (the exit): the duplicate-id 422 → looked up first.
    d.fake.push_order_fault(OrderFault::Reject(
        422,
        serde_json::json!({"code": 40010001, "message": "client_order_id must be unique"}),
    ));
    d.push_minutes(15, std::time::Duration::from_millis(2));
    d.wait_decided();
    // Bar 5 (an entry): a wash-trade refusal → rejected, journaled, nothing resent.
    d.fake.push_order_fault(OrderFault::WashTrade);
    d.push_minutes(15, std::time::Duration::from_millis(2));
    d.wait_decided();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let s = d.snapshot().unwrap();
    d.stop(child);

    let orders = d.fake.orders();
    let ids: Vec<&str> = orders.iter().map(|o| o.client_order_id.as_str()).collect();
    assert!(
        ids.iter().any(|i| i.ends_with("-e2")),
        "resized retry: {ids:?}"
    );
    let mut per_intent: BTreeMap<(String, String), usize> = BTreeMap::new();
    for o in &orders {
        *per_intent.entry(intent_of(&o.client_order_id)).or_default() += 1;
    }
    assert!(per_intent.values().all(|n| *n == 1), "{per_intent:?}");
    let journal = std::fs::read_to_string(d.paper_dir().unwrap().join("journal.jsonl")).unwrap();
    assert!(journal.contains("wash trade"), "{journal}");
    assert!(journal.contains("insufficient buying power"), "{journal}");
    assert!(journal.contains("\"t\":\"unknown\""), "{journal}");
    assert!(!d
        .fake
        .requests_to("GET", "/v2/orders:by_client_order_id")
        .is_empty());
    assert!((s.rows[0].position.qty - broker_qty(&d.fake)).abs() < 1e-9);
}

/// Pause (exits only), flatten-all after a restart (latched across restarts), clear.
#[test]
fn pause_then_flatten_after_a_restart_and_the_latch_holds() {
    let mut d = Desk::new("");
    // Someone else's position and open order at the broker: EXTERNAL, never traded by the model.
    d.fake.add_position("AAPL", "10", "180");
    d.fake.set_price("AAPL", "181.5");
    let mut child = d.spawn();
    d.wait_ready(1);
    d.push_minutes(15, std::time::Duration::from_millis(2));
    d.wait_decided();
    let s = d.wait_for("the model entered", |s| s.rows[0].position.qty > 0.0);
    assert!(
        s.external_positions
            .iter()
            .any(|p| p.symbol == "AAPL" && p.qty == 10.0),
        "{:?}",
        s.external_positions
    );

    let o = d.cli(&["paper", "pause"]);
    assert!(
        o.status.success() && text(&o).contains("paused"),
        "{}",
        text(&o)
    );
    let before = d.fake.orders().len();
    // Next bar: the model exits (allowed); the bar after: it would enter (blocked).
    d.push_minutes(30, std::time::Duration::from_millis(2));
    d.wait_decided();
    let after: Vec<_> = d.fake.orders()[before..].to_vec();
    assert!(
        after.iter().all(|o| o.client_order_id.ends_with("x1")),
        "only exits while paused: {:?}",
        after.iter().map(|o| &o.client_order_id).collect::<Vec<_>>()
    );
    assert!(d.snapshot().unwrap().modes.paused);
    let o = d.cli(&["paper", "resume"]);
    assert!(o.status.success(), "{}", text(&o));
    d.push_minutes(15, std::time::Duration::from_millis(2));
    d.wait_decided();
    d.wait_for("entries resumed", |s| s.rows[0].position.qty > 0.0);

    // kill -9, restart, flatten.
    child.kill();
    child = d.spawn();
    d.wait_ready(3);
    let o = d.cli(&["paper", "flatten"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("flat"), "{}", text(&o));
    assert!(
        d.fake.positions().iter().all(|p| p.qty.is_zero()),
        "everything closed"
    );
    assert!(!d.fake.requests_to("DELETE", "/v2/orders").is_empty());
    assert!(!d.fake.requests_to("DELETE", "/v2/positions").is_empty());
    // Latched: no new order on the next bars, even after another restart.
    child.kill();
    child = d.spawn();
    d.wait_ready(4);
    let n = d.fake.orders().len();
    d.push_minutes(30, std::time::Duration::from_millis(2));
    d.wait_decided();
    assert_eq!(d.fake.orders().len(), n, "flatten is latched");
    assert!(d.snapshot().unwrap().modes.flatten.is_some());
    let o = d.cli(&["paper", "clear"]);
    assert!(
        o.status.success() && text(&o).contains("flatten latch"),
        "{}",
        text(&o)
    );
    d.push_minutes(15, std::time::Duration::from_millis(2));
    d.wait_decided();
    assert!(
        d.fake.orders().len() > n,
        "trading again after clear: {:?} {:?}",
        d.snapshot().map(|s| (s.rows, s.modes)),
        d.events()
            .iter()
            .rev()
            .take(8)
            .map(|e| format!("{:?}", e.event))
            .filter(|e| e.starts_with("Log"))
            .collect::<Vec<_>>()
    );
    d.stop(child);
}

/// Market data: an `updatedBars` revision of a minute whose bar already closed is noticed, and a
/// dropped data stream reconnects and fills its gap over REST.
#[test]
fn revisions_and_a_dropped_data_stream_keep_bars_flowing() {
    let mut d = Desk::new("");
    let child = d.spawn();
    d.wait_ready(1);
    d.push_minutes(15, std::time::Duration::from_millis(3));
    d.wait_decided();
    let revised = Bar {
        ts: d.next - Duration::minutes(1),
        open: d.price,
        high: d.price * 1.01,
        low: d.price * 0.99,
        close: d.price * 1.005,
        volume: 9.0,
    };
    d.fake.push_revision(SYMBOL, revised);
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while d.logs("arrived after its bar closed") == 0 {
        assert!(Instant::now() < deadline, "the revision was not noticed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Drop the bar stream; minutes pushed meanwhile come back over REST after the reconnect.
    d.fake.drop_data_streams();
    d.push_minutes(15, std::time::Duration::from_millis(3));
    d.wait_for("the data stream reconnected", |s| s.health.reconnects >= 1);
    d.push_minutes(15, std::time::Duration::from_millis(3));
    d.wait_decided();
    d.stop(child);
}

/// Another program already streams this account's market data: Alpaca refuses the daemon's
/// connection with 406, and the daemon polls the REST bars endpoint instead — and still trades.
#[test]
fn a_refused_second_data_connection_falls_back_to_polling() {
    let mut d = Desk::new("");
    let creds = quantdeck::data::alpaca::Credentials::new(KEY_ID, SECRET);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let holder = rt.block_on(async {
        let s = quantdeck::data::alpaca::stream::DataStreamSettings {
            url: d.fake.ws_url(),
            ..quantdeck::data::alpaca::stream::DataStreamSettings::default_host()
        };
        let mut st = quantdeck::data::alpaca::stream::spawn_bar_stream(
            s,
            creds,
            quantdeck::data::alpaca::stream::BarFeed::Crypto,
            vec![SYMBOL.into()],
        );
        let first = st.recv().await;
        assert!(
            matches!(
                first,
                Some(quantdeck::data::alpaca::stream::MarketMsg::Connected)
            ),
            "{first:?}"
        );
        st
    });
    let child = d.spawn();
    d.wait_ready(1);
    d.wait_for("polling", |s| {
        matches!(
            s.health.data_stream,
            quantdeck::live::view::Link::Polling(_)
        )
    });
    assert!(
        d.logs("406") + d.logs("connection limit") >= 1,
        "the 406 is reported"
    );
    let before = d.fake.orders().len();
    d.push_minutes(15, std::time::Duration::from_millis(5));
    d.wait_decided();
    d.wait_for("an order from polled bars", |_| {
        d.fake.orders().len() > before
    });
    rt.block_on(async { holder.shutdown().await });
    d.stop(child);
}

/// Keys that cannot trade, and the live host: refused plainly before anything is sent.
#[test]
fn data_only_keys_and_the_live_host_are_refused() {
    let d = Desk::new("");
    d.fake.set_data_only_keys(true);
    let o = d.cli(&["paper", &d.train]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("cannot trade"), "{}", text(&o));
    d.fake.set_data_only_keys(false);
    let env = [
        ("APCA_API_KEY_ID", KEY_ID),
        ("APCA_API_SECRET_KEY", SECRET),
        ("APCA_API_BASE_URL", "https://api.alpaca.markets"),
    ];
    let o = qd_env(
        d.home.path(),
        &["--config", &d.cfg, "paper", &d.train],
        &env,
    );
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("LIVE"), "{}", text(&o));
    assert!(d.fake.orders().is_empty());
}

/// No secret in any file the session wrote (events, manifest, journal, state, logs), and not
/// the key id either in the session's own records (`session.json` keeps a hash of it).
#[test]
fn the_secret_never_reaches_a_file() {
    let mut d = Desk::new("");
    let child = d.spawn();
    d.wait_ready(1);
    d.push_minutes(30, std::time::Duration::from_millis(2));
    d.wait_decided();
    d.fake.drop_trade_streams();
    d.push_minutes(15, std::time::Duration::from_millis(2));
    d.wait_decided();
    d.stop(child);
    let session = d.paper_dir().expect("a session");
    let records = std::fs::read_to_string(session.join("session.json")).unwrap_or_default();
    assert!(records.contains("\"account\""), "{records}");
    for entry in walk(&session) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(KEY_ID), "key id in {}", entry.display());
    }
    let mut checked = 0;
    for entry in walk(d.home.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(SECRET), "secret in {}", entry.display());
        checked += 1;
    }
    assert!(checked > 5);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
