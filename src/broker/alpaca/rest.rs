//! The trading REST client. Reads and cancels retry transient failures (429, 5xx, timeouts,
//! broken bodies) with backoff and jitter within a budget; **order submission never retries**:
//! its outcome is either known (an order, or a typed refusal) or [`BrokerError::Uncertain`].
//! One token bucket per client holds Alpaca's 200 requests a minute, and the `X-RateLimit-*`
//! headers pause every caller until the window resets.

use super::error::{classify_4xx, BrokerError, ErrorBody};
use super::paging::{OrdersQuery, Pager};
use super::TradingSettings;
use crate::broker::types::{
    split_row_body, Account, Asset, CancelRow, Clock, ClosePositionRow, NewOrder, Order, Position,
};
use crate::data::alpaca::{Credentials, RateLimiter};
use crate::rng::Rng;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAX_BACKOFF: Duration = Duration::from_secs(30);
const MAX_RATE_PAUSE: Duration = Duration::from_secs(60);

pub struct TradingClient {
    http: reqwest::Client,
    settings: TradingSettings,
    base: String,
    host: String,
    creds: Credentials,
    limiter: Arc<RateLimiter>,
    jitter: Mutex<Rng>,
}

impl std::fmt::Debug for TradingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TradingClient")
            .field("base", &self.base)
            .field("creds", &self.creds)
            .finish_non_exhaustive()
    }
}

/// One HTTP answer.
struct Reply {
    status: u16,
    body: Vec<u8>,
    reset_in: Option<Duration>,
}

/// A request that got no answer; `unsent` when it surely never reached the server.
struct NoReply {
    reason: String,
    unsent: bool,
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        format!("cannot connect ({e})")
    } else if e.is_body() || e.is_decode() {
        format!("broken response body ({e})")
    } else {
        format!("connection failed ({e})")
    }
}

fn header_u64(resp: &reqwest::Response, name: &str) -> Option<u64> {
    resp.headers().get(name)?.to_str().ok()?.trim().parse().ok()
}

