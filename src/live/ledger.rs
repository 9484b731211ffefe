//! What the broker says happened, in the daemon's terms: the latest snapshot of every order of
//! this session (from the submit reply, the trade-updates stream, or a REST look-up — whichever
//! came last), and everything else at the broker marked EXTERNAL. Each model's position and book
//! are *folded* from its orders' fills, so a repeated, late or missed stream message can never
//! double-count or lose a fill: the next snapshot of the order corrects it.

use super::ids::is_ours;
use crate::broker::simulated::f;
use crate::broker::types::{normalize_symbol, Order, OrderStatus, Position, Side};
use crate::sim::{Account, Fill};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct Ledger {
    session: String,
    /// This session's orders by client id.
    ours: BTreeMap<String, Order>,
    /// Everything else seen at the broker, by order id.
    external: BTreeMap<String, Order>,
    /// Orders the broker made for the models (the closing orders of flatten-all), by client id.
    adopted: std::collections::BTreeSet<String>,
}

/// What a new snapshot changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub symbol: String,
    /// Newly filled quantity (signed), the average price of that new part, and the order's
    /// whole filled quantity now.
    pub filled: f64,
    pub price: Option<f64>,
    pub total_filled: f64,
    pub status: OrderStatus,
    pub newly_terminal: bool,
}

fn signed(o: &Order, q: f64) -> f64 {
    if o.side == Side::Sell {
        -q
    } else {
        q
    }
}

impl Ledger {
    pub fn new(session: &str, adopted: &[String]) -> Self {
        Ledger {
            session: session.to_string(),
            adopted: adopted.iter().cloned().collect(),
            ..Default::default()
        }
    }

    /// Counts an order the broker made on the models' behalf (flatten-all's closing orders) as
    /// theirs: its fills move the models' positions.
    pub fn adopt(&mut self, client_order_id: &str) {
        self.adopted.insert(client_order_id.to_string());
        if let Some(o) = self
            .external
            .values()
            .find(|o| o.client_order_id == client_order_id)
            .cloned()
        {
            self.external.remove(&o.id);
            self.ours.insert(o.client_order_id.clone(), o);
        }
    }

    fn is_ours(&self, client_order_id: &str) -> bool {
        is_ours(&self.session, client_order_id) || self.adopted.contains(client_order_id)
    }

    /// Takes the latest snapshot of an order. Returns what changed for one of ours (`None` for
    /// external orders and for snapshots older than what is known).
    pub fn absorb(&mut self, o: Order) -> Option<Change> {
        if !self.is_ours(&o.client_order_id) {
            self.external.insert(o.id.clone(), o);
            return None;
        }
        let before = self.ours.get(&o.client_order_id);
        // Never go backwards: a late stream message must not undo a fill already seen.
        if before.is_some_and(|b| {
            b.filled_qty > o.filled_qty || (b.status.is_terminal() && !o.status.is_terminal())
        }) {
            return None;
        }
        let was_filled = before.map_or(0.0, |b| f(b.filled_qty));
        let was_value = before.map_or(0.0, |b| {
            f(b.filled_qty) * b.filled_avg_price.map(f).unwrap_or(0.0)
        });
        let was_terminal = before.is_some_and(|b| b.status.is_terminal());
        let now_filled = f(o.filled_qty);
        let new_part = now_filled - was_filled;
        // The new part's own price: the order's average covers every fill so far.
        let price = o.filled_avg_price.map(f).map(|avg| {
            if new_part > 0.0 && was_filled > 0.0 {
                (now_filled * avg - was_value) / new_part
            } else {
                avg
            }
        });
        let change = Change {
            symbol: o.symbol.clone(),
            filled: signed(&o, new_part),
            price,
            total_filled: now_filled,
            status: o.status.clone(),
            newly_terminal: o.status.is_terminal() && !was_terminal,
        };
        self.ours.insert(o.client_order_id.clone(), o);
        Some(change)
    }

    pub fn ours(&self) -> impl Iterator<Item = &Order> {
        self.ours.values()
    }

    pub fn get(&self, client_order_id: &str) -> Option<&Order> {
        self.ours.get(client_order_id)
    }

    pub fn open(&self) -> impl Iterator<Item = &Order> {
        self.ours.values().filter(|o| o.status.is_open())
    }

    pub fn external_open(&self) -> impl Iterator<Item = &Order> {
        self.external.values().filter(|o| o.status.is_open())
    }

    /// The model's position: the sum of its orders' fills (signed).
    pub fn position(&self, symbol: &str) -> f64 {
        let key = normalize_symbol(symbol);
        self.ours
            .values()
            .filter(|o| normalize_symbol(&o.symbol) == key)
            .map(|o| signed(o, f(o.filled_qty)))
            .sum()
    }

    /// The model's book: its fills applied in order to an account started with `initial`,
    /// `commission` charged per filled order (the simulated broker's; Alpaca charges none).
    pub fn book(&self, symbol: &str, initial: &Account, commission: f64) -> Account {
        let key = normalize_symbol(symbol);
        let mut fills: Vec<&Order> = self
            .ours
            .values()
            .filter(|o| {
                normalize_symbol(&o.symbol) == key && o.filled_qty > rust_decimal::Decimal::ZERO
            })
            .collect();
        fills.sort_by_key(|o| (o.filled_at.or(o.submitted_at), o.client_order_id.clone()));
        let mut book = initial.clone();
        for o in fills {
            book.apply_fill(&Fill {
                qty: signed(o, f(o.filled_qty)),
                price: o.filled_avg_price.map(f).unwrap_or(0.0),
                cost: commission,
            });
        }
        book
    }

