//! Deterministic client order ids: `qd-<session>-<SYMBOL>-<bar start, epoch s>-<intent><attempt>`,
//! e.g. `qd-3f9a1c07b2-AAPL-1710168300-e1`. The same decision on the same bar always yields the
//! same id, so a retry, a reconnect or a restart can never place a second order for one intent:
//! Alpaca refuses a reused id. At most ~50 characters (Alpaca allows 128).

use crate::broker::types::normalize_symbol;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What an order is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Opens or grows a position.
    Entry,
    /// Shrinks or closes a position.
    Exit,
}

impl Intent {
    fn code(self) -> char {
        match self {
            Intent::Entry => 'e',
            Intent::Exit => 'x',
        }
    }
}

/// The session part of the ids: a short hash of the paper run's id.
pub fn session_tag(run_id: &str) -> String {
    let h = Sha256::digest(run_id.as_bytes());
    h.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

pub fn client_order_id(
    session: &str,
    symbol: &str,
    bar_start: DateTime<Utc>,
    intent: Intent,
    attempt: u32,
) -> String {
    format!(
        "qd-{session}-{}-{}-{}{attempt}",
        normalize_symbol(symbol),
        bar_start.timestamp(),
        intent.code()
    )
}

/// Whether an order id was made by this session (anything else at the broker is EXTERNAL).
pub fn is_ours(session: &str, client_order_id: &str) -> bool {
    client_order_id.starts_with(&format!("qd-{session}-"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ids_are_deterministic_short_and_recognisable() {
        let t = Utc.with_ymd_and_hms(2024, 3, 11, 14, 45, 0).unwrap();
        let s = session_tag("paper-20240311-090000-syna");
        assert_eq!(s.len(), 10);
        let a = client_order_id(&s, "BTC/USD", t, Intent::Entry, 1);
        assert_eq!(a, client_order_id(&s, "btcusd", t, Intent::Entry, 1));
        assert_eq!(a, format!("qd-{s}-BTCUSD-1710168300-e1"));
        assert_ne!(a, client_order_id(&s, "BTC/USD", t, Intent::Exit, 1));
        assert_ne!(a, client_order_id(&s, "BTC/USD", t, Intent::Entry, 2));
        assert!(a.len() <= 128);
        assert!(is_ours(&s, &a));
        assert!(!is_ours(&session_tag("other"), &a));
        assert!(!is_ours(&s, "my-manual-order"));
    }
}