#[derive(Deserialize)]
struct WireCancelRow {
    id: String,
    status: u16,
    #[serde(default)]
    body: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireCloseRow {
    #[serde(default)]
    symbol: Option<String>,
    status: u16,
    #[serde(default)]
    body: Option<serde_json::Value>,
}

impl TradingClient {
    /// Refuses the live host unless `settings.allow_live`.
    pub fn new(
        settings: TradingSettings,
        creds: Credentials,
    ) -> Result<TradingClient, BrokerError> {
        settings.check()?;
        crate::data::alpaca::ensure_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("quantdeck/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BrokerError::Config {
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        let base = settings
            .base_url
            .trim()
            .trim_end_matches('/')
            .trim_end_matches("/v2")
            .to_string();
        Ok(TradingClient {
            host: crate::data::alpaca::host_of(&base),
            base,
            limiter: Arc::new(RateLimiter::new(settings.rate_per_minute)),
            jitter: Mutex::new(Rng::new(
                std::process::id() as u64 ^ Utc::now().timestamp_micros() as u64,
            )),
            http,
            settings,
            creds,
        })
    }

    pub fn settings(&self) -> &TradingSettings {
        &self.settings
    }

    pub fn key_id(&self) -> &str {
        &self.creds.key_id
    }

    pub async fn account(&self) -> Result<Account, BrokerError> {
        self.read(Method::GET, "/v2/account", &[], "account").await
    }

    pub async fn positions(&self) -> Result<Vec<Position>, BrokerError> {
        self.read(Method::GET, "/v2/positions", &[], "positions")
            .await
    }

    pub async fn clock(&self) -> Result<Clock, BrokerError> {
        self.read(Method::GET, "/v2/clock", &[], "market clock")
            .await
    }

    /// An asset by symbol (`AAPL`, or crypto as `BTC/USD`, sent in the path as alpaca-py does).
    pub async fn asset(&self, symbol: &str) -> Result<Asset, BrokerError> {
        let what = format!("asset {symbol}");
        if symbol.is_empty()
            || !symbol
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-'))
        {
            return Err(BrokerError::NotFound { what });
        }
        self.read(Method::GET, &format!("/v2/assets/{symbol}"), &[], &what)
            .await
    }

    /// Submits one order, exactly once.
    ///
    /// Never retried here: an order whose answer was lost may exist. Outcomes:
    /// - `Ok(order)`: accepted.
    /// - a typed refusal (`InsufficientBuyingPower`, `WashTrade`, `Rejected`, …): not placed.
    /// - `DuplicateClientOrderId`: an order with this id already exists (an earlier attempt
    ///   got through); look it up with [`TradingClient::order_by_client_id`].
    /// - `Uncertain`: a timeout, a dropped connection, a 5xx (Alpaca can answer 500 after
    ///   accepting) or an unreadable 2xx: look the order up by client id before anything else.
    /// - `RateLimited` or `Transport` with `is_retryable()`: surely not placed (refused at the
    ///   gate, or the connection never opened); sending again with the same id is safe.
    pub async fn submit(&self, order: &NewOrder) -> Result<Order, BrokerError> {
        order
            .validate()
            .map_err(|message| BrokerError::InvalidOrder { message })?;
        let cid = order.client_order_id.clone();
        let what = format!("submit order {cid}");
        let body = serde_json::to_vec(order).map_err(|e| BrokerError::InvalidOrder {
            message: e.to_string(),
        })?;
        let reply = match self
            .exchange(Method::POST, "/v2/orders", &[], Some(body))
            .await
        {
            Ok(r) => r,
            Err(NoReply {
                reason,
                unsent: true,
            }) => return Err(BrokerError::Transport { what, reason }),
            Err(NoReply { reason, .. }) => {
                return Err(BrokerError::Uncertain {
                    client_order_id: cid,
                    reason,
                })
            }
        };
        match reply.status {
            200..=299 => {
                serde_json::from_slice::<Order>(&reply.body).map_err(|e| BrokerError::Uncertain {
                    client_order_id: cid,
                    reason: format!("HTTP {} with an unreadable order ({e})", reply.status),
                })
            }
            429 => Err(BrokerError::RateLimited {
                what,
                reset_in: reply.reset_in,
            }),
            500..=599 => Err(BrokerError::Uncertain {
                client_order_id: cid,
                reason: format!(
                    "server error {}: {}",
                    reply.status,
                    ErrorBody::parse(&reply.body).text(&reply.body)
                ),
            }),
            s => Err(classify_4xx(
                s,
                &reply.body,
                &what,
                &self.host,
                &self.creds.key_id,
                Some(&cid),
            )),
        }
    }

    /// Every order matching `query`, all pages (see the paging module on ties).
    pub async fn orders(&self, query: OrdersQuery) -> Result<Vec<Order>, BrokerError> {
        let mut pager = Pager::new(query);
        let mut out = Vec::new();
        loop {
            let page: Vec<Order> = self
                .read(Method::GET, "/v2/orders", &pager.params(), "orders")
                .await?;
            let (fresh, more) = pager.take(page).map_err(|reason| BrokerError::Malformed {
                what: "orders".into(),
                reason,
            })?;
            out.extend(fresh);
            if !more {
                return Ok(out);
            }
        }
    }

    /// The order with this client id, `None` when Alpaca has none.
    pub async fn order_by_client_id(
        &self,
        client_order_id: &str,
    ) -> Result<Option<Order>, BrokerError> {
        let q = [("client_order_id", client_order_id.to_string())];
        let what = format!("order {client_order_id}");
        match self
            .read(Method::GET, "/v2/orders:by_client_order_id", &q, &what)
            .await
        {
            Ok(o) => Ok(Some(o)),
            Err(BrokerError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /v2/orders`: cancels every open order; one row per order (HTTP 207).
    pub async fn cancel_all(&self) -> Result<Vec<CancelRow>, BrokerError> {
        let rows: Vec<WireCancelRow> = self
            .read(Method::DELETE, "/v2/orders", &[], "cancel all orders")
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let (order, error) = split_row_body(r.body);
                CancelRow {
                    order_id: r.id,
                    status: r.status,
                    order,
                    error,
                }
            })
            .collect())
    }

    /// `DELETE /v2/positions?cancel_orders=true`: cancels open orders, then closes every
    /// position; one row per position (HTTP 207).
    pub async fn close_all(&self) -> Result<Vec<ClosePositionRow>, BrokerError> {
        let q = [("cancel_orders", "true".to_string())];
        let rows: Vec<WireCloseRow> = self
            .read(Method::DELETE, "/v2/positions", &q, "close all positions")
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let (order, error) = split_row_body(r.body);
                let symbol = r
                    .symbol
                    .or_else(|| order.as_ref().map(|o| o.symbol.clone()))
                    .unwrap_or_default();
                ClosePositionRow {
                    symbol,
                    status: r.status,
                    order,
                    error,
                }
            })
            .collect())
    }

    /// A read or a cancel: retried on 429, 5xx, transport failures and truncated bodies.
    async fn read<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        what: &str,
    ) -> Result<T, BrokerError> {
        let mut last = String::new();
        let attempts = self.settings.max_retries + 1;
        for attempt in 0..attempts {
            if attempt > 0 {
                tracing::warn!("{what}: {last} (attempt {attempt} of {attempts}); retrying");
                tokio::time::sleep(self.backoff(attempt)).await;
            }
            let reply = match self.exchange(method.clone(), path, query, None).await {
                Ok(r) => r,
                Err(NoReply { reason, .. }) => {
                    last = reason;
                    continue;
                }
            };
            match reply.status {
                200..=299 => {
                    // Not JSON at all: cut short on the way, worth another try. JSON of the
                    // wrong shape: Alpaca changed something, and retrying cannot help.
                    let value: serde_json::Value = match serde_json::from_slice(&reply.body) {
                        Ok(v) => v,
                        Err(e) => {
                            last = format!("malformed JSON ({} bytes): {e}", reply.body.len());
                            continue;
                        }
                    };
                    return serde_json::from_value(value).map_err(|e| BrokerError::Malformed {
                        what: what.to_string(),
                        reason: e.to_string(),
                    });
                }
                429 => last = "rate limited (429)".into(),
                s @ 500..=599 => {
                    last = format!(
                        "server error {s}: {}",
                        ErrorBody::parse(&reply.body).text(&reply.body)
                    )
                }
                s => {
                    return Err(classify_4xx(
                        s,
                        &reply.body,
                        what,
                        &self.host,
                        &self.creds.key_id,
                        None,
                    ))
                }
            }
        }
        Err(BrokerError::RetriesExhausted {
            what: what.to_string(),
            attempts,
            last,
        })
    }

    /// One request under the rate limiter; obeys the rate-limit headers of the answer.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        json: Option<Vec<u8>>,
    ) -> Result<Reply, NoReply> {
        self.limiter.acquire().await;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .query(query)
            .header("APCA-API-KEY-ID", &self.creds.key_id)
            .header("APCA-API-SECRET-KEY", self.creds.secret())
            .header("Accept-Encoding", "gzip");
        if let Some(body) = json {
            req = req.header("Content-Type", "application/json").body(body);
        }
        let resp = req.send().await.map_err(|e| NoReply {
            reason: format!("request to {} {}", self.host, describe(&e)),
            unsent: e.is_connect(),
        })?;
        let status = resp.status().as_u16();
        let reset_in = header_u64(&resp, "x-ratelimit-reset")
            .and_then(|r| DateTime::from_timestamp(r as i64, 0))
            .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        if header_u64(&resp, "x-ratelimit-remaining") == Some(0) || status == 429 {
            let pause = reset_in
                .unwrap_or(self.settings.retry_base)
                .min(MAX_RATE_PAUSE);
            self.limiter.pause_until(Instant::now() + pause).await;
        }
        let body = resp.bytes().await.map_err(|e| NoReply {
            reason: format!("reading the answer from {}: {}", self.host, describe(&e)),
            unsent: false,
        })?;
        Ok(Reply {
            status,
            body: body.to_vec(),
            reset_in,
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base =
            self.settings.retry_base.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1) as i32);
        let jitter = self
            .jitter
            .lock()
            .map(|mut r| 0.5 + r.uniform())
            .unwrap_or(1.0);
        Duration::from_secs_f64(base * jitter).min(MAX_BACKOFF)
    }
}
