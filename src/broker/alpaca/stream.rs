//! The trade-updates stream (`wss://paper-api.alpaca.markets/stream`). Handshake: send
//! `{"action":"auth","key":…,"secret":…}`, require the reply's `data.status` to be exactly
//! `"authorized"` (`"unauthorized"` contains "authorized" too — a substring check lets bad keys
//! through), send `listen` for `trade_updates`, and wait for the `listening` ack that names it.
//! Paper sends binary frames; text frames are accepted too.
//!
//! The stream is a hint, not the ledger: it does not replay what was missed and fills have been
//! seen never to arrive. So every [`TradeStreamMsg::Connected`] (the first, and each after a
//! reconnect) means: resync over REST before any new order.

use super::error::BrokerError;
use super::TradingSettings;
use crate::broker::types::TradeUpdate;
use crate::data::alpaca::ws::{sleep_or_stop, Backoff, Conn, Next, KEEPALIVE};
use crate::data::alpaca::Credentials;
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the stream task reports.
#[derive(Debug, Clone, PartialEq)]
pub enum TradeStreamMsg {
    /// Authorized and listening to `trade_updates` (again, after a reconnect).
    Connected,
    /// Boxed: an order is large, and most messages are not updates.
    Update(Box<TradeUpdate>),
    /// Not connected now (lost, or an attempt failed); the task reconnects by itself.
    Disconnected { reason: String },
    /// The task stopped for good (keys refused, live host refused, stream not offered).
    Fatal(BrokerError),
}