    /// Value of the open buy orders that are not the session's (they take buying power too).
    pub fn external_open_buy_notional(&self, price_of: impl Fn(&str) -> Option<f64>) -> f64 {
        self.external
            .values()
            .filter(|o| o.status.is_open() && o.side == Side::Buy)
            .map(|o| {
                let left = f(o.qty.unwrap_or_default() - o.filled_qty).max(0.0);
                let px = o
                    .limit_price
                    .map(f)
                    .or_else(|| price_of(&o.symbol))
                    .unwrap_or(0.0);
                left * px
            })
            .sum()
    }

    /// The session's position per normalized symbol: its orders' fills, signed.
    pub fn positions(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for o in self.ours.values() {
            *out.entry(normalize_symbol(&o.symbol)).or_insert(0.0) += signed(o, f(o.filled_qty));
        }
        out
    }

    /// Positions at the broker that this session did not make (whole symbols, or the part of a
    /// model's symbol beyond the model's own fills): symbol and signed quantity.
    pub fn external_positions(&self, positions: &[Position]) -> Vec<(String, f64)> {
        positions
            .iter()
            .filter_map(|p| {
                let extra = f(p.qty) - self.position(&p.symbol);
                (extra.abs() > 1e-9).then(|| (p.symbol.clone(), extra))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::types::{BrokerAssetClass, PositionSide, TimeInForce};
    use rust_decimal::Decimal;

    fn order(
        id: &str,
        side: Side,
        qty: &str,
        filled: &str,
        px: Option<&str>,
        status: OrderStatus,
    ) -> Order {
        let (crypto, gtc) = (BrokerAssetClass::Crypto, TimeInForce::Gtc);
        Order {
            filled_qty: filled.parse().unwrap(),
            filled_avg_price: px.map(|p| p.parse().unwrap()),
            ..Order::market(
                id,
                "BTC/USD",
                crypto,
                side,
                gtc,
                Some(qty.parse().unwrap()),
                status,
            )
        }
    }

    #[test]
    fn fills_fold_once_whatever_order_the_snapshots_come_in() {
        let mut l = Ledger::new("s1", &[]);
        let id = "qd-s1-BTCUSD-1-e1";
        let part = || {
            order(
                id,
                Side::Buy,
                "2",
                "0.5",
                Some("100"),
                OrderStatus::PartiallyFilled,
            )
        };
        let c = l.absorb(part()).unwrap();
        assert_eq!((c.filled, c.price), (0.5, Some(100.0)));
        // The same snapshot again (stream + REST): nothing new.
        assert_eq!(l.absorb(part()).unwrap().filled, 0.0);
        let full = order(id, Side::Buy, "2", "2", Some("101"), OrderStatus::Filled);
        let c = l.absorb(full).unwrap();
        assert_eq!(
            (c.filled, c.newly_terminal, c.total_filled),
            (1.5, true, 2.0)
        );
        // The new part's own price: 2 at 101 on average, 0.5 of them at 100 before.
        assert!((c.price.unwrap() - (202.0 - 50.0) / 1.5).abs() < 1e-9);
        // A late partial-fill message must not go back.
        assert!(l.absorb(part()).is_none());
        assert_eq!(l.position("BTCUSD"), 2.0);
        let sell = "qd-s1-BTCUSD-2-x1";
        l.absorb(order(
            sell,
            Side::Sell,
            "0.5",
            "0.5",
            Some("110"),
            OrderStatus::Filled,
        ));
        assert_eq!(l.position("BTC/USD"), 1.5);
        let book = l.book(
            "BTC/USD",
            &Account::new(&crate::sim::Rules {
                initial_cash: 1000.0,
                full_position: 0.1,
                slippage: 0.0,
                commission: 0.0,
                allow_short: false,
            }),
            0.0,
        );
        assert!((book.qty - 1.5).abs() < 1e-12);
        assert!((book.cash - (1000.0 - 202.0 + 55.0)).abs() < 1e-9);
    }

    #[test]
    fn someone_elses_orders_and_quantities_are_external() {
        let mut l = Ledger::new("s1", &[]);
        let id = "qd-s1-BTCUSD-1-e1";
        l.absorb(order(
            id,
            Side::Buy,
            "1.5",
            "1.5",
            Some("100"),
            OrderStatus::Filled,
        ));
        assert_eq!(l.positions().get("BTCUSD"), Some(&1.5));
        assert!(l
            .absorb(order(
                "manual-1",
                Side::Buy,
                "1",
                "1",
                Some("1"),
                OrderStatus::Filled
            ))
            .is_none());
        let pos = Position {
            symbol: "BTCUSD".into(),
            asset_class: BrokerAssetClass::Crypto,
            qty: Decimal::new(25, 1),
            avg_entry_price: Decimal::ONE,
            current_price: None,
            market_value: None,
            unrealized_pl: None,
            side: PositionSide::Long,
            qty_available: None,
        };
        assert_eq!(
            l.external_positions(&[pos]),
            vec![("BTCUSD".to_string(), 1.0)]
        );
    }
}
