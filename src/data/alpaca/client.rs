use super::error::AlpacaError;
use super::keys::Credentials;
use super::ratelimit::RateLimiter;
use super::wire::parse_bars_page;
use crate::config::DataConfig;
use crate::market::{AssetClass, Bar, Symbol, Timeframe};
use crate::rng::Rng;
use anyhow::{anyhow, Result};
use chrono::{DateTime, NaiveDate, Utc};
use reqwest::StatusCode;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DATA_HOST: &str = "https://data.alpaca.markets";
pub const PAPER_HOST: &str = "https://paper-api.alpaca.markets";
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub data_url: String,
    pub trading_url: String,
    pub feed: String,
    pub adjustment: String,
    pub rate_per_minute: u32,
    pub max_retries: u32,
    pub retry_base: Duration,
    pub timeout: Duration,
    pub page_limit: u32,
}

impl ClientSettings {
    /// From `[data]`, with hosts from `APCA_API_DATA_URL` / `APCA_API_BASE_URL` when set.
    pub fn from_config(d: &DataConfig) -> Self {
        let env = |k: &str, default: &str| {
            std::env::var(k)
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        ClientSettings {
            data_url: env("APCA_API_DATA_URL", DATA_HOST)
                .trim_end_matches('/')
                .to_string(),
            trading_url: env("APCA_API_BASE_URL", PAPER_HOST)
                .trim_end_matches('/')
                .trim_end_matches("/v2")
                .to_string(),
            feed: d.feed.clone(),
            adjustment: d.adjustment.clone(),
            rate_per_minute: d.rate_limit_per_minute,
            max_retries: d.max_retries,
            retry_base: Duration::from_millis(d.retry_base_ms),
            timeout: Duration::from_secs(d.timeout_s.max(1)),
            page_limit: d.page_limit.clamp(1, 10_000),
        }
    }
}

/// Requests and bars of one fetch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FetchStats {
    pub requests: u32,
    pub retries: u32,
    pub bars: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CalendarDay {
    pub date: NaiveDate,
    pub open: String,
    pub close: String,
}

pub struct DataClient {
    http: reqwest::Client,
    settings: ClientSettings,
    creds: Credentials,
    limiter: Arc<RateLimiter>,
    jitter: Mutex<Rng>,
}

pub(crate) fn host_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or(url)
        .to_string()
}

/// Installs rustls' ring provider once per process (reqwest is built without a default one).
pub(crate) fn ensure_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

enum Outcome {
    Done(Vec<u8>),
    Retry(String),
    Fatal(AlpacaError),
}