/// The running stream: messages on [`TradeStream::recv`]; dropping it closes the socket.
pub struct TradeStream {
    rx: mpsc::Receiver<TradeStreamMsg>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TradeStream {
    pub async fn recv(&mut self) -> Option<TradeStreamMsg> {
        self.rx.recv().await
    }

    pub fn receiver(&mut self) -> &mut mpsc::Receiver<TradeStreamMsg> {
        &mut self.rx
    }

    /// Closes the connection and waits for the task to end.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for TradeStream {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Starts the trade-updates stream; reconnects with backoff and jitter until dropped. Must be
/// called inside a tokio runtime. Alpaca allows one such connection per account.
pub fn spawn_trade_updates(settings: TradingSettings, creds: Credentials) -> TradeStream {
    let (tx, rx) = mpsc::channel(4096);
    let (stop_tx, stop_rx) = oneshot::channel();
    let task = tokio::spawn(run(settings, creds, tx, stop_rx));
    TradeStream {
        rx,
        stop: Some(stop_tx),
        task: Some(task),
    }
}

enum End {
    Stop,
    Fatal(BrokerError),
    Lost(String),
}

async fn run(
    settings: TradingSettings,
    creds: Credentials,
    tx: mpsc::Sender<TradeStreamMsg>,
    mut stop: oneshot::Receiver<()>,
) {
    if let Err(e) = settings.check() {
        let _ = tx.send(TradeStreamMsg::Fatal(e)).await;
        return;
    }
    let mut backoff = Backoff::new(settings.retry_base, MAX_BACKOFF);
    loop {
        let mut connected = false;
        match session(&settings, &creds, &tx, &mut stop, &mut connected).await {
            End::Stop => return,
            End::Fatal(e) => {
                tracing::error!("trade-updates stream stopped: {e}");
                let _ = tx.send(TradeStreamMsg::Fatal(e)).await;
                return;
            }
            End::Lost(reason) => {
                tracing::warn!("trade-updates stream: {reason}");
                if connected {
                    // A completed handshake is a success: the next drop starts over at the
                    // base delay, so a link cut every few seconds is back within a second.
                    backoff.reset();
                }
                if tx
                    .send(TradeStreamMsg::Disconnected { reason })
                    .await
                    .is_err()
                {
                    return;
                }
                if sleep_or_stop(backoff.next_delay(), &mut stop).await {
                    return;
                }
            }
        }
    }
}

/// `{"stream": "...", "data": {...}}`.
#[derive(Debug, Deserialize)]
struct Envelope {
    stream: String,
    #[serde(default)]
    data: serde_json::Value,
}

fn envelope(frame: &[u8]) -> Result<Envelope, String> {
    serde_json::from_slice(frame).map_err(|e| format!("not a stream message ({e})"))
}

/// Reads until a message on `stream` arrives (others are skipped) before `deadline`.
async fn expect(
    conn: &mut Conn,
    stop: &mut oneshot::Receiver<()>,
    deadline: Instant,
    stream: &str,
) -> Result<serde_json::Value, End> {
    loop {
        match conn.next(stop, Some(deadline)).await {
            Next::Stop => return Err(End::Stop),
            Next::Lost(r) => return Err(End::Lost(format!("{r} (waiting for `{stream}`)"))),
            Next::TimedOut => {
                return Err(End::Lost(format!(
                    "no `{stream}` reply in time; will reconnect"
                )))
            }
            Next::Data(frame) => match envelope(&frame) {
                Ok(e) if e.stream == stream => return Ok(e.data),
                Ok(e) => tracing::debug!("trade-updates handshake: skipping `{}`", e.stream),
                Err(e) => tracing::warn!("trade-updates handshake: {e}"),
            },
        }
    }
}

async fn session(
    settings: &TradingSettings,
    creds: &Credentials,
    tx: &mpsc::Sender<TradeStreamMsg>,
    stop: &mut oneshot::Receiver<()>,
    connected: &mut bool,
) -> End {
    let host = crate::data::alpaca::host_of(&settings.stream_url);
    let mut conn = match Conn::open(&settings.stream_url, settings.timeout, KEEPALIVE).await {
        Ok(c) => c,
        Err(e) => return End::Lost(format!("{host}: {e}")),
    };
    if let Err(end) = handshake(&mut conn, stop, settings.timeout, &host, creds).await {
        conn.close().await;
        return end;
    }
    *connected = true;
    if tx.send(TradeStreamMsg::Connected).await.is_err() {
        conn.close().await;
        return End::Stop;
    }
    forward_updates(conn, stop, tx).await
}

/// Authenticates (exactly `authorized`) and listens to `trade_updates`; each step gets
/// `timeout`.
async fn handshake(
    conn: &mut Conn,
    stop: &mut oneshot::Receiver<()>,
    timeout: Duration,
    host: &str,
    creds: &Credentials,
) -> Result<(), End> {
    let step = || Instant::now() + timeout;
    let auth = serde_json::json!({"action": "auth", "key": creds.key_id, "secret": creds.secret()});
    conn.send_text(auth.to_string()).await.map_err(End::Lost)?;
    let reply = expect(conn, stop, step(), "authorization").await?;
    if reply.get("status").and_then(|s| s.as_str()) != Some("authorized") {
        tracing::error!(
            "trade-updates stream: authorization refused ({})",
            reply
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("no reason given")
        );
        return Err(End::Fatal(BrokerError::Unauthorized {
            host: host.to_string(),
            key_id: creds.key_id.clone(),
        }));
    }
    let listen = serde_json::json!({"action": "listen", "data": {"streams": ["trade_updates"]}});
    conn.send_text(listen.to_string())
        .await
        .map_err(End::Lost)?;
    let ack = expect(conn, stop, step(), "listening").await?;
    let streams: Vec<String> = ack
        .get("streams")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    if !streams.iter().any(|s| s == "trade_updates") {
        return Err(End::Fatal(BrokerError::Stream {
            host: host.to_string(),
            reason: format!("the server is not sending trade_updates (listening to {streams:?})"),
        }));
    }
    Ok(())
}

/// Sends each trade update on to `tx` until the stream ends or no one listens.
async fn forward_updates(
    mut conn: Conn,
    stop: &mut oneshot::Receiver<()>,
    tx: &mpsc::Sender<TradeStreamMsg>,
) -> End {
    loop {
        match conn.next(stop, None).await {
            Next::Stop => {
                conn.close().await;
                return End::Stop;
            }
            Next::Lost(r) => return End::Lost(r),
            Next::TimedOut => {}
            Next::Data(frame) => {
                let env = match envelope(&frame) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!("trade-updates stream: skipping a frame: {e}");
                        continue;
                    }
                };
                if env.stream != "trade_updates" {
                    tracing::debug!("trade-updates stream: skipping `{}`", env.stream);
                    continue;
                }
                match serde_json::from_value::<TradeUpdate>(env.data) {
                    Ok(u) => {
                        if tx.send(TradeStreamMsg::Update(Box::new(u))).await.is_err() {
                            conn.close().await;
                            return End::Stop;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("trade-updates stream: skipping a malformed update ({e})")
                    }
                }
            }
        }
    }
}
