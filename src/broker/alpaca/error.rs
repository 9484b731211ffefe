//! What can go wrong talking to Alpaca's trading API, typed so the daemon can act on it, each
//! message saying what to do. None of them can hold the secret key: they are built from the
//! host, the key id and the server's own error text only.

use serde::Deserialize;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum BrokerError {
    #[error(
        "refusing the LIVE trading host {url}: quantdeck trades on paper by default. To trade real money, enable live trading explicitly in the config (allow_live) and confirm"
    )]
    LiveHostRefused { url: String },

    #[error("bad trading settings: {message}")]
    Config { message: String },

    #[error(
        "Alpaca rejected the keys (401) at {host} for key id {key_id}: check APCA_API_KEY_ID / APCA_API_SECRET_KEY, and that paper keys go to the paper host and live keys to the live host"
    )]
    Unauthorized { host: String, key_id: String },

    #[error(
        "Alpaca's trading API at {host} answered \"request is not authorized\" for key id {key_id}: these keys cannot trade here. Keys made for market data only cannot trade at all, and paper keys work only on the paper host (live keys only on live). Create paper trading keys in the Alpaca dashboard (Paper Trading → API Keys) and set APCA_API_KEY_ID / APCA_API_SECRET_KEY"
    )]
    NotAuthorizedForTrading { host: String, key_id: String },

    #[error("order rejected: insufficient buying power ({message})")]
    InsufficientBuyingPower { message: String },

    #[error("order rejected as a potential wash trade ({message}){}", existing_order_id.as_ref().map(|id| format!("; the opposite open order is {id}")).unwrap_or_default())]
    WashTrade {
        message: String,
        existing_order_id: Option<String>,
    },

    #[error(
        "client_order_id {client_order_id} was already used: Alpaca keeps the first order with that id (look it up by client id)"
    )]
    DuplicateClientOrderId { client_order_id: String },

    #[error("order rejected (HTTP {status}{}): {message}", code.map(|c| format!(", code {c}")).unwrap_or_default())]
    Rejected {
        status: u16,
        code: Option<u64>,
        message: String,
    },

    #[error("order not sent, it is invalid: {message}")]
    InvalidOrder { message: String },

    #[error("{what}: not found")]
    NotFound { what: String },

    #[error(
        "order {client_order_id} may or may not have been accepted ({reason}): look it up by client_order_id before doing anything else"
    )]
    Uncertain {
        client_order_id: String,
        reason: String,
    },

    #[error("{what}: rate limited by Alpaca (429){}; try again after the reset", reset_in.map(|d| format!(", window resets in {:.1} s", d.as_secs_f64())).unwrap_or_default())]
    RateLimited {
        what: String,
        reset_in: Option<Duration>,
    },

    #[error("{what} failed after {attempts} attempts (retry budget spent); last error: {last}")]
    RetriesExhausted {
        what: String,
        attempts: u32,
        last: String,
    },

    #[error("{what}: {reason}")]
    Transport { what: String, reason: String },

    #[error("{what}: unreadable answer from Alpaca: {reason}")]
    Malformed { what: String, reason: String },

    #[error("{what}: HTTP {status} from {host}: {message}")]
    Http {
        what: String,
        status: u16,
        host: String,
        message: String,
    },

    #[error("trade-updates stream at {host}: {reason}")]
    Stream { host: String, reason: String },
}

impl BrokerError {
    /// Trying the same call again later can succeed (for an order: with the same client id).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            BrokerError::RateLimited { .. }
                | BrokerError::Transport { .. }
                | BrokerError::RetriesExhausted { .. }
        )
    }

    /// The order may exist at Alpaca although no confirmation came back.
    pub fn is_uncertain(&self) -> bool {
        matches!(self, BrokerError::Uncertain { .. })
    }

    /// The caller must look the order up by `client_order_id` before anything else.
    pub fn needs_lookup(&self) -> bool {
        matches!(
            self,
            BrokerError::Uncertain { .. } | BrokerError::DuplicateClientOrderId { .. }
        )
    }

    /// Alpaca refused the keys: no retry, no reconnect loop, tell the user.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            BrokerError::Unauthorized { .. } | BrokerError::NotAuthorizedForTrading { .. }
        )
    }
}

/// Alpaca's error body: `{"code": 40310000, "message": "...", ...}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub code: Option<u64>,
    #[serde(default)]
    pub message: Option<String>,
    /// Some refusals carry their text under `error` instead of `message`.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub existing_order_id: Option<String>,
}

impl ErrorBody {
    pub fn parse(body: &[u8]) -> ErrorBody {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// The message, or the start of the raw body.
    pub fn text(&self, body: &[u8]) -> String {
        self.message
            .clone()
            .or_else(|| self.error.clone())
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&body[..body.len().min(300)])
                    .trim()
                    .to_string()
            })
    }
}

/// The code Alpaca sends (with HTTP 422) for a reused `client_order_id` — and for many other
/// invalid orders too ("asset … is not active", "invalid order type for crypto order", …), so a
/// duplicate is recognised by its message, never by this code alone.
pub const CODE_DUPLICATE_CLIENT_ORDER_ID: u64 = 40010001;
/// Alpaca's code on 403 order refusals (insufficient buying power, and wash-trade refusals too).
pub const CODE_FORBIDDEN: u64 = 40310000;

