//! What both Alpaca websockets (market data and trade updates) share: connecting over rustls with
//! the ring provider and the platform's certificate verifier (`ws://` stays plain, for loopback
//! fakes), reading text *and* binary frames, a keepalive ping that notices a dead peer, a stop
//! signal, and reconnect backoff with jitter (a reconnect storm gets 429s).

use crate::rng::Rng;
use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How the next read ended.
#[derive(Debug)]
pub(crate) enum Next {
    /// A text or binary frame's payload.
    Data(Vec<u8>),
    /// The owner asked to stop (or went away).
    Stop,
    /// The connection is gone, and why.
    Lost(String),
    /// The caller's deadline passed first.
    TimedOut,
}

/// One open websocket.
pub(crate) struct Conn {
    ws: WsStream,
    keepalive: Duration,
    last_rx: Instant,
    pinged: bool,
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            use rustls_platform_verifier::BuilderVerifierExt;
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?
                .with_platform_verifier()
                .map(|b| Arc::new(b.with_no_client_auth()))
                .map_err(|e| format!("TLS setup (platform certificate verifier): {e}"))
        })
        .clone()
}

fn describe(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(resp) => format!(
            "the server refused the websocket upgrade with HTTP {}",
            resp.status()
        ),
        tungstenite::Error::Io(io) => format!("I/O error: {io}"),
        tungstenite::Error::Tls(t) => format!("TLS error: {t}"),
        other => other.to_string(),
    }
}

impl Conn {
    /// Connects to `url` (`wss://` over rustls, `ws://` plain) within `timeout`.
    pub async fn open(url: &str, timeout: Duration, keepalive: Duration) -> Result<Conn, String> {
        super::client::ensure_tls_provider();
        let connector = if url.starts_with("wss://") {
            Connector::Rustls(tls_config()?)
        } else {
            Connector::Plain
        };
        let attempt =
            tokio_tungstenite::connect_async_tls_with_config(url, None, true, Some(connector));
        let (ws, _) = tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| format!("connecting timed out after {:.1} s", timeout.as_secs_f64()))?
            .map_err(|e| describe(&e))?;
        Ok(Conn {
            ws,
            keepalive,
            last_rx: Instant::now(),
            pinged: false,
        })
    }

    /// Sends one text frame.
    pub async fn send_text(&mut self, text: String) -> Result<(), String> {
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| format!("sending failed: {}", describe(&e)))
    }

    /// The next data frame, answering pings on the way. With `until`, gives up at that instant.
    pub async fn next(&mut self, stop: &mut oneshot::Receiver<()>, until: Option<Instant>) -> Next {
        loop {
            let quiet_limit = if self.pinged {
                2 * self.keepalive
            } else {
                self.keepalive
            };
            let keepalive_at = self.last_rx + quiet_limit;
            let wake = until.map_or(keepalive_at, |u| u.min(keepalive_at));
            tokio::select! {
                _ = &mut *stop => return Next::Stop,
                _ = tokio::time::sleep_until(wake) => {
                    if until.is_some_and(|u| Instant::now() >= u) {
                        return Next::TimedOut;
                    }
                    if self.pinged {
                        return Next::Lost(format!(
                            "no traffic for {:.0} s and no answer to a ping",
                            quiet_limit.as_secs_f64()
                        ));
                    }
                    self.pinged = true;
                    if let Err(e) = self.ws.send(Message::Ping(Vec::new().into())).await {
                        return Next::Lost(format!("sending a ping failed: {}", describe(&e)));
                    }
                }
                msg = self.ws.next() => {
                    self.last_rx = Instant::now();
                    self.pinged = false;
                    match msg {
                        None => return Next::Lost("the server closed the connection".into()),
                        Some(Err(e)) => return Next::Lost(format!("connection lost: {}", describe(&e))),
                        Some(Ok(Message::Text(t))) => return Next::Data(t.as_bytes().to_vec()),
                        Some(Ok(Message::Binary(b))) => return Next::Data(b.to_vec()),
                        Some(Ok(Message::Close(frame))) => {
                            let why = frame
                                .map(|f| format!(" ({} {})", u16::from(f.code), f.reason))
                                .unwrap_or_default();
                            return Next::Lost(format!("the server closed the connection{why}"));
                        }
                        // tungstenite queues the pong itself; flushing sends it now.
                        Some(Ok(Message::Ping(_))) => {
                            let _ = self.ws.flush().await;
                        }
                        Some(Ok(_)) => {}
                    }
                }
            }
        }
    }

    /// Closes politely (best effort; the peer may already be gone).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}

/// Exponential backoff with jitter: attempt n waits base·2ⁿ scaled by a random factor in
/// [0.5, 1.5), capped at `max`, so many clients dropped together do not return together.
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base: base.max(Duration::from_millis(1)),
            max: max.max(base),
            attempt: 0,
            rng: Rng::new(std::process::id() as u64 ^ chrono::Utc::now().timestamp_micros() as u64),
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.as_secs_f64() * 2f64.powi(self.attempt.min(30) as i32);
        self.attempt = self.attempt.saturating_add(1);
        let jittered = exp.min(self.max.as_secs_f64()) * (0.5 + self.rng.uniform());
        Duration::from_secs_f64(jittered).min(self.max)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

// The backoff resets after every connection that completed its handshake (the streams' run
// loops): failures to connect grow the delay, a link that keeps dropping after connecting is
// retried at the base delay (with jitter), never in a tight loop.

/// Keepalive: ping after this much silence, give up after twice as much.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(20);

/// Waits `d` unless told to stop first; true when stopped.
pub(crate) async fn sleep_or_stop(d: Duration, stop: &mut oneshot::Receiver<()>) -> bool {
    tokio::select! {
        _ = &mut *stop => true,
        _ = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let d: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(50) && d[0] < Duration::from_millis(150));
        assert!(d[3] >= Duration::from_millis(400) && d[3] < Duration::from_millis(1200));
        assert!(d.iter().all(|x| *x <= Duration::from_secs(2)));
        // Jitter: two clients with different seeds do not wait the same.
        let mut other = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        other.rng = Rng::new(12345);
        b.reset();
        b.rng = Rng::new(54321);
        assert_ne!(b.next_delay(), other.next_delay());
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(150));
    }
}
