//! The real trading REST client against the fake Alpaca on 127.0.0.1: decoding with exact
//! decimals, typed refusals, the single-attempt submit and its uncertain outcomes, order paging,
//! the 207 rows, the live-host guard, data-only keys, and secrets kept out of every error.

use crate::common::fake_alpaca::{dec, AssetSpec, FakeAlpaca, Fault, OrderFault, KEY_ID, SECRET};
use chrono::{TimeZone, Utc};
use quantdeck::broker::alpaca::{
    BrokerError, Direction, OrderQueryStatus, OrdersQuery, TradingClient, TradingSettings,
};
use quantdeck::broker::types::{
    normalize_symbol, BrokerAssetClass, NewOrder, OrderStatus, OrderType, PositionSide, Side,
    TimeInForce,
};
use quantdeck::data::alpaca::Credentials;
use std::collections::BTreeSet;
use std::time::Duration;

pub fn settings(fake: &FakeAlpaca) -> TradingSettings {
    TradingSettings {
        max_retries: 4,
        retry_base: Duration::from_millis(20),
        timeout: Duration::from_millis(1500),
        rate_per_minute: 6000,
        ..TradingSettings::for_base_url(&fake.url())
    }
}

pub fn creds() -> Credentials {
    Credentials::new(KEY_ID, SECRET)
}