/// Classifies a final (non-retried) 4xx answer. `client_order_id` is set for order submissions.
pub(crate) fn classify_4xx(
    status: u16,
    body: &[u8],
    what: &str,
    host: &str,
    key_id: &str,
    client_order_id: Option<&str>,
) -> BrokerError {
    let e = ErrorBody::parse(body);
    let message = e.text(body);
    let lower = message.to_ascii_lowercase();
    let not_authorized = lower.contains("not authorized");
    match status {
        401 | 403 if not_authorized => BrokerError::NotAuthorizedForTrading {
            host: host.to_string(),
            key_id: key_id.to_string(),
        },
        401 => BrokerError::Unauthorized {
            host: host.to_string(),
            key_id: key_id.to_string(),
        },
        404 => BrokerError::NotFound {
            what: what.to_string(),
        },
        // Alpaca has answered wash-trade refusals with 403 (code 40310000) and with 422 (42210000).
        _ if lower.contains("wash trade") => BrokerError::WashTrade {
            message,
            existing_order_id: e.existing_order_id,
        },
        403 if lower.contains("buying power") => BrokerError::InsufficientBuyingPower { message },
        _ if is_duplicate_id_message(&lower) => BrokerError::DuplicateClientOrderId {
            client_order_id: client_order_id.unwrap_or("").to_string(),
        },
        _ if client_order_id.is_some() => BrokerError::Rejected {
            status,
            code: e.code,
            message,
        },
        _ => BrokerError::Http {
            what: what.to_string(),
            status,
            host: host.to_string(),
            message,
        },
    }
}

/// "client_order_id must be unique" (also seen spelled "client order id").
fn is_duplicate_id_message(lower: &str) -> bool {
    let squashed: String = lower
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
        .collect();
    squashed.contains("client orderid must be unique")
        || squashed.contains("clientorderid must be unique")
        || squashed.contains("client order id must be unique")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: u16, body: &str) -> BrokerError {
        classify_4xx(
            status,
            body.as_bytes(),
            "submit",
            "paper-api.alpaca.markets",
            "PK1",
            Some("cid-7"),
        )
    }

    #[test]
    fn order_refusals_are_typed() {
        assert!(matches!(
            order(
                403,
                r#"{"buying_power":"0","code":40310000,"cost_basis":"10","message":"insufficient buying power"}"#
            ),
            BrokerError::InsufficientBuyingPower { .. }
        ));
        let w = order(
            403,
            r#"{"code":40310000,"existing_order_id":"abc","message":"potential wash trade detected. use complex orders","reject_reason":"opposite side market/stop order exists"}"#,
        );
        assert_eq!(
            w,
            BrokerError::WashTrade {
                message: "potential wash trade detected. use complex orders".into(),
                existing_order_id: Some("abc".into())
            }
        );
        assert!(w.to_string().contains("abc"));
        assert!(matches!(
            order(
                422,
                r#"{"code":42210000,"message":"potential wash trade detected. use complex orders"}"#
            ),
            BrokerError::WashTrade { .. }
        ));
        assert_eq!(
            order(
                422,
                r#"{"code":40010001,"message":"client_order_id must be unique"}"#
            ),
            BrokerError::DuplicateClientOrderId {
                client_order_id: "cid-7".into()
            }
        );
        assert!(matches!(
            order(422, r#"{"message":"client order id must be unique"}"#),
            BrokerError::DuplicateClientOrderId { .. }
        ));
        // The same code on other refusals is not a duplicate; `error` holds the text there.
        let other = order(
            422,
            r#"{"code":40010001,"error":"invalid order type for crypto order","status":422}"#,
        );
        assert!(matches!(
            other,
            BrokerError::Rejected {
                code: Some(40010001),
                ..
            }
        ));
        assert!(other.to_string().contains("invalid order type"));
        let r = order(
            422,
            r#"{"code":42210000,"message":"sub-penny increment does not fulfill minimum pricing criteria"}"#,
        );
        assert!(matches!(
            r,
            BrokerError::Rejected {
                status: 422,
                code: Some(42210000),
                ..
            }
        ));
        assert!(r.to_string().contains("sub-penny"));
    }

    #[test]
    fn key_problems_say_what_to_do() {
        let e = order(
            401,
            r#"{"code":40110000,"message":"request is not authorized"}"#,
        );
        assert!(matches!(e, BrokerError::NotAuthorizedForTrading { .. }));
        let text = e.to_string();
        assert!(
            text.contains("cannot trade")
                && text.contains("paper trading keys")
                && text.contains("PK1")
        );
        assert!(e.is_auth() && !e.is_retryable());
        assert!(matches!(
            order(401, r#"{"message":"unauthorized."}"#),
            BrokerError::Unauthorized { .. }
        ));
    }

    #[test]
    fn helpers() {
        let u = BrokerError::Uncertain {
            client_order_id: "c".into(),
            reason: "timed out".into(),
        };
        assert!(u.is_uncertain() && u.needs_lookup() && !u.is_retryable());
        assert!(BrokerError::DuplicateClientOrderId {
            client_order_id: "c".into()
        }
        .needs_lookup());
        let rl = BrokerError::RateLimited {
            what: "submit".into(),
            reset_in: Some(Duration::from_millis(1500)),
        };
        assert!(rl.is_retryable());
        assert!(rl.to_string().contains("1.5 s"));
    }
}