impl DataClient {
    pub fn new(settings: ClientSettings, creds: Credentials) -> Result<Self> {
        ensure_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("quantdeck/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow!("cannot build the HTTP client: {e}"))?;
        Ok(DataClient {
            limiter: Arc::new(RateLimiter::new(settings.rate_per_minute)),
            jitter: Mutex::new(Rng::new(
                std::process::id() as u64 ^ Utc::now().timestamp_micros() as u64,
            )),
            http,
            settings,
            creds,
        })
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// Fetches bars of `symbols` (one asset class) for `[start, end]`, page by page, handing each
    /// page's bars to `on_page` as soon as it arrives so the caller can store progress.
    pub async fn fetch_bars(
        &self,
        symbols: &[Symbol],
        tf: Timeframe,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        mut on_page: impl FnMut(BTreeMap<String, Vec<Bar>>) -> Result<()>,
    ) -> Result<FetchStats> {
        let Some(first) = symbols.first() else {
            return Ok(FetchStats::default());
        };
        let class = first.class;
        if symbols.iter().any(|s| s.class != class) {
            return Err(anyhow!("one bar request cannot mix equities and crypto"));
        }
        let path = match class {
            AssetClass::Equity => "/v2/stocks/bars",
            AssetClass::Crypto => "/v1beta3/crypto/us/bars",
        };
        let url = format!("{}{path}", self.settings.data_url);
        let names: Vec<&str> = symbols.iter().map(|s| s.name.as_str()).collect();
        let mut query: Vec<(&str, String)> = vec![
            ("symbols", names.join(",")),
            ("timeframe", tf.to_string()),
            (
                "start",
                start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            (
                "end",
                end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            ("limit", self.settings.page_limit.to_string()),
            ("sort", "asc".to_string()),
        ];
        if class == AssetClass::Equity {
            query.push(("feed", self.settings.feed.clone()));
            query.push(("adjustment", self.settings.adjustment.clone()));
        }
        let mut stats = FetchStats::default();
        let mut token: Option<String> = None;
        loop {
            let mut q = query.clone();
            if let Some(t) = &token {
                q.push(("page_token", t.clone()));
            }
            let what = format!("{} bars for {}", tf, names.join(","));
            let (body, tries) = self.get(&url, &q, &what).await?;
            stats.requests += 1;
            stats.retries += tries;
            let (page, next) = match parse_bars_page(&body) {
                Ok(p) => p,
                // A 200 whose body does not parse was already retried; this is the final say.
                Err(e) => {
                    return Err(e.context(format!("{what}: unreadable page from {}", host_of(&url))))
                }
            };
            stats.bars += page.values().map(Vec::len).sum::<usize>();
            on_page(page)?;
            match next {
                Some(t) => token = Some(t),
                None => return Ok(stats),
            }
        }
    }

    /// The 1-minute bars of `symbols` (equities and crypto may be mixed) that start strictly after
    /// `after` and no later than `until`: the polling fallback when the bar stream is down. A bar
    /// counts as closed once the data API serves it, so an accelerated or replayed feed works too.
    pub async fn minute_bars_after(
        &self,
        symbols: &[Symbol],
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<BTreeMap<String, Vec<Bar>>> {
        let mut out: BTreeMap<String, Vec<Bar>> = BTreeMap::new();
        if until <= after {
            return Ok(out);
        }
        for class in [AssetClass::Equity, AssetClass::Crypto] {
            let group: Vec<Symbol> = symbols
                .iter()
                .filter(|s| s.class == class)
                .cloned()
                .collect();
            if group.is_empty() {
                continue;
            }
            // `start` is inclusive and sent at whole seconds: ask from the next second on, and
            // keep only bars strictly after `after` in case the server rounds.
            let start = after + chrono::Duration::seconds(1);
            self.fetch_bars(&group, Timeframe::Minute(1), start, until, |page| {
                for (sym, bars) in page {
                    out.entry(sym)
                        .or_default()
                        .extend(bars.into_iter().filter(|b| b.ts > after));
                }
                Ok(())
            })
            .await?;
        }
        Ok(out)
    }

    /// The exchange calendar (`/v2/calendar` on the trading host): holidays and half days.
    pub async fn calendar(&self, start: NaiveDate, end: NaiveDate) -> Result<Vec<CalendarDay>> {
        let url = format!("{}/v2/calendar", self.settings.trading_url);
        let q = [("start", start.to_string()), ("end", end.to_string())];
        let (body, _) = self.get(&url, &q, "calendar").await?;
        serde_json::from_slice(&body)
            .map_err(|e| anyhow!("malformed calendar from {}: {e}", host_of(&url)))
    }

    /// GET with rate limiting and retries; returns the body and how many retries it took.
    async fn get(&self, url: &str, query: &[(&str, String)], what: &str) -> Result<(Vec<u8>, u32)> {
        let mut last = String::new();
        for attempt in 0..=self.settings.max_retries {
            if attempt > 0 {
                tokio::time::sleep(self.backoff(attempt)).await;
            }
            self.limiter.acquire().await;
            match self.attempt(url, query).await {
                Outcome::Done(body) => return Ok((body, attempt)),
                Outcome::Fatal(e) => return Err(e.into()),
                Outcome::Retry(reason) => {
                    tracing::warn!(
                        "{what}: {reason} (attempt {} of {})",
                        attempt + 1,
                        self.settings.max_retries + 1
                    );
                    last = reason;
                }
            }
        }
        Err(AlpacaError::RetriesExhausted {
            what: what.to_string(),
            attempts: self.settings.max_retries + 1,
            last,
        }
        .into())
    }

    async fn attempt(&self, url: &str, query: &[(&str, String)]) -> Outcome {
        let host = host_of(url);
        let resp = self
            .http
            .get(url)
            .query(query)
            .header("APCA-API-KEY-ID", &self.creds.key_id)
            .header("APCA-API-SECRET-KEY", self.creds.secret())
            .header("Accept-Encoding", "gzip")
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry(format!(
                    "request to {host} failed: {}",
                    describe_transport(&e)
                ))
            }
        };
        let status = resp.status();
        self.pause_if_limited(&resp, status).await;
        let body = match resp.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => {
                return Outcome::Retry(format!(
                    "reading the response from {host} failed: {}",
                    describe_transport(&e)
                ))
            }
        };
        if status.is_success() {
            // A truncated or garbled 200 is a transport problem: try again.
            return match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(_) => Outcome::Done(body),
                Err(e) => Outcome::Retry(format!(
                    "malformed JSON from {host} ({} bytes): {e}",
                    body.len()
                )),
            };
        }
        self.rejection(host, status, &body)
    }

    /// Holds every request back until the server's rate-limit window resets (at most a
    /// minute) when it says the quota is spent or answers 429.
    async fn pause_if_limited(&self, resp: &reqwest::Response, status: StatusCode) {
        let reset = header_u64(resp, "x-ratelimit-reset");
        if header_u64(resp, "x-ratelimit-remaining") == Some(0)
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            let until = reset
                .and_then(|r| DateTime::from_timestamp(r as i64, 0))
                .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(self.settings.retry_base)
                .min(Duration::from_secs(60));
            self.limiter.pause_until(Instant::now() + until).await;
        }
    }

