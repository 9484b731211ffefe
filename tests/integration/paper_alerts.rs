//! What a trader learns away from the screen, and from `paper status`: alerts to a webhook
//! receiver on 127.0.0.1 (daemon start and stop, fills, pause, the kill switch), `quantdeck
//! watch` telling of a daemon that died, a webhook that never answers never holding up trading,
//! and `paper status --json` after a flatten made while the daemon was stopped.

use crate::common::desk::{broker_qty, Desk};
use crate::common::text;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A webhook receiver: every JSON body POSTed to it, answered 200 (or never, when `silent`).
struct Hook {
    url: String,
    got: Arc<Mutex<Vec<Value>>>,
}

impl Hook {
    fn start(silent: bool) -> Hook {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://{}/hook/TOKEN-never-on-disk",
            l.local_addr().expect("addr")
        );
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for sock in l.incoming().flatten() {
                if silent {
                    held.push(sock);
                    continue;
                }
                let mut r = BufReader::new(sock);
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                if r.read_exact(&mut body).is_ok() {
                    if let Ok(v) = serde_json::from_slice(&body) {
                        seen.lock().unwrap().push(v);
                    }
                }
                let mut sock = r.into_inner();
                let _ = sock.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Hook { url, got }
    }

    fn kinds(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter_map(|v| v["kind"].as_str().map(String::from))
            .collect()
    }

    fn wait_for(&self, kind: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = self.got.lock().unwrap().iter().find(|v| v["kind"] == kind) {
                return v.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} alert: {:?}",
                self.kinds()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn notify(hook: &Hook) -> String {
    format!("[notify]\nurl = \"{}\"\n", hook.url)
}

#[test]
fn alerts_reach_a_webhook_and_watch_tells_of_a_daemon_that_died() {
    let hook = Hook::start(false);
    let mut d = Desk::with("", "", &notify(&hook));
    let mut child = d.spawn();
    d.wait_ready(1);
    let started = hook.wait_for("started");
    assert_eq!(started["source"], "quantdeck");
    d.push_minutes(15, Duration::from_millis(2));
    d.wait_decided();
    let fill = hook.wait_for("fill");
    assert!(
        fill["text"].as_str().unwrap_or("").contains("SYNX/USD"),
        "{fill}"
    );
    assert!(d.cli(&["paper", "pause"]).status.success());
    hook.wait_for("pause");
    // The daemon dies: only a watcher can tell.
    child.kill();
    let o = d.cli(&["watch", "--once"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("DAEMON DOWN"), "{}", text(&o));
    let down = hook.wait_for("daemon_down");
    assert_eq!(down["urgent"], true);
    // A one-shot run from cron alerts once per change, not every minute.
    let o = d.cli(&["watch", "--once"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        hook.kinds().iter().filter(|k| *k == "daemon_down").count(),
        1
    );
    // Back up: said so.
    let child = d.spawn();
    d.wait_ready(2);
    let o = d.cli(&["watch", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    hook.wait_for("daemon_up");
    let o = d.cli(&["paper", "flatten"]);
    assert!(o.status.success(), "{}", text(&o));
    hook.wait_for("kill_switch");
    d.stop(child);
    let stopped = hook.wait_for("stopped");
    assert!(
        stopped["text"]
            .as_str()
            .unwrap_or("")
            .contains("stopped by command"),
        "{stopped}"
    );
    // The webhook (it often carries a token) is in no file quantdeck wrote.
    for dir in ["runs", "logs", "locks"] {
        for f in walk(&d.home.path().join(dir)) {
            let t = String::from_utf8_lossy(&std::fs::read(&f).unwrap_or_default()).to_string();
            assert!(
                !t.contains("TOKEN-never-on-disk"),
                "the webhook in {}",
                f.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
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

/// A receiver that accepts and never answers: alerts queue and are dropped, trading goes on
/// at full speed.
#[test]
fn a_webhook_that_never_answers_never_holds_up_trading() {
    let hook = Hook::start(true);
    let mut d = Desk::with("", "", &notify(&hook));
    let child = d.spawn();
    d.wait_ready(1);
    for _ in 0..4 {
        let before = d.fake.orders().len();
        d.push_minutes(15, Duration::from_millis(2));
        let t = Instant::now();
        d.wait_decided();
        d.until(10, "an order", || d.fake.orders().len() > before);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
    let t = Instant::now();
    d.stop(child);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "stopping took {:?}",
        t.elapsed()
    );
}

/// `paper status --json`, after a flatten made while the daemon was stopped: the broker's own
/// account figures (not placeholders) and the closing order as it ended (filled, not "new").
#[test]
fn status_json_after_a_flatten_with_the_daemon_stopped_shows_the_brokers_account() {
    let mut d = Desk::new("");
    let child = d.spawn();
    d.wait_ready(1);
    d.push_minutes(15, Duration::from_millis(2));
    d.wait_decided();
    d.wait_for("the model entered", |s| s.rows[0].position.qty > 0.0);
    d.wait_settled();
    d.stop(child);
    let o = d.cli(&["paper", "flatten"]);
    assert!(
        o.status.success() && text(&o).contains("flat"),
        "{}",
        text(&o)
    );
    assert_eq!(broker_qty(&d.fake), 0.0);
    let o = d.cli(&["paper", "status", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["alive"], false);
    let s = &v["snapshot"];
    let cash: f64 = d.fake.cash().to_string().parse().unwrap();
    assert!(
        (s["account"]["cash"].as_f64().unwrap() - cash).abs() < 1e-6,
        "{s}"
    );
    assert!(
        (s["account"]["equity"].as_f64().unwrap() - cash).abs() < 1e-6,
        "{s}"
    );
    assert!(
        s["modes"]["flatten"]
            .as_str()
            .unwrap_or("")
            .starts_with("done"),
        "{s}"
    );
    assert_eq!(s["open_orders"].as_array().map(Vec::len), Some(0), "{s}");
    assert_eq!(s["rows"][0]["position"]["qty"].as_f64(), Some(0.0), "{s}");
    let closing: Vec<String> = d
        .events()
        .iter()
        .filter_map(|e| match &e.event {
            quantdeck::jobs::Event::Order(o) if o.side == "sell" => Some(o.status.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        closing.last().map(String::as_str),
        Some("filled"),
        "{closing:?}"
    );
    // The human form says the daemon is not running.
    let o = d.cli(&["paper", "status"]);
    assert!(text(&o).contains("not running"), "{}", text(&o));
}