fn client(fake: &FakeAlpaca) -> TradingClient {
    TradingClient::new(settings(fake), creds()).expect("client")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

fn market(cid: &str, symbol: &str, side: Side, qty: &str) -> NewOrder {
    NewOrder::market(cid, symbol, side, dec(qty))
}

#[test]
fn account_positions_clock_and_assets_decode_with_exact_decimals() {
    let fake = FakeAlpaca::trading();
    fake.set_cash("25000.10");
    fake.add_position("AAPL", "10", "180.25");
    fake.add_position("BTC/USD", "0.012345678", "61000.5");
    fake.add_position("TSLA", "-3", "200.5");
    fake.set_price("AAPL", "181.51");
    fake.set_price("TSLA", "199.1");
    fake.set_asset(AssetSpec {
        min_order_size: Some(dec("0.0001")),
        ..AssetSpec::default_for("BTC/USD")
    });
    let c = client(&fake);
    let rt = rt();

    let a = rt.block_on(c.account()).unwrap();
    assert_eq!(a.cash, dec("25000.10"));
    // equity = cash + 10·181.51 + 0.012345678·61000.5 − 3·199.1, to the cent and beyond.
    assert_eq!(a.equity, dec("26970.992530839"));
    assert_eq!(a.status, "ACTIVE");
    assert!(!a.trading_blocked);

    let p = rt.block_on(c.positions()).unwrap();
    assert_eq!(p.len(), 3);
    let btc = p
        .iter()
        .find(|x| normalize_symbol(&x.symbol) == normalize_symbol("BTC/USD"))
        .unwrap();
    assert_eq!(
        btc.symbol, "BTCUSD",
        "Alpaca names crypto positions without the slash"
    );
    assert_eq!(btc.qty, dec("0.012345678"));
    assert_eq!(btc.asset_class, BrokerAssetClass::Crypto);
    let tsla = p.iter().find(|x| x.symbol == "TSLA").unwrap();
    assert_eq!((tsla.qty, &tsla.side), (dec("-3"), &PositionSide::Short));
    let aapl = p.iter().find(|x| x.symbol == "AAPL").unwrap();
    assert_eq!(aapl.current_price, Some(dec("181.51")));
    assert_eq!(aapl.unrealized_pl, Some(dec("12.60")));

    assert!(rt.block_on(c.clock()).unwrap().is_open);
    fake.set_clock_open(false);
    let clock = rt.block_on(c.clock()).unwrap();
    assert!(!clock.is_open && clock.next_open > clock.timestamp);

    let btc = rt.block_on(c.asset("BTC/USD")).unwrap();
    assert_eq!(btc.class, BrokerAssetClass::Crypto);
    assert_eq!(btc.min_order_size, Some(dec("0.0001")));
    assert_eq!(btc.min_trade_increment, Some(dec("0.000000001")));
    assert!(!btc.shortable);
    let aapl = rt.block_on(c.asset("AAPL")).unwrap();
    assert!(aapl.fractionable && aapl.shortable && aapl.min_order_size.is_none());
    assert!(fake.requests_to("GET", "/v2/assets/BTC/USD").len() == 1);
}

#[test]
fn order_refusals_are_typed() {
    let fake = FakeAlpaca::trading();
    fake.set_price("AAPL", "100");
    let c = client(&fake);
    let rt = rt();

    fake.push_order_fault(OrderFault::InsufficientBuyingPower);
    let e = rt
        .block_on(c.submit(&market("r-1", "AAPL", Side::Buy, "1")))
        .unwrap_err();
    assert!(
        matches!(e, BrokerError::InsufficientBuyingPower { .. }),
        "{e}"
    );

    fake.push_order_fault(OrderFault::WashTrade);
    let e = rt
        .block_on(c.submit(&market("r-2", "AAPL", Side::Sell, "1")))
        .unwrap_err();
    assert!(matches!(e, BrokerError::WashTrade { .. }), "{e}");
    assert!(e.to_string().contains("wash trade"));

    // The engine's own buying-power check: 100 000 of cash cannot buy 2 000 × 100.
    let e = rt
        .block_on(c.submit(&market("r-3", "AAPL", Side::Buy, "2000")))
        .unwrap_err();
    assert!(
        matches!(e, BrokerError::InsufficientBuyingPower { .. }),
        "{e}"
    );

    // Sub-penny limit (42210000) and a crypto order with a stock time-in-force (40010001):
    // plain rejections — the latter shares the duplicate-id code and must not read as one.
    let e = rt
        .block_on(c.submit(&NewOrder::limit(
            "r-4",
            "AAPL",
            Side::Buy,
            dec("1"),
            dec("99.999"),
        )))
        .unwrap_err();
    assert!(
        matches!(
            e,
            BrokerError::Rejected {
                status: 422,
                code: Some(42210000),
                ..
            }
        ),
        "{e}"
    );
    let e = rt
        .block_on(c.submit(&market("r-5", "BTC/USD", Side::Buy, "0.01")))
        .unwrap_err();
    assert!(
        matches!(
            e,
            BrokerError::Rejected {
                code: Some(40010001),
                ..
            }
        ),
        "{e}"
    );
    // No crypto shorts.
    let mut short = market("r-6", "BTC/USD", Side::Sell, "0.01");
    short.time_in_force = TimeInForce::Gtc;
    let e = rt.block_on(c.submit(&short)).unwrap_err();
    assert!(
        matches!(e, BrokerError::Rejected { status: 403, .. })
            && e.to_string().contains("insufficient balance"),
        "{e}"
    );
    // Invalid orders never leave the machine.
    let before = fake.requests_to("POST", "/v2/orders").len();
    let mut bad = market("r-7", "AAPL", Side::Buy, "1");
    bad.notional = Some(dec("5"));
    assert!(matches!(
        rt.block_on(c.submit(&bad)),
        Err(BrokerError::InvalidOrder { .. })
    ));
    assert_eq!(fake.requests_to("POST", "/v2/orders").len(), before);
    assert!(fake.orders().is_empty(), "no refused order exists");
}

#[test]
fn a_500_or_lost_answer_after_acceptance_is_uncertain_and_the_order_is_found_by_client_id() {
    let fake = FakeAlpaca::trading();
    fake.set_price("AAPL", "100");
    let c = client(&fake);
    let rt = rt();
    let cases = [
        ("u-500", OrderFault::AcceptThenStatus(500)),
        (
            "u-slow",
            OrderFault::AcceptThenSlow(Duration::from_millis(2500)),
        ),
        ("u-drop", OrderFault::AcceptThenDrop),
    ];
    for (cid, fault) in cases {
        fake.push_order_fault(fault);
        let e = rt
            .block_on(c.submit(&market(cid, "AAPL", Side::Buy, "2")))
            .unwrap_err();
        assert!(
            e.is_uncertain() && e.needs_lookup() && !e.is_retryable(),
            "{cid}: {e}"
        );
        assert!(
            e.to_string().contains(cid) && e.to_string().contains("look it up"),
            "{e}"
        );
        assert_eq!(
            fake.posts_for(cid),
            1,
            "{cid}: submit made exactly one attempt"
        );
        let found = rt
            .block_on(c.order_by_client_id(cid))
            .unwrap()
            .expect("accepted anyway");
        assert_eq!(found.client_order_id, cid);
        assert_eq!(found.status, OrderStatus::Filled);
        assert_eq!(found.filled_qty, dec("2"));
    }
    assert_eq!(
        rt.block_on(c.order_by_client_id("never-sent")).unwrap(),
        None
    );
    // A plain 503 on submit is uncertain too (Alpaca can answer 5xx after accepting).
    fake.push_order_fault(OrderFault::AcceptThenStatus(503));
    let e = rt
        .block_on(c.submit(&market("u-503", "AAPL", Side::Buy, "1")))
        .unwrap_err();
    assert!(e.is_uncertain(), "{e}");
    // 429 on submit: surely not placed, safe to send again with the same id.
    fake.push_order_fault(OrderFault::Reject(
        429,
        serde_json::json!({"message": "too many requests"}),
    ));
    let e = rt
        .block_on(c.submit(&market("u-429", "AAPL", Side::Buy, "1")))
        .unwrap_err();
    assert!(
        matches!(e, BrokerError::RateLimited { .. }) && e.is_retryable(),
        "{e}"
    );
    assert_eq!(fake.posts_for("u-429"), 1);
}

#[test]
fn duplicate_client_order_id_is_typed() {
    let fake = FakeAlpaca::trading();
    fake.set_price("MSFT", "400");
    let c = client(&fake);
    let rt = rt();
    let o = market("dup-1", "MSFT", Side::Buy, "1");
    let first = rt.block_on(c.submit(&o)).unwrap();
    assert_eq!(first.client_order_id, "dup-1");
    assert_eq!(first.order_type, OrderType::Market);
    let e = rt.block_on(c.submit(&o)).unwrap_err();
    assert_eq!(
        e,
        BrokerError::DuplicateClientOrderId {
            client_order_id: "dup-1".into()
        }
    );
    assert!(e.needs_lookup());
    assert_eq!(fake.posts_for("dup-1"), 2);
    assert_eq!(fake.orders().len(), 1, "Alpaca keeps the first order only");
}

#[test]
fn orders_page_past_500_with_tied_timestamps_and_no_gaps_or_duplicates() {
    let fake = FakeAlpaca::trading();
    let t0 = Utc.with_ymd_and_hms(2024, 3, 4, 14, 30, 0).unwrap();
    // 1 203 orders in groups of three sharing one submission time, 2 s apart: pages of 500 end
    // inside a group.
    let mut want = BTreeSet::new();
    for i in 0..1203 {
        let status = if i % 10 == 0 { "new" } else { "filled" };
        let at = t0 + chrono::Duration::seconds(2 * (i / 3) as i64);
        want.insert(fake.insert_order("AAPL", &format!("p-{i}"), status, at).id);
    }
    fake.insert_order(
        "AAPL",
        "too-early",
        "filled",
        t0 - chrono::Duration::hours(1),
    );
    let c = client(&fake);
    let rt = rt();
    for direction in [Direction::Asc, Direction::Desc] {
        let before = fake.requests_to("GET", "/v2/orders").len();
        let q = OrdersQuery {
            direction,
            ..OrdersQuery::all_since(t0 - chrono::Duration::seconds(1))
        };
        let got = rt.block_on(c.orders(q)).unwrap();
        let ids: Vec<String> = got.iter().map(|o| o.id.clone()).collect();
        let unique: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(ids.len(), unique.len(), "{direction:?}: no duplicates");
        assert_eq!(unique, want, "{direction:?}: none missing, none extra");
        let times: Vec<_> = got.iter().map(|o| o.submitted_at.unwrap()).collect();
        let sorted = match direction {
            Direction::Asc => times.windows(2).all(|w| w[0] <= w[1]),
            Direction::Desc => times.windows(2).all(|w| w[0] >= w[1]),
        };
        assert!(sorted, "{direction:?}: in order");
        let reqs = fake.requests_to("GET", "/v2/orders")[before..].to_vec();
        assert!(
            reqs.len() >= 3,
            "{direction:?}: paged ({} requests)",
            reqs.len()
        );
        assert!(reqs
            .iter()
            .all(|r| r.query["limit"] == "500" && r.query["status"] == "all"));
    }
    let open = rt
        .block_on(c.orders(OrdersQuery {
            status: OrderQueryStatus::Open,
            ..Default::default()
        }))
        .unwrap();
    assert_eq!(open.len(), 121);
    assert!(open.iter().all(|o| o.status.is_open()));
}

#[test]
fn cancel_all_and_close_all_decode_their_207_rows() {
    let fake = FakeAlpaca::trading();
    fake.set_price("AAPL", "100");
    fake.set_price("BTC/USD", "60000");
    fake.set_price("TSLA", "200");
    fake.add_position("BTC/USD", "0.5", "59000");
    fake.add_position("TSLA", "4", "190");
    fake.refuse_close("TSLA");
    let c = client(&fake);
    let rt = rt();
    // A resting limit order to cancel, and a long AAPL position to close.
    rt.block_on(c.submit(&market("c-1", "AAPL", Side::Buy, "3")))
        .unwrap();
    let resting = rt
        .block_on(c.submit(&NewOrder::limit(
            "c-2",
            "AAPL",
            Side::Buy,
            dec("1"),
            dec("90"),
        )))
        .unwrap();

    let rows = rt.block_on(c.cancel_all()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].order_id, resting.id);
    assert!(rows[0].is_ok());
    assert_eq!(
        rows[0].order.as_ref().unwrap().status,
        OrderStatus::Canceled
    );

    let rows = rt.block_on(c.close_all()).unwrap();
    let req = fake.requests_to("DELETE", "/v2/positions");
    assert_eq!(req[0].query["cancel_orders"], "true");
    assert_eq!(rows.len(), 3);
    let by = |s: &str| rows.iter().find(|r| r.symbol == s).unwrap();
    let btc = by("BTCUSD");
    assert!(btc.is_ok());
    let close = btc.order.as_ref().unwrap();
    assert_eq!(
        (close.side.clone(), close.qty, close.symbol.as_str()),
        (Side::Sell, Some(dec("0.5")), "BTC/USD")
    );
    assert_eq!(close.time_in_force, TimeInForce::Gtc);
    assert!(by("AAPL").is_ok());
    let tsla = by("TSLA");
    assert_eq!(tsla.status, 403);
    assert!(tsla.order.is_none());
    let err = tsla.error.as_ref().unwrap();
    assert_eq!(err.code, Some(40310000));
    assert!(err.message.contains("insufficient qty available"));
    // What closed is flat now; the refused one is still there.
    let left = rt.block_on(c.positions()).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].symbol, "TSLA");
}

