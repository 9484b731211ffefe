//! The paper-trading daemon, as a user runs it (`quantdeck paper RUN --broker alpaca`, a real
//! process), against the in-process fake Alpaca on 127.0.0.1 (REST + websockets, real sockets):
//! an accelerated 1-minute bar feed, a model crafted to trade on every bar, and the faults that
//! matter for money — kill -9 at random points, lost fills, refusals, uncertain submits, dropped
//! streams — checked against the broker's own records.

use crate::common::alternating::alternate;
use crate::common::fake_alpaca::{FakeAlpaca, OrderFault, KEY_ID, SECRET};
use crate::common::{qd, qd_env, text};
use chrono::{DateTime, Duration, TimeZone, Utc};
use quantdeck::engine::checkpoint;
use quantdeck::jobs::{Event, EventRecord};
use quantdeck::live::view::PaperSnapshot;
use quantdeck::market::Bar;
use quantdeck::rng::Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const SYMBOL: &str = "SYNX/USD";

/// A daemon process that never outlives its test: killed when dropped (a failing test included).
struct Running(Child);

impl Running {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A quantdeck home with a gated model for SYNX/USD that alternates BUY_75 / CLOSE on every bar,
/// and a fake Alpaca to trade it on.
struct Desk {
    home: tempfile::TempDir,
    cfg: String,
    fake: FakeAlpaca,
    train: String,
    next: DateTime<Utc>,
    price: f64,
    rng: Rng,
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

impl Desk {
    fn new(extra: &str) -> Desk {
        let home = tempfile::tempdir().unwrap();
        let end = Utc::now() - Duration::days(3);
        let start = end - Duration::days(40);
        let cfg = home.path().join("desk.toml");
        std::fs::write(
            &cfg,
            format!(
                "[universe]\nequities = []\ncrypto = [\"{SYMBOL}\"]\n\
                 [data]\nstart = \"{}\"\nend = \"{}\"\n[features]\nwindow = 8\n\
                 [ppo]\ndevice = \"cpu\"\nn_envs = 8\nn_steps = 32\nminibatch = 64\nepochs = 1\nvalidation_interval = 1\nhidden_dims = [16]\n\
                 [gating]\nmin_trades = 1\nmin_days = 2\napproved = {{ fitness = -100.0, profit_factor = 0.0, consistency = 0.0, max_drawdown = 1.0 }}\n\
                 review = {{ fitness = -100.0, profit_factor = 0.0, consistency = 0.0, max_drawdown = 1.0 }}\n\
                 [backtest]\nstop_loss = 1.0\ntake_profit = 10.0\n\
                 [live]\nbroker = \"alpaca\"\nconfidence_threshold = 0.0\ncooldown_s = 0\norder_timeout_s = 2\npoll_interval_s = 1\ndaily_loss_limit = 1.0\n{extra}",
                day(start),
                day(end)
            ),
        )
        .unwrap();
        let cfg = cfg.display().to_string();
        let o = qd(home.path(), &["--config", &cfg, "fetch"]);
        assert!(o.status.success(), "{}", text(&o));
        let o = qd(
            home.path(),
            &["--config", &cfg, "train", SYMBOL, "--timesteps", "512"],
        );
        assert!(o.status.success(), "{}", text(&o));
        let o = qd(home.path(), &["--config", &cfg, "gate"]);
        assert!(
            o.status.success() && text(&o).contains("APPROVED"),
            "{}",
            text(&o)
        );
        let train = std::fs::read_dir(home.path().join("runs"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .find(|n| n.starts_with("train-"))
            .unwrap();
        let run = home.path().join("runs").join(&train);
        alternate(&run.join("model.safetensors"));
        alternate(&run.join("best.safetensors"));
        let (_, meta) =
            checkpoint::load_model(&run.join("model.safetensors"), &candle_core::Device::Cpu)
                .unwrap();
        let fake = FakeAlpaca::trading();
        fake.set_cash("100000");
        Desk {
            home,
            cfg,
            fake,
            train,
            next: meta.data_last + Duration::minutes(15),
            price: 100.0,
            rng: Rng::new(11),
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("APCA_API_KEY_ID", KEY_ID.into()),
            ("APCA_API_SECRET_KEY", SECRET.into()),
            ("APCA_API_BASE_URL", self.fake.url()),
            ("APCA_API_STREAM_URL", self.fake.trade_stream_url()),
            ("APCA_API_DATA_URL", self.fake.url()),
            ("APCA_API_DATA_STREAM_URL", self.fake.ws_url()),
        ]
    }

    fn spawn(&self) -> Running {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.path().join("daemon.out"))
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_quantdeck"))
            .arg("--home")
            .arg(self.home.path())
            .args(["--config", &self.cfg, "paper", &self.train])
            .env_remove("QUANTDECK_HOME")
            .env_remove("ALPACA_KEYS_FILE")
            .envs(self.env())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .map(Running)
            .unwrap()
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut a = vec!["--config", self.cfg.as_str()];
        a.extend_from_slice(args);
        qd_env(self.home.path(), &a, &env)
    }

    fn paper_dir(&self) -> Option<PathBuf> {
        std::fs::read_dir(self.home.path().join("runs"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("paper-")
            })
    }

    fn events(&self) -> Vec<EventRecord> {
        let Some(dir) = self.paper_dir() else {
            return Vec::new();
        };
        std::fs::read_to_string(dir.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn logs(&self, needle: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(&e.event, Event::Log { message, .. } if message.contains(needle)))
            .count()
    }

    fn snapshot(&self) -> Option<PaperSnapshot> {
        self.events().into_iter().rev().find_map(|e| match e.event {
            Event::Paper(s) => Some(*s),
            _ => None,
        })
    }

    /// Waits until the daemon has reconciled `n` times in all and its trade stream is up.
    fn wait_ready(&self, n: usize) {
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        while !(self.logs("reconciled with the broker") >= n
            && self.fake.counters().trade_active >= 1)
        {
            assert!(
                Instant::now() < deadline,
                "daemon not ready: {}",
                std::fs::read_to_string(self.home.path().join("daemon.out")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Pushes `n` 1-minute bars (a random walk) `gap` apart.
    fn push_minutes(&mut self, n: usize, gap: std::time::Duration) {
        for _ in 0..n {
            let open = self.price;
            self.price *= 1.0 + 0.002 * self.rng.normal();
            let bar = Bar {
                ts: self.next,
                open,
                high: open.max(self.price) * 1.001,
                low: open.min(self.price) * 0.999,
                close: self.price,
                volume: 5.0,
            };
            self.fake.push_bar(SYMBOL, bar);
            self.next += Duration::minutes(1);
            std::thread::sleep(gap);
        }
    }

    /// The start of the newest model bar the pushed minutes have closed.
    fn last_closed_bar(&self) -> DateTime<Utc> {
        let minutes = (self.next - Utc.timestamp_opt(0, 0).unwrap()).num_minutes();
        Utc.timestamp_opt((minutes / 15 * 15 - 15) * 60, 0).unwrap()
    }

    /// Waits until the daemon has decided the newest closed bar.
    fn wait_decided(&self) {
        let want = self.last_closed_bar();
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let got = self
                .snapshot()
                .and_then(|s| s.rows.first().and_then(|r| r.last_bar));
            if got.is_some_and(|t| t >= want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bar {want} never decided (last {got:?})"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Waits until the latest snapshot satisfies `ok`.
    fn wait_for(&self, what: &str, ok: impl Fn(&PaperSnapshot) -> bool) -> PaperSnapshot {
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(s) = self.snapshot().filter(|s| ok(s)) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "never: {what}: {:?}",
                self.snapshot().map(|s| s.rows)
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Waits until the model's position equals the broker's (fills settled).
    fn wait_settled(&self) -> PaperSnapshot {
        self.wait_for("the model's position equals the broker's", |s| {
            (s.rows[0].position.qty - broker_qty(&self.fake)).abs() < 1e-9
        })
    }

    fn stop(&self, mut child: Running) {
        let o = self.cli(&["paper", "stop"]);
        assert!(o.status.success(), "{}", text(&o));
        let status = child.0.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }
}

/// The bar and intent an order id names: `qd-<session>-<SYM>-<bar>-<e|x><attempt>`.
fn intent_of(id: &str) -> (String, String) {
    let parts: Vec<&str> = id.rsplitn(3, '-').collect();
    (parts[1].to_string(), parts[0][..1].to_string())
}

fn broker_qty(fake: &FakeAlpaca) -> f64 {
    fake.positions()
        .iter()
        .filter(|p| p.symbol == "SYNXUSD")
        .map(|p| p.qty.to_string().parse::<f64>().unwrap())
        .sum()
}

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
    assert!(
        d.events().iter().any(|e| matches!(e.event, Event::Fill(_))),
        "fills streamed"
    );
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

/// No secret in any file the session wrote (events, manifest, journal, state, logs).
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
