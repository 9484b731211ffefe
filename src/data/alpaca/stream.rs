//! The live market-data bar stream: stocks on `{host}/v2/{iex|sip|delayed_sip|test}`, crypto on
//! `{host}/v1beta3/crypto/us`. Handshake: the server greets `[{"T":"success","msg":"connected"}]`,
//! we authenticate and expect `authenticated`, then subscribe to `bars` and `updatedBars` and read
//! the `subscription` ack. Messages are JSON arrays in text or binary frames; `b` is a minute bar
//! keyed by its start time, `u` a later revision of one already sent. The task reconnects with
//! backoff and jitter and subscribes again; errors Alpaca means for good (bad keys, no
//! subscription) end it with [`MarketMsg::Fatal`], so the caller can fall back to polling the
//! REST bars endpoint; a second connection's 406 is reported the same way, but retried now and
//! then, since the other connection may end.

use super::keys::Credentials;
use super::stream_wire::{decode, WireMsg};
use super::ws::{sleep_or_stop, Backoff, Conn, Next, KEEPALIVE};
use crate::market::Bar;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub const DATA_STREAM_HOST: &str = "wss://stream.data.alpaca.markets";

/// Which stock feed. `Test` streams the symbol `FAKEPACA` at all hours (handy outside market
/// hours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockFeed {
    Iex,
    Sip,
    DelayedSip,
    Test,
}

impl StockFeed {
    pub fn as_str(self) -> &'static str {
        match self {
            StockFeed::Iex => "iex",
            StockFeed::Sip => "sip",
            StockFeed::DelayedSip => "delayed_sip",
            StockFeed::Test => "test",
        }
    }

    /// From the config's `feed` value.
    pub fn parse(s: &str) -> Option<StockFeed> {
        match s.trim().to_ascii_lowercase().as_str() {
            "iex" => Some(StockFeed::Iex),
            "sip" => Some(StockFeed::Sip),
            "delayed_sip" => Some(StockFeed::DelayedSip),
            "test" => Some(StockFeed::Test),
            _ => None,
        }
    }
}

/// Stocks (one feed) or crypto: Alpaca serves them on different endpoints, one connection each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarFeed {
    Stocks(StockFeed),
    Crypto,
}

impl BarFeed {
    pub fn path(self) -> String {
        match self {
            BarFeed::Stocks(f) => format!("/v2/{}", f.as_str()),
            BarFeed::Crypto => "/v1beta3/crypto/us".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DataStreamSettings {
    /// Scheme and host, e.g. `wss://stream.data.alpaca.markets` (the feed path is appended).
    pub url: String,
    /// First reconnect delay; doubles (with jitter) up to `max_backoff`.
    pub retry_base: Duration,
    pub max_backoff: Duration,
    /// Limit for connecting and for each handshake step.
    pub timeout: Duration,
}

impl DataStreamSettings {
    pub fn default_host() -> Self {
        DataStreamSettings {
            url: DATA_STREAM_HOST.to_string(),
            retry_base: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }

    /// The default, with the host from `APCA_API_DATA_STREAM_URL` when set, else derived from
    /// `APCA_API_DATA_URL` (see [`stream_host_for`]).
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut s = Self::default_host();
        let get = |k: &str| lookup(k).filter(|u| !u.trim().is_empty());
        if let Some(url) = get("APCA_API_DATA_STREAM_URL") {
            s.url = url.trim().trim_end_matches('/').to_string();
        } else if let Some(data) = get("APCA_API_DATA_URL") {
            s.url = stream_host_for(&data);
        }
        s
    }

    pub fn endpoint(&self, feed: BarFeed) -> String {
        format!("{}{}", self.url.trim_end_matches('/'), feed.path())
    }
}

/// The market-data stream host that goes with a data REST host: Alpaca's `data.` hosts stream
/// from `stream.data.` (`https://data.alpaca.markets` → `wss://stream.data.alpaca.markets`,
/// the sandbox likewise); any other host (a proxy, a local fake) is asked on the same host and
/// port, `http` → `ws` and `https` → `wss`.
pub fn stream_host_for(data_url: &str) -> String {
    let t = data_url.trim().trim_end_matches('/');
    let t = t.strip_suffix("/v2").unwrap_or(t);
    let (scheme, rest) = match t.split_once("://") {
        Some(("http", r)) => ("ws", r),
        Some(("https", r)) | Some(("wss", r)) => ("wss", r),
        Some((other, r)) => (other, r),
        None => ("wss", t),
    };
    let host = rest.split('/').next().unwrap_or(rest);
    let bare = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    if bare.starts_with("data.") && bare.ends_with("alpaca.markets") {
        format!("wss://stream.{bare}")
    } else {
        format!("{scheme}://{host}")
    }
}

/// Why the stream gave up for good.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StreamError {
    #[error(
        "{endpoint}: connection limit exceeded (406) — another quantdeck or another program is already streaming market data for this account; stop it, or let quantdeck poll the REST bars instead"
    )]
    ConnectionLimit { endpoint: String },
    #[error("{endpoint}: Alpaca rejected the keys (402 auth failed) for key id {key_id}: check APCA_API_KEY_ID / APCA_API_SECRET_KEY")]
    AuthFailed { endpoint: String, key_id: String },
    #[error("{endpoint}: the subscription does not include this feed (409){hint}")]
    InsufficientSubscription { endpoint: String, hint: String },
    #[error("{endpoint}: Alpaca error {code}: {msg}")]
    Refused {
        endpoint: String,
        code: u32,
        msg: String,
    },
}

