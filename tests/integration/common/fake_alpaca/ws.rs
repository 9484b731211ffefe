//! The fake's websockets. `/stream`: trade updates (auth → `authorization`, listen →
//! `listening`, then every engine event; binary frames unless scripted otherwise; scriptable
//! refusal of the auth, a missing listen ack, abrupt drops). `/v2/{feed}` and
//! `/v1beta3/crypto/us`: market data (greeting, auth, 406 on a second connection of the same
//! key to the same family, subscribe ack, `b` and `u` bars to subscribers, abrupt drops).

use super::{State, WsCtl};
use chrono::SecondsFormat;
use futures_util::{SinkExt, StreamExt};
use quantdeck::market::Bar;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

const HANDSHAKE: Duration = Duration::from_secs(10);

fn lock(st: &Arc<Mutex<State>>) -> MutexGuard<'_, State> {
    st.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn bar_msg(symbol: &str, b: &Bar, revision: bool) -> WsCtl {
    let json = json!({
        "T": if revision { "u" } else { "b" }, "S": symbol,
        "o": b.open, "h": b.high, "l": b.low, "c": b.close, "v": b.volume,
        "t": b.ts.to_rfc3339_opts(SecondsFormat::Secs, true), "n": 12, "vw": b.close,
    });
    WsCtl::Bar {
        symbol: symbol.to_string(),
        revision,
        json: json.to_string(),
    }
}

// The handshake callback's `Result` type is tungstenite's, large or not.
#[allow(clippy::result_large_err)]
pub async fn serve(sock: TcpStream, st: Arc<Mutex<State>>) {
    let mut path = String::new();
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        path = req.uri().path().to_string();
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(sock, callback).await else {
        return;
    };
    match path.as_str() {
        "/stream" => trade_session(ws, st).await,
        "/v2/iex" | "/v2/sip" | "/v2/delayed_sip" | "/v2/test" => {
            data_session(ws, st, "stocks").await
        }
        "/v1beta3/crypto/us" => data_session(ws, st, "crypto").await,
        _ => {}
    }
}

/// The next text or binary message as JSON; `None` when the peer is gone (or, with a
/// handshake limit, silent past it).
async fn recv_json(ws: &mut Ws, limit: Option<Duration>, st: &Arc<Mutex<State>>) -> Option<Value> {
    loop {
        let msg = match limit {
            Some(d) => tokio::time::timeout(d, ws.next()).await.ok()??,
            None => ws.next().await?,
        }
        .ok()?;
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).ok(),
            Message::Binary(b) => return serde_json::from_slice(&b).ok(),
            Message::Close(_) => return None,
            Message::Pong(_) => lock(st).counters.pongs += 1,
            _ => {}
        }
    }
}

async fn send(ws: &mut Ws, text: &str, binary: bool) -> bool {
    let msg = if binary {
        Message::Binary(text.as_bytes().to_vec().into())
    } else {
        Message::text(text)
    };
    ws.send(msg).await.is_ok()
}

fn keys_match(st: &Arc<Mutex<State>>, key: Option<&str>, secret: Option<&str>) -> bool {
    let s = lock(st);
    key == Some(s.key_id.as_str()) && secret == Some(s.secret.as_str())
}

