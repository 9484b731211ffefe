//! An in-process fake of Alpaca on 127.0.0.1, with real sockets:
//! - the market-data REST API (`http`, `data`): pages multi-symbol bar responses exactly as
//!   Alpaca does, rate-limits, and fails on script (429 with reset headers, 5xx, truncated or
//!   malformed bodies, slow answers, 401/403/422);
//! - the trading REST API (`trading`) with Alpaca's JSON shapes (templates from
//!   `tests/integration/data/alpaca/*.json`, every amount a string), over a small matching
//!   engine (`engine`), with scriptable refusals and the faults that matter for idempotency (a
//!   500 or a slow answer *after* the order was accepted, a dropped connection);
//! - the websockets (`ws`, on a second port): `/stream` (trade updates, binary frames by
//!   default) and `/v2/{iex,sip,delayed_sip,test}`, `/v1beta3/crypto/us` (bars).
//!
//! Tests drive it through [`FakeAlpaca`]'s methods: a bar feed (`push_bar`, `push_revision`),
//! prices, the market clock, assets, faults, stream drops, and inspection of what it received.
#![allow(dead_code)]

mod data;
mod engine;
mod http;
mod trading;
mod ws;

pub use engine::{dec, dec_f64, AssetSpec, Engine, FakeOrder, FakePosition};

use chrono::{DateTime, Utc};
use quantdeck::market::Bar;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

pub const KEY_ID: &str = "PKFAKE123";
pub const SECRET: &str = "fake-secret-never-logged-42";

