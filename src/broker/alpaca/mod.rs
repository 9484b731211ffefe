//! Alpaca's trading API: a typed REST client ([`TradingClient`]) and the trade-updates stream
//! ([`spawn_trade_updates`]). Paper is the default; the live host is refused unless the settings
//! say `allow_live`.

mod error;
mod paging;
mod rest;
mod stream;

pub use error::{BrokerError, CODE_DUPLICATE_CLIENT_ORDER_ID, CODE_FORBIDDEN};
pub use paging::{Direction, OrderQueryStatus, OrdersQuery};
pub use rest::TradingClient;
pub use stream::{spawn_trade_updates, TradeStream, TradeStreamMsg};

use std::time::Duration;

pub const PAPER_TRADING_URL: &str = "https://paper-api.alpaca.markets";
pub const LIVE_TRADING_URL: &str = "https://api.alpaca.markets";
pub const PAPER_STREAM_URL: &str = "wss://paper-api.alpaca.markets/stream";
const LIVE_HOST: &str = "api.alpaca.markets";

#[derive(Debug, Clone, PartialEq)]
pub struct TradingSettings {
    /// Scheme and host (a trailing `/` or `/v2` is ignored).
    pub base_url: String,
    /// The trade-updates websocket, e.g. `wss://paper-api.alpaca.markets/stream`.
    pub stream_url: String,
    /// Alpaca allows 200 requests per minute per account.
    pub rate_per_minute: u32,
    /// Extra attempts for reads and cancels (never for order submission).
    pub max_retries: u32,
    /// First retry / reconnect delay; doubles with jitter.
    pub retry_base: Duration,
    /// Per-request limit, and the limit for each stream handshake step.
    pub timeout: Duration,
    /// Permit the live (real-money) host.
    pub allow_live: bool,
}

impl TradingSettings {
    pub fn paper_default() -> Self {
        TradingSettings {
            base_url: PAPER_TRADING_URL.to_string(),
            stream_url: PAPER_STREAM_URL.to_string(),
            rate_per_minute: 200,
            max_retries: 4,
            retry_base: Duration::from_millis(500),
            timeout: Duration::from_secs(10),
            allow_live: false,
        }
    }

    /// Paper defaults pointed at `base_url`, with the stream URL derived from it (`http` →
    /// `ws`, `https` → `wss`, plus `/stream`); how tests aim the client at a local fake.
    pub fn for_base_url(base_url: &str) -> Self {
        TradingSettings {
            base_url: normalize_base(base_url),
            stream_url: stream_url_for(base_url),
            ..Self::paper_default()
        }
    }

    /// Paper defaults, with hosts from `APCA_API_BASE_URL` and `APCA_API_STREAM_URL` when set.
    pub fn from_env(allow_live: bool) -> Self {
        Self::from_lookup(allow_live, |k| std::env::var(k).ok())
    }

    /// [`TradingSettings::from_env`] over any variable lookup.
    pub fn from_lookup(allow_live: bool, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut s = match get("APCA_API_BASE_URL") {
            Some(base) => Self::for_base_url(&base),
            None => Self::paper_default(),
        };
        if let Some(stream) = get("APCA_API_STREAM_URL") {
            s.stream_url = stream;
        }
        s.allow_live = allow_live;
        s
    }

    /// Refuses the live host (REST or stream) unless `allow_live`, and URLs that do not parse.
    pub fn check(&self) -> Result<(), BrokerError> {
        for url in [&self.base_url, &self.stream_url] {
            let parsed = reqwest::Url::parse(url).map_err(|e| BrokerError::Config {
                message: format!("{url:?} is not a URL: {e}"),
            })?;
            if parsed.host_str() == Some(LIVE_HOST) && !self.allow_live {
                return Err(BrokerError::LiveHostRefused {
                    url: url.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// `https://host/v2/` → `https://host`.
fn normalize_base(url: &str) -> String {
    let t = url.trim().trim_end_matches('/');
    t.strip_suffix("/v2").unwrap_or(t).to_string()
}

/// The trade-updates websocket that goes with a REST base URL.
pub fn stream_url_for(base_url: &str) -> String {
    let base = normalize_base(base_url);
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base
    };
    format!("{ws}/stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_host_is_refused_unless_allowed() {
        for url in [
            "https://api.alpaca.markets",
            "https://api.alpaca.markets/",
            "https://api.alpaca.markets/v2",
            "HTTPS://API.ALPACA.MARKETS/v2/",
        ] {
            let s = TradingSettings::for_base_url(url);
            let e = s.check().unwrap_err();
            assert!(matches!(e, BrokerError::LiveHostRefused { .. }), "{url}");
            assert!(e.to_string().contains("paper") && e.to_string().contains("allow_live"));
            let allowed = TradingSettings {
                allow_live: true,
                ..s
            };
            assert!(allowed.check().is_ok(), "{url}");
        }
        // A live stream behind a paper REST host is refused too.
        let mixed = TradingSettings {
            stream_url: "wss://api.alpaca.markets/stream".into(),
            ..TradingSettings::paper_default()
        };
        assert!(mixed.check().is_err());
        assert!(TradingSettings::paper_default().check().is_ok());
        let bad = TradingSettings::for_base_url("not a url");
        assert!(matches!(bad.check(), Err(BrokerError::Config { .. })));
    }

    #[test]
    fn env_overrides_and_derived_stream() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let s = TradingSettings::from_lookup(false, env(&[]));
        assert_eq!(s, TradingSettings::paper_default());
        let s = TradingSettings::from_lookup(
            false,
            env(&[("APCA_API_BASE_URL", "http://127.0.0.1:4000/v2")]),
        );
        assert_eq!(s.base_url, "http://127.0.0.1:4000");
        assert_eq!(s.stream_url, "ws://127.0.0.1:4000/stream");
        let s = TradingSettings::from_lookup(
            true,
            env(&[
                ("APCA_API_BASE_URL", "https://paper-api.alpaca.markets/"),
                ("APCA_API_STREAM_URL", "ws://127.0.0.1:5000/stream"),
            ]),
        );
        assert_eq!(s.stream_url, "ws://127.0.0.1:5000/stream");
        assert!(s.allow_live);
        assert_eq!(
            stream_url_for("https://paper-api.alpaca.markets"),
            PAPER_STREAM_URL
        );
    }
}