async fn trade_session(mut ws: Ws, st: Arc<Mutex<State>>) {
    let (binary, reject, ack, ping) = {
        let mut s = lock(&st);
        s.counters.trade_connections += 1;
        let w = &s.ws;
        (
            !w.trade_text_frames,
            w.reject_stream_auth,
            w.ack_listen,
            w.ping_after_listen,
        )
    };
    let Some(auth) = recv_json(&mut ws, Some(HANDSHAKE), &st).await else {
        return;
    };
    // Today's form {"action":"auth","key","secret"}; the older {"action":"authenticate","data":{…}} too.
    let field = |a: &str, b: &str| {
        auth.get(a)
            .or_else(|| auth.get("data").and_then(|d| d.get(b)))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let ok = !reject
        && keys_match(
            &st,
            field("key", "key_id").as_deref(),
            field("secret", "secret_key").as_deref(),
        );
    let reply = if ok {
        json!({"stream": "authorization", "data": {"action": "authenticate", "status": "authorized"}})
    } else {
        json!({"stream": "authorization", "data": {"action": "authenticate", "status": "unauthorized",
               "message": "access key verification failed"}})
    };
    if !send(&mut ws, &reply.to_string(), binary).await || !ok {
        let _ = ws.close(None).await;
        return;
    }
    // Subscribe before acknowledging, so no event falls between the ack and the first read.
    let mut events = lock(&st).engine.events.subscribe();
    lock(&st).counters.trade_active += 1;
    let _active = ActiveGuard(st.clone(), |s: &mut State| s.counters.trade_active -= 1);
    let mut listening = false;
    loop {
        tokio::select! {
            msg = recv_json(&mut ws, None, &st) => {
                let Some(msg) = msg else { return };
                if msg.get("action").and_then(Value::as_str) == Some("listen") && ack {
                    let wanted: Vec<String> = msg["data"]["streams"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                        .unwrap_or_default();
                    let streams: Vec<&String> = wanted.iter().filter(|s| *s == "trade_updates").collect();
                    listening = !streams.is_empty();
                    let ack = json!({"stream": "listening", "data": {"streams": streams}});
                    if !send(&mut ws, &ack.to_string(), binary).await {
                        return;
                    }
                    if ping && ws.send(Message::Ping(b"are you there".to_vec().into())).await.is_err() {
                        return;
                    }
                }
            }
            ev = events.recv() => match ev {
                Ok(WsCtl::Trade(text)) if listening && !send(&mut ws, &text, binary).await => return,
                // Abrupt: the socket is dropped without a close frame.
                Ok(WsCtl::DropTrade) => return,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                _ => {}
            }
        }
    }
}

/// Runs a closure on the state when dropped (connection bookkeeping on every exit path).
struct ActiveGuard<F: FnMut(&mut State)>(Arc<Mutex<State>>, F);

impl<F: FnMut(&mut State)> Drop for ActiveGuard<F> {
    fn drop(&mut self) {
        let mut s = lock(&self.0);
        (self.1)(&mut s);
    }
}

async fn data_session(mut ws: Ws, st: Arc<Mutex<State>>, family: &'static str) {
    *lock(&st)
        .counters
        .data_connections
        .entry(family.to_string())
        .or_default() += 1;
    let say = |v: Value| Message::text(Value::Array(vec![v]).to_string());
    if ws
        .send(say(json!({"T": "success", "msg": "connected"})))
        .await
        .is_err()
    {
        return;
    }
    let Some(auth) = recv_json(&mut ws, Some(HANDSHAKE), &st).await else {
        return;
    };
    let key = auth
        .get("key")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let secret = auth.get("secret").and_then(Value::as_str);
    if auth.get("action").and_then(Value::as_str) != Some("auth")
        || !keys_match(&st, Some(&key), secret)
    {
        let _ = ws
            .send(say(
                json!({"T": "error", "code": 402, "msg": "auth failed"}),
            ))
            .await;
        let _ = ws.close(None).await;
        return;
    }
    let slot = (key, family.to_string());
    let second = {
        let mut s = lock(&st);
        let active = s.counters.data_active.entry(slot.clone()).or_default();
        *active += 1;
        *active > 1
    };
    if second {
        if let Some(n) = lock(&st).counters.data_active.get_mut(&slot) {
            *n -= 1;
        }
        let _ = ws
            .send(say(
                json!({"T": "error", "code": 406, "msg": "connection limit exceeded"}),
            ))
            .await;
        let _ = ws.close(None).await;
        return;
    }
    let release = slot.clone();
    let _active = ActiveGuard(st.clone(), move |s: &mut State| {
        if let Some(n) = s.counters.data_active.get_mut(&release) {
            *n = n.saturating_sub(1);
        }
    });
    if ws
        .send(say(json!({"T": "success", "msg": "authenticated"})))
        .await
        .is_err()
    {
        return;
    }
    let mut events = lock(&st).engine.events.subscribe();
    let (mut bars, mut updated) = (BTreeSet::<String>::new(), BTreeSet::<String>::new());
    loop {
        tokio::select! {
            msg = recv_json(&mut ws, None, &st) => {
                let Some(msg) = msg else { return };
                let list = |k: &str| -> Vec<String> {
                    msg.get(k).and_then(Value::as_array).map(|a| {
                        a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()
                    }).unwrap_or_default()
                };
                if msg.get("action").and_then(Value::as_str) == Some("subscribe") {
                    let (b, u) = (list("bars"), list("updatedBars"));
                    lock(&st).counters.subscriptions.push((family.to_string(), b.clone(), u.clone()));
                    bars.extend(b);
                    updated.extend(u);
                    let mut ack = json!({"T": "subscription", "trades": [], "quotes": [],
                        "bars": bars, "updatedBars": updated, "dailyBars": []});
                    if family == "stocks" {
                        for k in ["statuses", "lulds", "corrections", "cancelErrors"] {
                            ack[k] = json!([]);
                        }
                    } else {
                        ack["orderbooks"] = json!([]);
                    }
                    if ws.send(say(ack)).await.is_err() {
                        return;
                    }
                }
            }
            ev = events.recv() => match ev {
                Ok(WsCtl::Bar { symbol, revision, json }) => {
                    let wanted = if revision { &updated } else { &bars };
                    if wanted.contains(&symbol) && ws.send(Message::text(format!("[{json}]"))).await.is_err() {
                        return;
                    }
                }
                Ok(WsCtl::DropData) => return,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                _ => {}
            }
        }
    }
}
