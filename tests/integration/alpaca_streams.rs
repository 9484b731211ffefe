//! The trade-updates stream and the market-data bar stream against the fake Alpaca's websockets
//! (real sockets, binary frames by default), the REST polling fallback for bars, and the secret
//! kept out of every log line, error and event.

use crate::alpaca_trading::{creds, settings};
use crate::common::fake_alpaca::{dec, FakeAlpaca, KEY_ID, SECRET};
use chrono::{TimeZone, Utc};
use quantdeck::broker::alpaca::{
    spawn_trade_updates, TradeStream, TradeStreamMsg, TradingClient, TradingSettings,
};
use quantdeck::broker::types::{NewOrder, OrderStatus, Side, TradeEvent, TradeUpdate};
use quantdeck::data::alpaca::stream::{
    spawn_bar_stream, BarFeed, BarStream, DataStreamSettings, MarketMsg, StockFeed, StreamError,
};
use quantdeck::data::alpaca::{ClientSettings, Credentials, DataClient};
use quantdeck::market::{Bar, Symbol};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn trade_settings(fake: &FakeAlpaca) -> TradingSettings {
    TradingSettings {
        stream_url: fake.trade_stream_url(),
        timeout: Duration::from_secs(2),
        ..settings(fake)
    }
}

fn data_settings(fake: &FakeAlpaca) -> DataStreamSettings {
    DataStreamSettings {
        url: fake.ws_url(),
        retry_base: Duration::from_millis(20),
        max_backoff: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

async fn recv(s: &mut TradeStream) -> TradeStreamMsg {
    tokio::time::timeout(Duration::from_secs(5), s.recv())
        .await
        .expect("a stream message in time")
        .expect("stream open")
}

async fn update(s: &mut TradeStream) -> TradeUpdate {
    match recv(s).await {
        TradeStreamMsg::Update(u) => *u,
        other => panic!("expected a trade update, got {other:?}"),
    }
}

async fn market_msg(s: &mut BarStream) -> MarketMsg {
    tokio::time::timeout(Duration::from_secs(5), s.recv())
        .await
        .expect("a market message in time")
        .expect("stream open")
}

fn bar(min: u32, close: f64) -> Bar {
    Bar {
        ts: Utc.with_ymd_and_hms(2024, 3, 4, 14, 30 + min, 0).unwrap(),
        open: close - 0.5,
        high: close + 1.0,
        low: close - 1.0,
        close,
        volume: 1000.0 + min as f64,
    }
}

/// Polls `cond` for up to 5 s.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn fills_and_partial_fills_arrive_on_the_trade_stream_in_binary_frames() {
    let fake = FakeAlpaca::trading();
    fake.set_price("AAPL", "100");
    fake.script_partial("0.4");
    fake.script_ws(|w| w.ping_after_listen = true);
    rt().block_on(async {
        let mut s = spawn_trade_updates(trade_settings(&fake), creds());
        assert_eq!(recv(&mut s).await, TradeStreamMsg::Connected);
        eventually("the client answers the server's ping", || {
            fake.counters().pongs >= 1
        })
        .await;
        let c = TradingClient::new(settings(&fake), creds()).unwrap();
        let o = c
            .submit(&NewOrder::market("s-1", "AAPL", Side::Buy, dec("10")))
            .await
            .unwrap();
        assert_eq!(o.status, OrderStatus::New);

        let u = update(&mut s).await;
        assert_eq!(
            (u.event, u.order.client_order_id.as_str()),
            (TradeEvent::New, "s-1")
        );
        let u = update(&mut s).await;
        assert_eq!(u.event, TradeEvent::PartialFill);
        assert_eq!(
            (u.qty, u.price, u.position_qty),
            (Some(dec("4")), Some(dec("100")), Some(dec("4")))
        );
        assert_eq!(u.order.status, OrderStatus::PartiallyFilled);
        assert!(u.execution_id.is_some() && u.timestamp.is_some());

        fake.set_price("AAPL", "101");
        let u = update(&mut s).await;
        assert_eq!(u.event, TradeEvent::Fill);
        assert_eq!(
            (u.qty, u.price, u.position_qty),
            (Some(dec("6")), Some(dec("101")), Some(dec("10")))
        );
        assert_eq!(u.order.filled_qty, dec("10"));
        assert_eq!(u.order.filled_avg_price, Some(dec("100.6")));
        s.shutdown().await;
    });
}

#[test]
fn an_unauthorized_reply_is_fatal_and_not_retried() {
    let fake = FakeAlpaca::trading();
    fake.script_ws(|w| w.reject_stream_auth = true);
    rt().block_on(async {
        let mut s = spawn_trade_updates(trade_settings(&fake), creds());
        match recv(&mut s).await {
            TradeStreamMsg::Fatal(e) => {
                assert!(e.is_auth() && e.to_string().contains(KEY_ID), "{e}")
            }
            other => panic!("\"unauthorized\" must be refused, got {other:?}"),
        }
        let end = tokio::time::timeout(Duration::from_secs(1), s.recv()).await;
        assert_eq!(end, Ok(None), "the task ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            fake.counters().trade_connections,
            1,
            "no reconnect loop with bad keys"
        );

        // Wrong keys get the same reply from the server, and the same end.
        fake.script_ws(|w| w.reject_stream_auth = false);
        let mut s = spawn_trade_updates(trade_settings(&fake), Credentials::new(KEY_ID, "wrong"));
        assert!(matches!(recv(&mut s).await, TradeStreamMsg::Fatal(_)));
    });
}

#[test]
fn without_the_listen_ack_the_stream_is_not_connected() {
    let fake = FakeAlpaca::trading();
    fake.script_ws(|w| w.ack_listen = false);
    rt().block_on(async {
        let settings = TradingSettings {
            timeout: Duration::from_millis(300),
            ..trade_settings(&fake)
        };
        let mut s = spawn_trade_updates(settings, creds());
        match recv(&mut s).await {
            TradeStreamMsg::Disconnected { reason } => {
                assert!(reason.contains("listening"), "{reason}")
            }
            other => panic!("no ack, no Connected: got {other:?}"),
        }
        fake.script_ws(|w| w.ack_listen = true);
        loop {
            match recv(&mut s).await {
                TradeStreamMsg::Connected => break,
                TradeStreamMsg::Disconnected { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(
            fake.counters().trade_connections >= 2,
            "it retried by itself"
        );
    });
}

#[test]
fn a_dropped_stream_reconnects_and_a_fill_missing_from_it_is_found_over_rest() {
    let fake = FakeAlpaca::trading();
    fake.set_price("MSFT", "400");
    rt().block_on(async {
        let mut s = spawn_trade_updates(trade_settings(&fake), creds());
        assert_eq!(recv(&mut s).await, TradeStreamMsg::Connected);
        let dropped = Instant::now();
        fake.drop_trade_streams();
        assert!(matches!(
            recv(&mut s).await,
            TradeStreamMsg::Disconnected { .. }
        ));
        assert_eq!(recv(&mut s).await, TradeStreamMsg::Connected);
        assert!(
            dropped.elapsed() >= Duration::from_millis(10),
            "backoff before reconnecting"
        );
        assert_eq!(fake.counters().trade_connections, 2);

        // Text frames are accepted as well as binary ones.
        fake.script_ws(|w| w.trade_text_frames = true);
        fake.drop_trade_streams();
        assert!(matches!(
            recv(&mut s).await,
            TradeStreamMsg::Disconnected { .. }
        ));
        assert_eq!(recv(&mut s).await, TradeStreamMsg::Connected);

        fake.suppress_next_fill();
        let c = TradingClient::new(settings(&fake), creds()).unwrap();
        c.submit(&NewOrder::market("m-1", "MSFT", Side::Buy, dec("2")))
            .await
            .unwrap();
        assert_eq!(update(&mut s).await.event, TradeEvent::New);
        let silent = tokio::time::timeout(Duration::from_millis(500), s.recv()).await;
        assert!(
            silent.is_err(),
            "the fill never arrives on the stream: {silent:?}"
        );
        // The ledger has it.
        let o = c.order_by_client_id("m-1").await.unwrap().unwrap();
        assert_eq!((o.status, o.filled_qty), (OrderStatus::Filled, dec("2")));
        let p = c.positions().await.unwrap();
        assert_eq!(p[0].qty, dec("2"));
    });
}

#[test]
fn bar_stream_delivers_bars_and_revisions_and_resubscribes_after_a_drop() {
    let fake = FakeAlpaca::trading();
    rt().block_on(async {
        let symbols = vec!["AAPL".to_string(), "MSFT".to_string()];
        let mut s = spawn_bar_stream(
            data_settings(&fake),
            creds(),
            BarFeed::Stocks(StockFeed::Iex),
            symbols.clone(),
        );
        let mut crypto = spawn_bar_stream(
            data_settings(&fake),
            creds(),
            BarFeed::Crypto,
            vec!["BTC/USD".into()],
        );
        assert_eq!(market_msg(&mut s).await, MarketMsg::Connected);
        assert_eq!(market_msg(&mut crypto).await, MarketMsg::Connected);

        fake.push_bar("AAPL", bar(1, 180.0));
        let got = market_msg(&mut s).await;
        assert_eq!(
            got,
            MarketMsg::Bar {
                symbol: "AAPL".into(),
                bar: bar(1, 180.0),
                revision: false
            }
        );
        fake.push_bar("TSLA", bar(1, 200.0)); // not subscribed
        fake.push_revision("AAPL", bar(1, 180.25));
        let got = market_msg(&mut s).await;
        assert_eq!(
            got,
            MarketMsg::Bar {
                symbol: "AAPL".into(),
                bar: bar(1, 180.25),
                revision: true
            }
        );

        fake.push_bar(
            "BTC/USD",
            Bar {
                volume: 0.0125,
                ..bar(1, 61000.0)
            },
        );
        match market_msg(&mut crypto).await {
            MarketMsg::Bar { symbol, bar, .. } => {
                assert_eq!((symbol.as_str(), bar.volume), ("BTC/USD", 0.0125))
            }
            other => panic!("{other:?}"),
        }

        fake.drop_data_streams();
        assert!(matches!(
            market_msg(&mut s).await,
            MarketMsg::Disconnected { .. }
        ));
        assert_eq!(market_msg(&mut s).await, MarketMsg::Connected);
        fake.push_bar("MSFT", bar(2, 400.0));
        match market_msg(&mut s).await {
            MarketMsg::Bar {
                symbol,
                revision: false,
                ..
            } => assert_eq!(symbol, "MSFT"),
            other => panic!("{other:?}"),
        }
        let subs: Vec<_> = fake
            .counters()
            .subscriptions
            .into_iter()
            .filter(|(f, _, _)| f == "stocks")
            .collect();
        assert_eq!(subs.len(), 2, "subscribed again after reconnecting");
        assert!(subs.iter().all(|(_, b, u)| *b == symbols && *u == symbols));
    });
}

#[test]
fn a_second_market_data_connection_gets_406_and_the_first_keeps_streaming() {
    let fake = FakeAlpaca::trading();
    rt().block_on(async {
        let mut first = spawn_bar_stream(
            data_settings(&fake),
            creds(),
            BarFeed::Stocks(StockFeed::Iex),
            vec!["AAPL".into()],
        );
        assert_eq!(market_msg(&mut first).await, MarketMsg::Connected);
        let mut second = spawn_bar_stream(
            data_settings(&fake),
            creds(),
            BarFeed::Stocks(StockFeed::Test),
            vec!["FAKEPACA".into()],
        );
        match market_msg(&mut second).await {
            MarketMsg::Fatal(e @ StreamError::ConnectionLimit { .. }) => {
                assert!(e.to_string().contains("another quantdeck"), "{e}")
            }
            other => panic!("expected 406, got {other:?}"),
        }
        fake.push_bar("AAPL", bar(3, 181.0));
        assert!(matches!(
            market_msg(&mut first).await,
            MarketMsg::Bar { .. }
        ));

        let mut bad = spawn_bar_stream(
            data_settings(&fake),
            Credentials::new(KEY_ID, "wrong"),
            BarFeed::Crypto,
            vec!["BTC/USD".into()],
        );
        assert!(matches!(
            market_msg(&mut bad).await,
            MarketMsg::Fatal(StreamError::AuthFailed { .. })
        ));
    });
}

#[test]
fn dropping_the_handles_closes_the_sockets() {
    let fake = FakeAlpaca::trading();
    rt().block_on(async {
        let mut t = spawn_trade_updates(trade_settings(&fake), creds());
        let mut b = spawn_bar_stream(
            data_settings(&fake),
            creds(),
            BarFeed::Stocks(StockFeed::Iex),
            vec!["AAPL".into()],
        );
        assert_eq!(recv(&mut t).await, TradeStreamMsg::Connected);
        assert_eq!(market_msg(&mut b).await, MarketMsg::Connected);
        assert_eq!(fake.counters().trade_active, 1);
        drop(t);
        drop(b);
        eventually("both sockets closed", || {
            let c = fake.counters();
            c.trade_active == 0 && c.data_active.values().all(|n| *n == 0)
        })
        .await;
        // The account can stream again at once (no 406 from a lingering connection).
        let mut again = spawn_bar_stream(
            data_settings(&fake),
            creds(),
            BarFeed::Stocks(StockFeed::Iex),
            vec!["AAPL".into()],
        );
        assert_eq!(market_msg(&mut again).await, MarketMsg::Connected);
    });
}

#[test]
fn the_rest_fallback_serves_minute_bars_after_a_time() {
    let fake = FakeAlpaca::trading();
    for m in 0..3 {
        fake.push_bar("AAPL", bar(m, 180.0 + m as f64));
    }
    for m in 0..2 {
        fake.push_bar("BTC/USD", bar(m, 61000.0 + m as f64));
    }
    let mut cs = ClientSettings::from_config(&crate::common::tiny_config().data);
    cs.data_url = fake.url();
    cs.retry_base = Duration::from_millis(10);
    let client = DataClient::new(cs, creds()).unwrap();
    let symbols = [Symbol::equity("AAPL"), Symbol::crypto("BTC/USD")];
    let got = rt()
        .block_on(client.minute_bars_after(&symbols, bar(0, 0.0).ts, bar(29, 0.0).ts))
        .unwrap();
    assert_eq!(got["AAPL"], vec![bar(1, 181.0), bar(2, 182.0)]);
    assert_eq!(got["BTC/USD"], vec![bar(1, 61001.0)]);
    let reqs = fake.bar_requests();
    assert_eq!(reqs.len(), 2, "one request per asset class");
    assert!(reqs.iter().all(|r| r.query["timeframe"] == "1Min"));
}

/// A `tracing` writer into a shared buffer.
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn no_secret_in_any_log_line_error_or_event() {
    let fake = FakeAlpaca::trading();
    fake.set_price("AAPL", "100");
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Capture(sink.clone()))
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let mut texts: Vec<String> = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        // One thread: every task logs through this subscriber.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let c = TradingClient::new(settings(&fake), creds()).unwrap();
            fake.push_trading_fault(crate::common::fake_alpaca::Fault::Status(
                503,
                "unavailable",
            ));
            texts.push(format!("{:?}", c.account().await.unwrap()));
            fake.push_order_fault(crate::common::fake_alpaca::OrderFault::AcceptThenStatus(
                500,
            ));
            let e = c
                .submit(&NewOrder::market("x-1", "AAPL", Side::Buy, dec("1")))
                .await
                .unwrap_err();
            texts.extend([e.to_string(), format!("{e:?}")]);
            let wrong =
                TradingClient::new(settings(&fake), Credentials::new(KEY_ID, "wrong")).unwrap();
            let e = wrong.account().await.unwrap_err();
            texts.extend([e.to_string(), format!("{e:?}")]);

            let mut s = spawn_trade_updates(trade_settings(&fake), creds());
            texts.push(format!("{:?}", recv(&mut s).await));
            fake.drop_trade_streams();
            texts.push(format!("{:?}", recv(&mut s).await));
            texts.push(format!("{:?}", recv(&mut s).await));
            fake.script_ws(|w| w.reject_stream_auth = true);
            let mut r = spawn_trade_updates(trade_settings(&fake), creds());
            texts.push(format!("{:?}", recv(&mut r).await));

            let mut b = spawn_bar_stream(
                data_settings(&fake),
                creds(),
                BarFeed::Stocks(StockFeed::Iex),
                vec!["AAPL".into()],
            );
            texts.push(format!("{:?}", market_msg(&mut b).await));
            let mut b2 = spawn_bar_stream(
                data_settings(&fake),
                creds(),
                BarFeed::Stocks(StockFeed::Iex),
                vec!["AAPL".into()],
            );
            texts.push(format!("{:?}", market_msg(&mut b2).await));
            s.shutdown().await;
        });
    });
    let logs = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    // The capture works: the retry, the lost stream and the refusals were logged.
    assert!(
        logs.contains("retrying") && logs.contains("trade-updates stream"),
        "{logs}"
    );
    assert!(
        logs.contains("406") || logs.contains("connection limit"),
        "{logs}"
    );
    assert!(!logs.contains(SECRET), "secret in the logs:\n{logs}");
    for t in &texts {
        assert!(!t.contains(SECRET), "secret in {t}");
    }
    assert!(texts.iter().any(|t| t.contains("Uncertain")));
}