/// Faults for data requests (and, through [`FakeAlpaca::push_trading_fault`], for trading reads
/// and cancels).
#[derive(Debug, Clone)]
pub enum Fault {
    TooMany {
        reset_in_s: i64,
    },
    Status(u16, &'static str),
    /// Promises the whole body, sends half, closes.
    TruncatedBody,
    /// A 200 whose JSON is cut short (consistent Content-Length).
    MalformedJson,
    /// Answers only after this long (longer than the client's timeout).
    Slow(Duration),
}

/// Scripted outcomes of the next `POST /v2/orders`.
#[derive(Debug, Clone)]
pub enum OrderFault {
    /// 403, code 40310000, "insufficient buying power".
    InsufficientBuyingPower,
    /// 403, code 40310000, "potential wash trade detected. use complex orders".
    WashTrade,
    /// Accepts the order (it exists and may fill), then answers this status (e.g. 500).
    AcceptThenStatus(u16),
    /// Accepts the order, then answers only after this long.
    AcceptThenSlow(Duration),
    /// Accepts the order, then closes the connection without answering.
    AcceptThenDrop,
    /// Refuses with this status and body; the order does not exist.
    Reject(u16, Value),
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub at: Instant,
    pub status: u16,
}

/// What the fake broadcasts to its websocket connections.
#[derive(Debug, Clone)]
pub enum WsCtl {
    Trade(String),
    Bar {
        symbol: String,
        revision: bool,
        json: String,
    },
    /// Closes every trade-updates connection abruptly (no close frame).
    DropTrade,
    /// Closes every market-data connection abruptly.
    DropData,
}

/// How the websockets behave.
#[derive(Debug, Clone)]
pub struct WsScript {
    /// Trade updates in text frames (Alpaca paper sends binary).
    pub trade_text_frames: bool,
    /// Answer the stream's auth with `"status":"unauthorized"`.
    pub reject_stream_auth: bool,
    /// Send the `listening` ack.
    pub ack_listen: bool,
    /// Ping the client right after the `listening` ack (its pongs are counted).
    pub ping_after_listen: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub trade_connections: usize,
    pub trade_active: usize,
    /// Per endpoint family (`stocks`, `crypto`).
    pub data_connections: BTreeMap<String, usize>,
    /// Authenticated connections per (key id, family): the second one gets 406.
    pub data_active: BTreeMap<(String, String), usize>,
    /// Pongs received on trade-updates connections.
    pub pongs: usize,
    /// Every subscribe message: (family, bars, updatedBars).
    pub subscriptions: Vec<(String, Vec<String>, Vec<String>)>,
}

pub struct State {
    /// 15-minute bars served by the data REST API (the data tests' datasets).
    pub bars: BTreeMap<String, Vec<Bar>>,
    /// 1-minute bars: what `push_bar` feeds (served for `timeframe=1Min`).
    pub bars_1min: BTreeMap<String, Vec<Bar>>,
    pub page_cap: usize,
    pub faults: VecDeque<Fault>,
    /// After this many successful bar pages, every bar request gets a 500.
    pub fail_after_pages: Option<usize>,
    pub pages_served: usize,
    pub unknown_is_error: bool,
    pub sip_forbidden: bool,
    pub key_id: String,
    pub secret: String,
    pub requests: Vec<Request>,
    pub engine: Engine,
    pub trading_faults: VecDeque<Fault>,
    pub order_faults: VecDeque<OrderFault>,
    /// `POST /v2/orders` count per client order id (refused ones included).
    pub posts: BTreeMap<String, usize>,
    /// Keys good for market data only: every trading endpoint answers 401 "not authorized".
    pub data_only_keys: bool,
    pub clock_open: bool,
    /// Positions (normalized symbols) whose close is refused in the 207 rows.
    pub close_refused: std::collections::BTreeSet<String>,
    pub ws: WsScript,
    pub counters: Counters,
}

pub struct FakeAlpaca {
    pub addr: SocketAddr,
    pub ws_addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    _rt: tokio::runtime::Runtime,
}

/// Whether a new connection asks for a websocket (peeks at its request head, reads nothing).
async fn is_upgrade(sock: &tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 2048];
    for _ in 0..50 {
        let n = match sock.peek(&mut buf).await {
            Ok(n) => n,
            Err(_) => return false,
        };
        let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        if head.contains("\r\n\r\n") || n == buf.len() || n == 0 {
            return head.contains("upgrade: websocket");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

/// A recorded response shape from `tests/integration/data/alpaca/`.
pub fn fixture(name: &str) -> Value {
    let text = match name {
        "account.json" => include_str!("../../data/alpaca/account.json"),
        "position.json" => include_str!("../../data/alpaca/position.json"),
        "clock.json" => include_str!("../../data/alpaca/clock.json"),
        "asset_equity.json" => include_str!("../../data/alpaca/asset_equity.json"),
        "asset_crypto.json" => include_str!("../../data/alpaca/asset_crypto.json"),
        "order.json" => include_str!("../../data/alpaca/order.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).expect("fixture is JSON")
}

impl FakeAlpaca {
    /// Serves `bars` (15-minute) on the data API, `page_cap` bars per page at most.
    pub fn start(bars: BTreeMap<String, Vec<Bar>>, page_cap: usize) -> FakeAlpaca {
        let (events, _) = broadcast::channel(65_536);
        let state = Arc::new(Mutex::new(State {
            bars,
            bars_1min: BTreeMap::new(),
            page_cap,
            faults: VecDeque::new(),
            fail_after_pages: None,
            pages_served: 0,
            unknown_is_error: true,
            sip_forbidden: true,
            key_id: KEY_ID.into(),
            secret: SECRET.into(),
            requests: Vec::new(),
            engine: Engine::new(events),
            trading_faults: VecDeque::new(),
            order_faults: VecDeque::new(),
            posts: BTreeMap::new(),
            data_only_keys: false,
            clock_open: true,
            close_refused: Default::default(),
            ws: WsScript {
                trade_text_frames: false,
                reject_stream_auth: false,
                ack_listen: true,
                ping_after_listen: false,
            },
            counters: Counters::default(),
        }));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let bind = || {
            rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("bind")
        };
        let (listener, ws_listener) = (bind(), bind());
        let addr = listener.local_addr().expect("addr");
        let ws_addr = ws_listener.local_addr().expect("addr");
        let st = state.clone();
        rt.spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let st = st.clone();
                // Alpaca-like hosts also serve the websockets on the REST host's port, so a
                // stream host derived from APCA_API_DATA_URL reaches the fake.
                tokio::spawn(async move {
                    if is_upgrade(&sock).await {
                        ws::serve(sock, st).await;
                    } else {
                        let _ = http::serve(sock, st).await;
                    }
                });
            }
        });
        let st = state.clone();
        rt.spawn(async move {
            while let Ok((sock, _)) = ws_listener.accept().await {
                tokio::spawn(ws::serve(sock, st.clone()));
            }
        });
        FakeAlpaca {
            addr,
            ws_addr,
            state,
            _rt: rt,
        }
    }

    /// Drops both websockets every `period` (as links that fail every few seconds), until the
    /// fake is dropped.
    pub fn drop_links_every(&self, period: Duration) {
        let events = self.lock().engine.events.clone();
        self._rt.spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                if events.send(WsCtl::DropTrade).is_err() {
                    return;
                }
                let _ = events.send(WsCtl::DropData);
            }
        });
    }

    /// A websocket host that refuses connections (nothing listens on its port).
    pub fn refused_url() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        format!("ws://127.0.0.1:{port}")
    }

    /// A websocket host that accepts TCP connections and never answers (every attempt times
    /// out).
    pub fn blackhole_url(&self) -> String {
        let l = self
            ._rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        self._rt.spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = l.accept().await {
                held.push(sock);
            }
        });
        format!("ws://127.0.0.1:{port}")
    }

    /// Fills wait this many price updates (minutes) of their symbol, drawn per order in
    /// `[min, max]`: fills that take bars to come.
    pub fn delay_fills(&self, min: u32, max: u32) {
        self.lock().engine.fill_delay = Some((min, max));
    }

    /// A stock split at the broker: the position's quantity × `ratio`, its price ÷ `ratio`.
    pub fn split(&self, symbol: &str, ratio: u32) {
        let mut s = self.lock();
        let key = quantdeck::broker::types::normalize_symbol(symbol);
        let r = rust_decimal::Decimal::from(ratio);
        if let Some(p) = s.engine.positions.get_mut(&key) {
            p.qty *= r;
            p.avg /= r;
        }
        if let Some(px) = s.engine.prices.get_mut(&key) {
            *px /= r;
        }
    }

    /// A fake for trading tests: no 15-minute dataset.
    pub fn trading() -> FakeAlpaca {
        FakeAlpaca::start(BTreeMap::new(), 10_000)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Scheme and host of the websockets (append `/stream`, `/v2/iex`, …).
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }

    pub fn trade_stream_url(&self) -> String {
        format!("{}/stream", self.ws_url())
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push_fault(&self, f: Fault) {
        self.lock().faults.push_back(f);
    }

    pub fn push_trading_fault(&self, f: Fault) {
        self.lock().trading_faults.push_back(f);
    }

    pub fn push_order_fault(&self, f: OrderFault) {
        self.lock().order_faults.push_back(f);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    pub fn bar_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/bars"))
            .collect()
    }

    /// Requests to one trading path (e.g. `/v2/orders`).
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }

    // --- the bar feed -------------------------------------------------------------------

    /// A closed 1-minute bar: sent as `b` to stream subscribers, served by the REST bars
    /// endpoint (`timeframe=1Min`), and the symbol's price for the matching engine.
    pub fn push_bar(&self, symbol: &str, bar: Bar) {
        let mut s = self.lock();
        let list = s.bars_1min.entry(symbol.to_string()).or_default();
        list.retain(|b| b.ts != bar.ts);
        list.push(bar);
        list.sort_by_key(|b| b.ts);
        s.engine.prices.insert(
            quantdeck::broker::types::normalize_symbol(symbol),
            dec_f64(bar.close),
        );
        s.engine.on_price(symbol);
        let _ = s.engine.events.send(ws::bar_msg(symbol, &bar, false));
    }

    /// A revision (`u`) of a bar already sent; replaces it on the REST endpoint too.
    pub fn push_revision(&self, symbol: &str, bar: Bar) {
        let mut s = self.lock();
        let list = s.bars_1min.entry(symbol.to_string()).or_default();
        list.retain(|b| b.ts != bar.ts);
        list.push(bar);
        list.sort_by_key(|b| b.ts);
        let _ = s.engine.events.send(ws::bar_msg(symbol, &bar, true));
    }

    /// Sets a price (without a bar) and fills what crosses.
    pub fn set_price(&self, symbol: &str, price: &str) {
        let mut s = self.lock();
        s.engine.prices.insert(
            quantdeck::broker::types::normalize_symbol(symbol),
            dec(price),
        );
        s.engine.on_price(symbol);
    }

    // --- trading state --------------------------------------------------------------------

    pub fn set_clock_open(&self, open: bool) {
        self.lock().clock_open = open;
    }

    pub fn set_asset(&self, spec: AssetSpec) {
        let key = quantdeck::broker::types::normalize_symbol(&spec.symbol);
        self.lock().engine.assets.insert(key, spec);
    }

    pub fn set_cash(&self, cash: &str) {
        let mut s = self.lock();
        s.engine.cash = dec(cash);
        s.engine.last_equity = dec(cash);
    }

    /// A position the daemon did not make (e.g. bought by hand).
    pub fn add_position(&self, symbol: &str, qty: &str, avg: &str) {
        let crypto = symbol.contains('/');
        let key = quantdeck::broker::types::normalize_symbol(symbol);
        let name = if crypto {
            key.clone()
        } else {
            symbol.to_string()
        };
        self.lock().engine.positions.insert(
            key,
            FakePosition {
                symbol: name,
                crypto,
                qty: dec(qty),
                avg: dec(avg),
            },
        );
    }

    /// An order as listed by `GET /v2/orders`, submitted at `at` (nothing is emitted).
    pub fn insert_order(
        &self,
        symbol: &str,
        client_order_id: &str,
        status: &str,
        at: DateTime<Utc>,
    ) -> FakeOrder {
        let o = FakeOrder {
            seq: 0,
            id: String::new(),
            client_order_id: client_order_id.to_string(),
            symbol: symbol.to_string(),
            crypto: symbol.contains('/'),
            side: "buy".into(),
            order_type: "market".into(),
            time_in_force: if symbol.contains('/') { "gtc" } else { "day" }.into(),
            qty: Some(dec("1")),
            notional: None,
            filled_qty: if status == "filled" {
                dec("1")
            } else {
                dec("0")
            },
            filled_avg_price: (status == "filled").then(|| dec("10")),
            limit_price: None,
            status: status.to_string(),
            extended_hours: false,
            submitted_at: at,
            updated_at: at,
            filled_at: (status == "filled").then_some(at),
            canceled_at: None,
            first_fill: None,
            hold: 0,
        };
        self.lock().engine.insert_order(o)
    }

    /// The next order fills `fraction` first; the rest fills on the next price.
    pub fn script_partial(&self, fraction: &str) {
        self.lock().engine.partial_script.push_back(dec(fraction));
    }

    /// Like Alpaca paper: about `p` of orders fill partially first (seeded).
    pub fn set_random_partials(&self, p: f64, seed: u64) {
        let mut s = self.lock();
        s.engine.partial_probability = p;
        s.engine.rng = quantdeck::rng::Rng::new(seed);
    }

    /// The next `fill` event never reaches the stream (the fill still happens).
    pub fn suppress_next_fill(&self) {
        self.lock().engine.suppress_fills += 1;
    }

    pub fn set_auto_fill(&self, on: bool) {
        self.lock().engine.auto_fill = on;
    }

    /// Fills every open order that can fill at the current prices.
    pub fn fill_open_orders(&self) {
        self.lock().engine.match_orders(None);
    }

    /// Order submission times from a scripted clock: `start`, then every `step`.
    pub fn set_order_clock(&self, start: DateTime<Utc>, step: chrono::Duration) {
        self.lock().engine.order_clock = Some((start, step));
    }

    /// `DELETE /v2/positions` answers this symbol's row with 403 "insufficient qty available".
    pub fn refuse_close(&self, symbol: &str) {
        let key = quantdeck::broker::types::normalize_symbol(symbol);
        self.lock().close_refused.insert(key);
    }

    pub fn set_data_only_keys(&self, on: bool) {
        self.lock().data_only_keys = on;
    }

    // --- websockets -----------------------------------------------------------------------

    pub fn drop_trade_streams(&self) {
        let _ = self.lock().engine.events.send(WsCtl::DropTrade);
    }

    pub fn drop_data_streams(&self) {
        let _ = self.lock().engine.events.send(WsCtl::DropData);
    }

    pub fn script_ws(&self, f: impl FnOnce(&mut WsScript)) {
        f(&mut self.lock().ws);
    }

    // --- inspection -----------------------------------------------------------------------

    pub fn orders(&self) -> Vec<FakeOrder> {
        self.lock().engine.orders.clone()
    }

    pub fn order_by_client_id(&self, cid: &str) -> Option<FakeOrder> {
        self.orders().into_iter().find(|o| o.client_order_id == cid)
    }

    /// How many times `POST /v2/orders` carried this client order id.
    pub fn posts_for(&self, cid: &str) -> usize {
        self.lock().posts.get(cid).copied().unwrap_or(0)
    }

    pub fn posts(&self) -> BTreeMap<String, usize> {
        self.lock().posts.clone()
    }

    pub fn positions(&self) -> Vec<FakePosition> {
        self.lock().engine.positions.values().cloned().collect()
    }

    pub fn cash(&self) -> rust_decimal::Decimal {
        self.lock().engine.cash
    }

    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }
}
