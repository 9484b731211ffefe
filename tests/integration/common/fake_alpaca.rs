//! An in-process fake of Alpaca's market-data and calendar endpoints on 127.0.0.1, speaking plain
//! HTTP/1.1. It pages multi-symbol responses exactly as Alpaca does (ordered by symbol, then time;
//! a symbol may continue on the next page), checks the key headers, rate-limits, and fails on
//! script: 429 with reset headers, 5xx, truncated or malformed bodies, slow answers, 401/403/422.
#![allow(dead_code)]

use chrono::{DateTime, SecondsFormat, Utc};
use quantdeck::market::Bar;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub at: Instant,
    pub status: u16,
}

pub struct State {
    pub bars: BTreeMap<String, Vec<Bar>>,
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
}

pub struct FakeAlpaca {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    _rt: tokio::runtime::Runtime,
}

pub const KEY_ID: &str = "PKFAKE123";
pub const SECRET: &str = "fake-secret-never-logged-42";

impl FakeAlpaca {
    pub fn start(bars: BTreeMap<String, Vec<Bar>>, page_cap: usize) -> FakeAlpaca {
        let state = Arc::new(Mutex::new(State {
            bars,
            page_cap,
            faults: VecDeque::new(),
            fail_after_pages: None,
            pages_served: 0,
            unknown_is_error: true,
            sip_forbidden: true,
            key_id: KEY_ID.into(),
            secret: SECRET.into(),
            requests: Vec::new(),
        }));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let st = state.clone();
        rt.spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, st).await;
                });
            }
        });
        FakeAlpaca {
            addr,
            state,
            _rt: rt,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn push_fault(&self, f: Fault) {
        self.state.lock().unwrap().faults.push_back(f);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn bar_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/bars"))
            .collect()
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn serve(mut sock: tokio::net::TcpStream, st: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut lines = head.lines();
    let target = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let headers: BTreeMap<String, String> = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    let (path, qs) = target.split_once('?').unwrap_or((&target, ""));
    let query: BTreeMap<String, String> = qs
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('=').map(|(k, v)| (decode(k), decode(v))))
        .collect();

    let (status, body, fault) = respond(&st, path, &query, &headers);
    st.lock().unwrap().requests.push(Request {
        path: path.to_string(),
        query,
        at: Instant::now(),
        status,
    });
    let reset = Utc::now().timestamp() + 60;
    let mut extra = String::new();
    let mut body = body;
    let mut promised = body.len();
    match &fault {
        Some(Fault::TooMany { reset_in_s }) => {
            extra = format!(
                "X-Ratelimit-Remaining: 0\r\nX-Ratelimit-Reset: {}\r\n",
                Utc::now().timestamp() + reset_in_s
            )
        }
        Some(Fault::TruncatedBody) => {
            body.truncate(body.len() / 2);
        }
        Some(Fault::MalformedJson) => {
            body.truncate(body.len() / 2);
            promised = body.len();
        }
        Some(Fault::Slow(d)) => tokio::time::sleep(*d).await,
        _ => {}
    }
    if !matches!(fault, Some(Fault::TooMany { .. })) {
        extra = format!("X-Ratelimit-Limit: 200\r\nX-Ratelimit-Remaining: 150\r\nX-Ratelimit-Reset: {reset}\r\n");
    }
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let resp = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {promised}\r\n{extra}Connection: close\r\n\r\n");
    sock.write_all(resp.as_bytes()).await?;
    sock.write_all(&body).await?;
    sock.flush().await?;
    Ok(())
}

fn err(status: u16, msg: &str) -> (u16, Vec<u8>) {
    (
        status,
        serde_json::json!({"code": status as u32 * 100_000, "message": msg})
            .to_string()
            .into_bytes(),
    )
}

fn respond(
    st: &Arc<Mutex<State>>,
    path: &str,
    q: &BTreeMap<String, String>,
    h: &BTreeMap<String, String>,
) -> (u16, Vec<u8>, Option<Fault>) {
    let mut s = st.lock().unwrap();
    if h.get("apca-api-key-id") != Some(&s.key_id)
        || h.get("apca-api-secret-key") != Some(&s.secret)
    {
        let (c, b) = err(401, "request is not authorized");
        return (c, b, None);
    }
    if let Some(f) = s.faults.pop_front() {
        match &f {
            Fault::TooMany { .. } => {
                let (c, b) = err(429, "too many requests");
                return (c, b, Some(f));
            }
            Fault::Status(code, msg) => {
                let (c, b) = err(*code, msg);
                return (c, b, Some(f));
            }
            _ => {
                let (c, b) = page(&mut s, path, q);
                return (c, b, Some(f));
            }
        }
    }
    if path == "/v2/calendar" {
        return (200, b"[]".to_vec(), None);
    }
    if s.fail_after_pages.is_some_and(|n| s.pages_served >= n) {
        let (c, b) = err(500, "internal server error");
        return (c, b, None);
    }
    let (c, b) = page(&mut s, path, q);
    (c, b, None)
}

fn page(s: &mut State, path: &str, q: &BTreeMap<String, String>) -> (u16, Vec<u8>) {
    if path != "/v2/stocks/bars" && path != "/v1beta3/crypto/us/bars" {
        return err(404, "not found");
    }
    if q.get("feed").is_some_and(|f| f == "sip") && s.sip_forbidden {
        return err(403, "subscription does not permit querying recent SIP data");
    }
    let Some(tf) = q.get("timeframe") else {
        return err(422, "invalid timeframe");
    };
    if tf != "15Min" {
        return err(422, &format!("invalid timeframe: {tf}"));
    }
    let parse = |k: &str| {
        q.get(k)
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(start), Some(end)) = (parse("start"), parse("end")) else {
        return err(422, "invalid start or end");
    };
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(1000);
    let symbols: Vec<String> = q
        .get("symbols")
        .map(|s| s.split(',').map(String::from).collect())
        .unwrap_or_default();
    let mut all: Vec<(String, Bar)> = Vec::new();
    let mut sorted = symbols.clone();
    sorted.sort();
    for sym in &sorted {
        match s.bars.get(sym) {
            Some(bars) => all.extend(
                bars.iter()
                    .filter(|b| b.ts >= start && b.ts <= end)
                    .map(|b| (sym.clone(), *b)),
            ),
            None if s.unknown_is_error => return err(422, &format!("invalid symbol: {sym}")),
            None => {}
        }
    }
    let offset: usize = q
        .get("page_token")
        .and_then(|t| t.strip_prefix("p"))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let size = limit.min(s.page_cap).max(1);
    let end_i = (offset + size).min(all.len());
    let mut map: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for (sym, b) in &all[offset.min(all.len())..end_i] {
        map.entry(sym.clone()).or_default().push(serde_json::json!({"t": rfc(b.ts), "o": b.open, "h": b.high, "l": b.low, "c": b.close, "v": b.volume, "n": 1, "vw": b.close}));
    }
    let next = if end_i < all.len() {
        serde_json::Value::String(format!("p{end_i}"))
    } else {
        serde_json::Value::Null
    };
    s.pages_served += 1;
    (
        200,
        serde_json::json!({"bars": map, "next_page_token": next})
            .to_string()
            .into_bytes(),
    )
}