#[test]
fn reads_retry_429_5xx_and_broken_bodies_within_the_budget() {
    let fake = FakeAlpaca::trading();
    let c = client(&fake);
    let rt = rt();
    fake.push_trading_fault(Fault::TooMany { reset_in_s: 2 });
    fake.push_trading_fault(Fault::Status(503, "unavailable"));
    fake.push_trading_fault(Fault::TruncatedBody);
    fake.push_trading_fault(Fault::MalformedJson);
    let a = rt.block_on(c.account()).unwrap();
    assert_eq!(a.cash, dec("100000"));
    let reqs = fake.requests_to("GET", "/v2/account");
    assert_eq!(reqs.len(), 5, "four failures, then the answer");
    assert!(
        reqs[1].at.duration_since(reqs[0].at) >= Duration::from_millis(900),
        "the client waited for the rate-limit reset"
    );
    // A read that times out is simply asked again.
    fake.push_trading_fault(Fault::Slow(Duration::from_millis(2500)));
    let before = fake.requests_to("GET", "/v2/clock").len();
    assert!(rt.block_on(c.clock()).is_ok());
    assert_eq!(fake.requests_to("GET", "/v2/clock").len() - before, 2);
    for _ in 0..5 {
        fake.push_trading_fault(Fault::Status(500, "internal error"));
    }
    let e = rt.block_on(c.positions()).unwrap_err();
    assert!(
        matches!(e, BrokerError::RetriesExhausted { attempts: 5, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("500"));
}

#[test]
fn the_live_host_is_refused_unless_allowed() {
    for url in [
        "https://api.alpaca.markets",
        "https://api.alpaca.markets/v2/",
    ] {
        let e = TradingClient::new(TradingSettings::for_base_url(url), creds())
            .err()
            .unwrap();
        assert!(matches!(e, BrokerError::LiveHostRefused { .. }));
        let msg = e.to_string();
        assert!(msg.contains("paper") && msg.contains("allow_live"), "{msg}");
        let allowed = TradingSettings {
            allow_live: true,
            ..TradingSettings::for_base_url(url)
        };
        assert!(TradingClient::new(allowed, creds()).is_ok());
    }
    assert!(TradingClient::new(TradingSettings::paper_default(), creds()).is_ok());
    // The stream refuses it too, before connecting anywhere.
    rt().block_on(async {
        let live = TradingSettings::for_base_url("https://api.alpaca.markets");
        let mut s = quantdeck::broker::alpaca::spawn_trade_updates(live, creds());
        let first = tokio::time::timeout(Duration::from_secs(5), s.recv())
            .await
            .unwrap();
        assert!(
            matches!(
                &first,
                Some(quantdeck::broker::alpaca::TradeStreamMsg::Fatal(
                    BrokerError::LiveHostRefused { .. }
                ))
            ),
            "{first:?}"
        );
    });
}

#[test]
fn data_only_keys_get_a_plain_cannot_trade_error_and_no_secret_leaks() {
    let fake = FakeAlpaca::trading();
    fake.set_data_only_keys(true);
    let c = client(&fake);
    let rt = rt();
    let e = rt.block_on(c.account()).unwrap_err();
    assert!(
        matches!(e, BrokerError::NotAuthorizedForTrading { .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("cannot trade")
            && msg.contains(KEY_ID)
            && msg.contains(&fake.addr.to_string()),
        "{msg}"
    );
    assert_eq!(
        fake.requests_to("GET", "/v2/account").len(),
        1,
        "not retried"
    );
    let e = rt
        .block_on(c.submit(&market("k-1", "AAPL", Side::Buy, "1")))
        .unwrap_err();
    assert!(e.is_auth(), "{e}");
    // Wrong secret: the same plain answer, naming the key id only.
    fake.set_data_only_keys(false);
    let wrong =
        TradingClient::new(settings(&fake), Credentials::new(KEY_ID, "not-the-secret")).unwrap();
    let e = rt.block_on(wrong.positions()).unwrap_err();
    assert!(e.is_auth());
    for text in [
        format!("{e}"),
        format!("{e:?}"),
        format!("{:?}", creds()),
        format!("{:?}", settings(&fake)),
    ] {
        assert!(!text.contains(SECRET), "{text}");
    }
}