impl StreamError {
    /// The task keeps trying after this one (a 406 ends when the other connection does).
    pub fn retried(&self) -> bool {
        matches!(self, StreamError::ConnectionLimit { .. })
    }
}

/// What the stream task reports.
#[derive(Debug, Clone, PartialEq)]
pub enum MarketMsg {
    /// Authenticated and subscribed (again, after a reconnect: fill any gap over REST).
    Connected,
    /// A minute bar; `revision` marks an `updatedBars` correction of a bar already sent.
    Bar {
        symbol: String,
        bar: Bar,
        revision: bool,
    },
    /// Not connected now (lost, or an attempt failed); the task retries by itself.
    Disconnected { reason: String },
    /// The task stopped for good.
    Fatal(StreamError),
}

/// The running stream: messages on [`BarStream::recv`]; dropping it closes the socket.
pub struct BarStream {
    rx: mpsc::Receiver<MarketMsg>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl BarStream {
    pub async fn recv(&mut self) -> Option<MarketMsg> {
        self.rx.recv().await
    }

    pub fn receiver(&mut self) -> &mut mpsc::Receiver<MarketMsg> {
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

impl Drop for BarStream {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Starts streaming 1-minute bars and their revisions for `symbols` (crypto as `BTC/USD`).
/// Must be called inside a tokio runtime.
pub fn spawn_bar_stream(
    settings: DataStreamSettings,
    creds: Credentials,
    feed: BarFeed,
    symbols: Vec<String>,
) -> BarStream {
    let (tx, rx) = mpsc::channel(4096);
    let (stop_tx, stop_rx) = oneshot::channel();
    let task = tokio::spawn(run(settings, creds, feed, symbols, tx, stop_rx));
    BarStream {
        rx,
        stop: Some(stop_tx),
        task: Some(task),
    }
}

enum End {
    Stop,
    Fatal(StreamError),
    Lost(String),
}

async fn run(
    settings: DataStreamSettings,
    creds: Credentials,
    feed: BarFeed,
    symbols: Vec<String>,
    tx: mpsc::Sender<MarketMsg>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut backoff = Backoff::new(settings.retry_base, settings.max_backoff);
    loop {
        let mut connected = false;
        let end = session(
            &settings,
            &creds,
            feed,
            &symbols,
            &tx,
            &mut stop,
            &mut connected,
        )
        .await;
        match end {
            End::Stop => return,
            End::Fatal(e) if e.retried() => {
                // Another connection holds the account's slot; it may let go. Try again now and
                // then (the caller polls REST meanwhile).
                tracing::warn!("market-data stream: {e}; trying again later");
                if tx.send(MarketMsg::Fatal(e)).await.is_err() {
                    return;
                }
                if sleep_or_stop(settings.max_backoff, &mut stop).await {
                    return;
                }
            }
            End::Fatal(e) => {
                tracing::error!("market-data stream stopped: {e}");
                let _ = tx.send(MarketMsg::Fatal(e)).await;
                return;
            }
            End::Lost(reason) => {
                tracing::warn!("market-data stream {}: {reason}", settings.endpoint(feed));
                if connected {
                    // A completed handshake is a success: the next drop starts over at the
                    // base delay, so a link cut every few seconds is back within a second.
                    backoff.reset();
                }
                if tx.send(MarketMsg::Disconnected { reason }).await.is_err() {
                    return;
                }
                if sleep_or_stop(backoff.next_delay(), &mut stop).await {
                    return;
                }
            }
        }
    }
}

/// Maps an Alpaca stream error to: fatal (retrying cannot help) or a reason to reconnect.
fn error_end(endpoint: &str, key_id: &str, feed: BarFeed, code: u32, msg: &str) -> End {
    match code {
        406 => End::Fatal(StreamError::ConnectionLimit {
            endpoint: endpoint.to_string(),
        }),
        402 => End::Fatal(StreamError::AuthFailed {
            endpoint: endpoint.to_string(),
            key_id: key_id.to_string(),
        }),
        409 => End::Fatal(StreamError::InsufficientSubscription {
            endpoint: endpoint.to_string(),
            hint: if feed == BarFeed::Stocks(StockFeed::Sip) {
                " — the SIP feed needs a paid plan: use the iex feed".into()
            } else {
                String::new()
            },
        }),
        // 400 invalid syntax, 401 not authenticated, 403 already authenticated, 405 symbol
        // limit, 410 invalid subscribe action: retrying the same thing fails the same way.
        400 | 401 | 403 | 405 | 410 => End::Fatal(StreamError::Refused {
            endpoint: endpoint.to_string(),
            code,
            msg: msg.to_string(),
        }),
        // 404 auth timeout, 407 slow client, 500 internal error, and anything new: reconnect.
        _ => End::Lost(format!("Alpaca error {code}: {msg}")),
    }
}

/// Reads until a message of kind `want` arrives (skipping others), within the step's deadline.
async fn expect(
    conn: &mut Conn,
    stop: &mut oneshot::Receiver<()>,
    deadline: Instant,
    ctx: (&str, &str, BarFeed),
    want: &str,
    msg: Option<&str>,
) -> Result<WireMsg, End> {
    loop {
        match conn.next(stop, Some(deadline)).await {
            Next::Stop => return Err(End::Stop),
            Next::Lost(r) => return Err(End::Lost(format!("{r} (waiting for {want})"))),
            Next::TimedOut => return Err(End::Lost(format!("no `{want}` message in time"))),
            Next::Data(frame) => {
                for m in decode(&frame).map_err(|e| End::Lost(format!("handshake: {e}")))? {
                    if m.kind == "error" {
                        let (endpoint, key_id, feed) = ctx;
                        let text = m.msg.unwrap_or_default();
                        return Err(error_end(
                            endpoint,
                            key_id,
                            feed,
                            m.code.unwrap_or(0),
                            &text,
                        ));
                    }
                    if m.kind == want && msg.is_none_or(|x| m.msg.as_deref() == Some(x)) {
                        return Ok(m);
                    }
                }
            }
        }
    }
}

async fn session(
    settings: &DataStreamSettings,
    creds: &Credentials,
    feed: BarFeed,
    symbols: &[String],
    tx: &mpsc::Sender<MarketMsg>,
    stop: &mut oneshot::Receiver<()>,
    connected: &mut bool,
) -> End {
    let endpoint = settings.endpoint(feed);
    let ctx = (endpoint.as_str(), creds.key_id.as_str(), feed);
    let mut conn = match Conn::open(&endpoint, settings.timeout, KEEPALIVE).await {
        Ok(c) => c,
        Err(e) => return End::Lost(e),
    };
    let shake = handshake(&mut conn, stop, settings.timeout, ctx, creds, symbols).await;
    if let Err(end) = shake {
        conn.close().await;
        return end;
    }
    *connected = true;
    if tx.send(MarketMsg::Connected).await.is_err() {
        conn.close().await;
        return End::Stop;
    }
    forward_bars(conn, stop, tx, ctx).await
}

/// Waits for the greeting, authenticates and subscribes to `symbols`' bars and revisions; each
/// step gets `timeout`.
async fn handshake(
    conn: &mut Conn,
    stop: &mut oneshot::Receiver<()>,
    timeout: Duration,
    ctx: (&str, &str, BarFeed),
    creds: &Credentials,
    symbols: &[String],
) -> Result<(), End> {
    let step = || Instant::now() + timeout;
    expect(conn, stop, step(), ctx, "success", Some("connected")).await?;
    let auth = serde_json::json!({"action": "auth", "key": creds.key_id, "secret": creds.secret()});
    conn.send_text(auth.to_string()).await.map_err(End::Lost)?;
    expect(conn, stop, step(), ctx, "success", Some("authenticated")).await?;
    let sub = serde_json::json!({"action": "subscribe", "bars": symbols, "updatedBars": symbols});
    conn.send_text(sub.to_string()).await.map_err(End::Lost)?;
    let ack = expect(conn, stop, step(), ctx, "subscription", None).await?;
    let acked = ack.bars.unwrap_or_default();
    let missing: Vec<&String> = symbols.iter().filter(|s| !acked.contains(s)).collect();
    if !missing.is_empty() {
        tracing::warn!("market-data stream: no bar subscription for {missing:?}");
    }
    Ok(())
}

/// Sends each bar and revision on to `tx` until the stream ends, errs, or no one listens.
async fn forward_bars(
    mut conn: Conn,
    stop: &mut oneshot::Receiver<()>,
    tx: &mpsc::Sender<MarketMsg>,
    ctx: (&str, &str, BarFeed),
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
                let msgs = match decode(&frame) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!("market-data stream: skipping a frame: {e}");
                        continue;
                    }
                };
                for m in msgs {
                    let revision = match m.kind.as_str() {
                        "b" => false,
                        "u" => true,
                        "error" => {
                            conn.close().await;
                            let text = m.msg.unwrap_or_default();
                            return error_end(ctx.0, ctx.1, ctx.2, m.code.unwrap_or(0), &text);
                        }
                        _ => continue,
                    };
                    let Some((symbol, bar)) = m.bar() else {
                        tracing::warn!("market-data stream: skipping a malformed bar");
                        continue;
                    };
                    let msg = MarketMsg::Bar {
                        symbol,
                        bar,
                        revision,
                    };
                    if tx.send(msg).await.is_err() {
                        conn.close().await;
                        return End::Stop;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_env_override() {
        let s = DataStreamSettings::default_host();
        assert_eq!(
            s.endpoint(BarFeed::Stocks(StockFeed::Iex)),
            "wss://stream.data.alpaca.markets/v2/iex"
        );
        assert_eq!(
            s.endpoint(BarFeed::Crypto),
            "wss://stream.data.alpaca.markets/v1beta3/crypto/us"
        );
        let o = DataStreamSettings::from_lookup(|k| {
            (k == "APCA_API_DATA_STREAM_URL").then(|| "ws://127.0.0.1:9/".to_string())
        });
        assert_eq!(
            o.endpoint(BarFeed::Stocks(StockFeed::Test)),
            "ws://127.0.0.1:9/v2/test"
        );
        // Derived from the data REST host unless the stream host is named.
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let d = DataStreamSettings::from_lookup(env(&[(
            "APCA_API_DATA_URL",
            "http://127.0.0.1:4000/",
        )]));
        assert_eq!(
            d.endpoint(BarFeed::Crypto),
            "ws://127.0.0.1:4000/v1beta3/crypto/us"
        );
        let d = DataStreamSettings::from_lookup(env(&[
            ("APCA_API_DATA_URL", "http://127.0.0.1:4000"),
            ("APCA_API_DATA_STREAM_URL", "ws://127.0.0.1:9"),
        ]));
        assert_eq!(d.url, "ws://127.0.0.1:9");
        assert_eq!(
            stream_host_for("https://data.alpaca.markets"),
            DATA_STREAM_HOST
        );
        assert_eq!(
            stream_host_for("https://data.sandbox.alpaca.markets/v2"),
            "wss://stream.data.sandbox.alpaca.markets"
        );
        assert_eq!(
            stream_host_for("https://proxy.example:8443/x"),
            "wss://proxy.example:8443"
        );
        assert_eq!(StockFeed::parse("SIP"), Some(StockFeed::Sip));
        assert_eq!(StockFeed::parse("otc"), None);
    }

    #[test]
    fn error_codes_map_to_fatal_or_reconnect() {
        let f = |code| error_end("e", "PK", BarFeed::Stocks(StockFeed::Sip), code, "m");
        match f(406) {
            End::Fatal(e) => assert!(e.to_string().contains("another quantdeck")),
            _ => panic!("406 is fatal"),
        }
        assert!(matches!(f(402), End::Fatal(StreamError::AuthFailed { .. })));
        match f(409) {
            End::Fatal(e) => assert!(e.to_string().contains("iex")),
            _ => panic!("409 is fatal"),
        }
        assert!(matches!(f(500), End::Lost(_)));
        assert!(matches!(f(407), End::Lost(_)));
    }
}