    /// What a non-success status means: 429 and 5xx are worth a retry, the rest are fatal.
    fn rejection(&self, host: String, status: StatusCode, body: &[u8]) -> Outcome {
        let message = error_message(body);
        match status.as_u16() {
            429 => Outcome::Retry(format!("rate limited by {host} (429)")),
            500..=599 => Outcome::Retry(format!(
                "server error {} from {host}: {message}",
                status.as_u16()
            )),
            401 => Outcome::Fatal(AlpacaError::Unauthorized {
                host,
                key_id: self.creds.key_id.clone(),
            }),
            403 => {
                let hint = self.forbidden_hint(&message);
                Outcome::Fatal(AlpacaError::Forbidden {
                    host,
                    message,
                    hint,
                })
            }
            400 | 404 | 422 => bad_request(status, message),
            s => Outcome::Fatal(AlpacaError::Http {
                status: s,
                host,
                message,
            }),
        }
    }

    /// A 403 on the SIP feed (or one that names it) means the plan lacks the subscription.
    fn forbidden_hint(&self, message: &str) -> String {
        let lower = message.to_ascii_lowercase();
        if self.settings.feed == "sip" || lower.contains("sip") || lower.contains("subscription") {
            " — the SIP feed needs a paid subscription: set data.feed = \"iex\"".to_string()
        } else {
            String::new()
        }
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

fn header_u64(resp: &reqwest::Response, name: &str) -> Option<u64> {
    resp.headers().get(name)?.to_str().ok()?.trim().parse().ok()
}
/// A 400/404/422: an unknown symbol, or a request the server refused, with the parameter it
/// names (when it names one of ours).
fn bad_request(status: StatusCode, message: String) -> Outcome {
    let lower = message.to_ascii_lowercase();
    if lower.contains("invalid symbol") || lower.contains("unknown symbol") {
        let symbol = message.rsplit(':').next().unwrap_or("").trim().to_string();
        return Outcome::Fatal(AlpacaError::UnknownSymbol { symbol, message });
    }
    let param = [
        "page_token",
        "symbols",
        "timeframe",
        "start",
        "end",
        "limit",
        "feed",
        "adjustment",
        "sort",
    ]
    .into_iter()
    .find(|p| lower.contains(p))
    .unwrap_or("(not named by the server)")
    .to_string();
    Outcome::Fatal(AlpacaError::BadRequest {
        status: status.as_u16(),
        param,
        message,
    })
}

fn describe_transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        format!("cannot connect ({e})")
    } else if e.is_body() || e.is_decode() {
        format!("broken response body ({e})")
    } else {
        e.to_string()
    }
}

/// Alpaca's `{"code":…,"message":"…"}`, or the raw text.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct E {
        message: Option<String>,
    }
    serde_json::from_slice::<E>(body)
        .ok()
        .and_then(|e| e.message)
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&body[..body.len().min(300)])
                .trim()
                .to_string()
        })
}
