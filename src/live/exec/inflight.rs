//! Orders in flight: everything the session asked for that has not reached a final state —
//! journaled and being sent, accepted and working, partly filled, or of unknown outcome (a
//! timeout, a 5xx). Sizing and exposure count them as held (`sim::decide`'s `in_flight`, the
//! gates' other exposure and buying power), so an order that fills bars later is never ordered
//! again on top of itself. Only [`super::Execution`] changes this.

use crate::broker::simulated::f;
use crate::broker::types::{normalize_symbol, Order, Side};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Normalized symbol.
    pub symbol: String,
    pub side: Side,
    /// Quantity still to fill.
    pub left: f64,
    pub limit: Option<f64>,
    /// The broker confirmed it (false: the submit's outcome is unknown).
    pub known: bool,
    /// When it was last heard of (sent, a stream message, a look-up).
    pub heard: DateTime<Utc>,
}

impl Pending {
    fn signed(&self) -> f64 {
        if self.side == Side::Sell {
            -self.left
        } else {
            self.left
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InFlight {
    by_id: BTreeMap<String, Pending>,
}

impl InFlight {
    /// About to send (or found unsettled in the journal): counted until the broker says more.
    pub fn intent(&mut self, id: &str, symbol: &str, signed_qty: f64, now: DateTime<Utc>) {
        self.by_id.insert(
            id.to_string(),
            Pending {
                symbol: normalize_symbol(symbol),
                side: if signed_qty < 0.0 {
                    Side::Sell
                } else {
                    Side::Buy
                },
                left: signed_qty.abs(),
                limit: None,
                known: false,
                heard: now,
            },
        );
    }

    /// The broker's snapshot of one of the session's orders.
    pub fn update(&mut self, o: &Order, now: DateTime<Utc>) {
        if o.status.is_terminal() {
            self.by_id.remove(&o.client_order_id);
            return;
        }
        let left = (f(o.qty.unwrap_or_default()) - f(o.filled_qty)).max(0.0);
        self.by_id.insert(
            o.client_order_id.clone(),
            Pending {
                symbol: normalize_symbol(&o.symbol),
                side: o.side.clone(),
                left,
                limit: o.limit_price.map(f),
                known: true,
                heard: now,
            },
        );
    }

    /// Refused, or never placed: nothing of it will fill.
    pub fn drop(&mut self, id: &str) {
        self.by_id.remove(id);
    }

    pub fn heard(&mut self, id: &str, now: DateTime<Utc>) {
        if let Some(p) = self.by_id.get_mut(id) {
            p.heard = now;
        }
    }

    pub fn get(&self, id: &str) -> Option<&Pending> {
        self.by_id.get(id)
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn clear(&mut self) {
        self.by_id.clear();
    }

    /// Net units of `symbol` on their way (signed).
    pub fn signed(&self, symbol: &str) -> f64 {
        let key = normalize_symbol(symbol);
        self.by_id
            .values()
            .filter(|p| p.symbol == key)
            .map(Pending::signed)
            .sum()
    }

    /// Whether anything of `symbol` is in flight.
    pub fn busy(&self, symbol: &str) -> bool {
        let key = normalize_symbol(symbol);
        self.by_id.values().any(|p| p.symbol == key)
    }

    /// Normalized symbols with something in flight.
    pub fn busy_symbols(&self) -> std::collections::BTreeSet<String> {
        self.by_id.values().map(|p| p.symbol.clone()).collect()
    }

    /// Gross value in flight outside `symbol` (the gates' other exposure).
    pub fn exposure_except(&self, symbol: &str, price: impl Fn(&str) -> Option<f64>) -> f64 {
        let key = normalize_symbol(symbol);
        self.by_id
            .values()
            .filter(|p| p.symbol != key)
            .map(|p| p.left * p.limit.or_else(|| price(&p.symbol)).unwrap_or(0.0))
            .sum()
    }

    /// Value of the buys in flight: what they will take from buying power.
    pub fn buy_notional(&self, price: impl Fn(&str) -> Option<f64>) -> f64 {
        self.by_id
            .values()
            .filter(|p| p.side == Side::Buy)
            .map(|p| p.left * p.limit.or_else(|| price(&p.symbol)).unwrap_or(0.0))
            .sum()
    }

    /// Orders silent for `timeout`, and submits of unknown outcome: to look up over REST.
    pub fn silent(&self, now: DateTime<Utc>, timeout: Duration) -> Vec<String> {
        self.by_id
            .iter()
            .filter(|(_, p)| now - p.heard >= timeout)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Submits whose outcome is unknown.
    pub fn unknown(&self) -> impl Iterator<Item = (&String, &Pending)> {
        self.by_id.iter().filter(|(_, p)| !p.known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::types::{BrokerAssetClass, OrderStatus, TimeInForce};
    use chrono::TimeZone;

    fn order(cid: &str, side: Side, qty: &str, filled: &str, status: OrderStatus) -> Order {
        let (crypto, gtc) = (BrokerAssetClass::Crypto, TimeInForce::Gtc);
        Order {
            filled_qty: filled.parse().unwrap_or_default(),
            ..Order::market(cid, "BTC/USD", crypto, side, gtc, qty.parse().ok(), status)
        }
    }

    #[test]
    fn counts_what_is_left_until_the_order_ends() {
        let t = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
        let mut f = InFlight::default();
        f.intent("a", "BTC/USD", 2.0, t);
        assert_eq!(f.signed("BTCUSD"), 2.0);
        assert_eq!(f.unknown().count(), 1);
        f.update(
            &order("a", Side::Buy, "2", "0.5", OrderStatus::PartiallyFilled),
            t,
        );
        assert_eq!(f.signed("BTC/USD"), 1.5);
        assert_eq!(f.unknown().count(), 0);
        f.intent("b", "ETH/USD", -1.0, t);
        let px = |_: &str| Some(10.0);
        assert_eq!(f.exposure_except("BTC/USD", px), 10.0);
        assert_eq!(f.buy_notional(px), 15.0);
        assert_eq!(
            f.silent(t + Duration::seconds(30), Duration::seconds(30))
                .len(),
            2
        );
        f.heard("a", t + Duration::seconds(20));
        assert_eq!(
            f.silent(t + Duration::seconds(30), Duration::seconds(30)),
            vec!["b"]
        );
        f.update(&order("a", Side::Buy, "2", "2", OrderStatus::Filled), t);
        f.drop("b");
        assert!(f.is_empty() && !f.busy("BTC/USD"));
    }
}
