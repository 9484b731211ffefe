//! Typed broker data as Alpaca's trading API sends it: amounts decoded into exact decimals at the
//! boundary, statuses and events as open enums (an unknown value is kept, never an error), and
//! orders serialised exactly as `POST /v2/orders` wants them.

pub use super::enums::{
    BrokerAssetClass, OrderStatus, OrderType, PositionSide, Side, TimeInForce, TradeEvent,
};
use super::wire::{decimal, decimal_or_zero, null_default, opt_decimal};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub status: String,
    #[serde(deserialize_with = "decimal")]
    pub cash: Decimal,
    #[serde(deserialize_with = "decimal")]
    pub equity: Decimal,
    #[serde(default, deserialize_with = "opt_decimal")]
    pub last_equity: Option<Decimal>,
    #[serde(deserialize_with = "decimal")]
    pub buying_power: Decimal,
    #[serde(default, deserialize_with = "null_default")]
    pub trading_blocked: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub account_blocked: bool,
    /// Alpaca stopped sending this (and `daytrade_count`) in July 2026 (FINRA intraday-margin
    /// change, per alpaca-py's model notes): `None` then.
    #[serde(default)]
    pub pattern_day_trader: Option<bool>,
    #[serde(default)]
    pub daytrade_count: Option<u64>,
    #[serde(default)]
    pub currency: Option<String>,
}

/// An open position. `qty` is signed: negative for a short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "WirePosition")]
pub struct Position {
    pub symbol: String,
    pub asset_class: BrokerAssetClass,
    pub qty: Decimal,
    pub avg_entry_price: Decimal,
    pub current_price: Option<Decimal>,
    pub market_value: Option<Decimal>,
    pub unrealized_pl: Option<Decimal>,
    pub side: PositionSide,
    /// Quantity not held by open orders (what a sell can still use).
    pub qty_available: Option<Decimal>,
}

#[derive(Deserialize)]
struct WirePosition {
    symbol: String,
    #[serde(default, deserialize_with = "null_default")]
    asset_class: BrokerAssetClass,
    #[serde(deserialize_with = "decimal")]
    qty: Decimal,
    #[serde(deserialize_with = "decimal")]
    avg_entry_price: Decimal,
    #[serde(default, deserialize_with = "opt_decimal")]
    current_price: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_decimal")]
    market_value: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_decimal")]
    unrealized_pl: Option<Decimal>,
    side: PositionSide,
    #[serde(default, deserialize_with = "opt_decimal")]
    qty_available: Option<Decimal>,
}

impl From<WirePosition> for Position {
    fn from(w: WirePosition) -> Self {
        // Alpaca signs short quantities; should a reply ever carry a bare magnitude with
        // side=short, the sign still comes out right.
        let qty = if w.side == PositionSide::Short && w.qty > Decimal::ZERO {
            -w.qty
        } else {
            w.qty
        };
        Position {
            symbol: w.symbol,
            asset_class: w.asset_class,
            qty,
            avg_entry_price: w.avg_entry_price,
            current_price: w.current_price,
            market_value: w.market_value,
            unrealized_pl: w.unrealized_pl,
            side: w.side,
            qty_available: w.qty_available,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub client_order_id: String,
    /// Empty for multi-leg option orders (their legs carry the symbols).
    #[serde(default, deserialize_with = "null_default")]
    pub symbol: String,
    #[serde(default, deserialize_with = "null_default")]
    pub asset_class: BrokerAssetClass,
    #[serde(default, deserialize_with = "null_default")]
    pub side: Side,
    #[serde(rename = "type", default, deserialize_with = "null_default")]
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    #[serde(default, deserialize_with = "opt_decimal")]
    pub qty: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_decimal")]
    pub notional: Option<Decimal>,
    /// Zero when Alpaca sent none.
    #[serde(default, deserialize_with = "decimal_or_zero")]
    pub filled_qty: Decimal,
    #[serde(default, deserialize_with = "opt_decimal")]
    pub filled_avg_price: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_decimal")]
    pub limit_price: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_decimal")]
    pub stop_price: Option<Decimal>,
    pub status: OrderStatus,
    #[serde(default, deserialize_with = "null_default")]
    pub extended_hours: bool,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub submitted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub filled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub canceled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub expired_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub failed_at: Option<DateTime<Utc>>,
}

impl Order {
    /// A market order for `qty` with nothing filled and no timestamps: the base the unit tests
    /// of the money paths build their broker snapshots on (`Order { filled_qty, ..base }`).
    pub fn market(
        client_order_id: &str,
        symbol: &str,
        asset_class: BrokerAssetClass,
        side: Side,
        time_in_force: TimeInForce,
        qty: Option<Decimal>,
        status: OrderStatus,
    ) -> Order {
        Order {
            id: format!("o-{client_order_id}"),
            client_order_id: client_order_id.into(),
            symbol: symbol.into(),
            asset_class,
            side,
            order_type: OrderType::Market,
            time_in_force,
            qty,
            notional: None,
            filled_qty: Decimal::ZERO,
            filled_avg_price: None,
            limit_price: None,
            stop_price: None,
            status,
            extended_hours: false,
            created_at: None,
            updated_at: None,
            submitted_at: None,
            filled_at: None,
            canceled_at: None,
            expired_at: None,
            failed_at: None,
        }
    }

    /// The time Alpaca pages and filters orders by (`after`/`until` compare the submission time).
    pub fn listed_at(&self) -> Option<DateTime<Utc>> {
        self.submitted_at.or(self.created_at)
    }
}

/// One message of the `trade_updates` stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TradeUpdate {
    pub event: TradeEvent,
    pub order: Order,
    /// Fill price of this execution (fills only).
    #[serde(default, deserialize_with = "opt_decimal")]
    pub price: Option<Decimal>,
    /// Quantity of this execution (fills only).
    #[serde(default, deserialize_with = "opt_decimal")]
    pub qty: Option<Decimal>,
    /// The position after this execution (signed).
    #[serde(default, deserialize_with = "opt_decimal")]
    pub position_qty: Option<Decimal>,
    #[serde(default)]
    pub execution_id: Option<String>,
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    pub timestamp: DateTime<Utc>,
    pub is_open: bool,
    pub next_open: DateTime<Utc>,
    pub next_close: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    pub symbol: String,
    #[serde(rename = "class", default, deserialize_with = "null_default")]
    pub class: BrokerAssetClass,
    #[serde(default, deserialize_with = "null_default")]
    pub exchange: String,
    #[serde(default, deserialize_with = "null_default")]
    pub status: String,
    #[serde(default, deserialize_with = "null_default")]
    pub tradable: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub fractionable: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub shortable: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub easy_to_borrow: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub marginable: bool,
    /// Crypto assets carry the three increments; equities usually do not.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub min_order_size: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_decimal")]
    pub min_trade_increment: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_decimal")]
    pub price_increment: Option<Decimal>,
}

/// An order to send, serialised exactly as `POST /v2/orders` wants it: decimals as strings,
/// absent fields omitted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewOrder {
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qty: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notional: Option<Decimal>,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<Decimal>,
    pub extended_hours: bool,
}

/// Alpaca's limit on `client_order_id`.
pub const MAX_CLIENT_ORDER_ID: usize = 128;

impl NewOrder {
    /// A market order for `qty` (day for equities; crypto needs `gtc` or `ioc`, set it after).
    pub fn market(client_order_id: &str, symbol: &str, side: Side, qty: Decimal) -> Self {
        NewOrder {
            client_order_id: client_order_id.to_string(),
            symbol: symbol.to_string(),
            side,
            qty: Some(qty),
            notional: None,
            order_type: OrderType::Market,
            time_in_force: TimeInForce::Day,
            limit_price: None,
            extended_hours: false,
        }
    }

    /// A limit order for `qty` at `limit_price`.
    pub fn limit(
        client_order_id: &str,
        symbol: &str,
        side: Side,
        qty: Decimal,
        limit_price: Decimal,
    ) -> Self {
        NewOrder {
            order_type: OrderType::Limit,
            limit_price: Some(limit_price),
            ..NewOrder::market(client_order_id, symbol, side, qty)
        }
    }

    /// The checks Alpaca would reject anyway, made before anything is sent.
    pub fn validate(&self) -> Result<(), String> {
        let id = &self.client_order_id;
        if id.is_empty() || id.len() > MAX_CLIENT_ORDER_ID {
            return Err(format!(
                "client_order_id must be 1 to {MAX_CLIENT_ORDER_ID} characters, got {}",
                id.len()
            ));
        }
        if self.symbol.trim().is_empty() {
            return Err(format!("order {id}: empty symbol"));
        }
        match (self.qty, self.notional) {
            (Some(_), Some(_)) => {
                return Err(format!("order {id}: give qty or notional, not both"))
            }
            (None, None) => return Err(format!("order {id}: give qty or notional")),
            (Some(q), None) | (None, Some(q)) if q <= Decimal::ZERO => {
                return Err(format!("order {id}: amount must be positive, got {q}"))
            }
            _ => {}
        }
        let limit_like = matches!(self.order_type, OrderType::Limit | OrderType::StopLimit);
        if limit_like != self.limit_price.is_some() {
            return Err(format!(
                "order {id}: limit_price goes with limit and stop_limit orders only"
            ));
        }
        if matches!(self.side, Side::Other(_)) || matches!(self.order_type, OrderType::Other(_)) {
            return Err(format!("order {id}: unknown side or order type"));
        }
        Ok(())
    }
}

/// The error half of a multi-status row (`{"code":…,"message":…}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowError {
    #[serde(default)]
    pub code: Option<u64>,
    #[serde(default)]
    pub message: String,
}

/// One row of `DELETE /v2/orders` (207): the order id, the HTTP status of its cancel, and the
/// body (an order on success when Alpaca sends one, an error otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelRow {
    pub order_id: String,
    pub status: u16,
    pub order: Option<Order>,
    pub error: Option<RowError>,
}

/// One row of `DELETE /v2/positions` (207): the closing order on success, an error otherwise
/// (e.g. 403 "insufficient qty available" while shares are held for orders).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosePositionRow {
    pub symbol: String,
    pub status: u16,
    pub order: Option<Order>,
    pub error: Option<RowError>,
}

impl CancelRow {
    pub fn is_ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl ClosePositionRow {
    pub fn is_ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A row body is an order (success) or an error object; anything else is kept as an error text.
pub(crate) fn split_row_body(body: Option<serde_json::Value>) -> (Option<Order>, Option<RowError>) {
    match body {
        None | Some(serde_json::Value::Null) => (None, None),
        Some(v) => match serde_json::from_value::<Order>(v.clone()) {
            Ok(o) => (Some(o), None),
            Err(_) => match serde_json::from_value::<RowError>(v.clone()) {
                Ok(e) => (None, Some(e)),
                Err(_) => (
                    None,
                    Some(RowError {
                        code: None,
                        message: v.to_string(),
                    }),
                ),
            },
        },
    }
}

/// One name per instrument: `BTC/USD`, `BTCUSD` and `btc/usd` all give `BTCUSD` (Alpaca names a
/// crypto position `BTCUSD` but its orders and bars `BTC/USD`); equities are upper-cased.
pub fn normalize_symbol(s: &str) -> String {
    s.trim()
        .chars()
        .filter(|c| *c != '/' && !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    const ORDER: &str = r#"{
        "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
        "client_order_id": "qd-run1-AAPL-1",
        "created_at": "2021-03-16T18:38:01.942282Z",
        "updated_at": "2021-03-16T18:38:01.942282Z",
        "submitted_at": "2021-03-16T18:38:01.937734Z",
        "filled_at": null, "expired_at": null, "canceled_at": null, "failed_at": null,
        "replaced_at": null, "replaced_by": null, "replaces": null,
        "asset_id": "904837e3-3b76-47ec-b432-046db621571b",
        "symbol": "AAPL", "asset_class": "us_equity", "notional": null,
        "qty": 1, "filled_qty": "0", "filled_avg_price": null,
        "order_class": "simple", "order_type": "market", "type": "market",
        "side": "buy", "time_in_force": "day", "limit_price": null, "stop_price": null,
        "status": "accepted", "extended_hours": false, "legs": null,
        "trail_percent": null, "trail_price": null, "hwm": null
    }"#;

    #[test]
    fn order_decodes_with_numeric_qty_and_unknown_fields() {
        let o: Order = serde_json::from_str(ORDER).unwrap();
        assert_eq!(o.qty, Some(dec("1")));
        assert_eq!(o.filled_qty, Decimal::ZERO);
        assert_eq!(o.status, OrderStatus::Accepted);
        assert_eq!(o.order_type, OrderType::Market);
        assert_eq!(o.asset_class, BrokerAssetClass::UsEquity);
        assert_eq!(
            o.listed_at().unwrap().to_rfc3339(),
            "2021-03-16T18:38:01.937734+00:00"
        );
        // Round trip through our own serialisation (journals and events store orders).
        let back: Order = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(back, o);
    }

    #[test]
    fn multi_leg_order_with_empty_fields_still_decodes() {
        let mleg = ORDER
            .replace(r#""symbol": "AAPL""#, r#""symbol": """#)
            .replace(r#""side": "buy""#, r#""side": """#)
            .replace(r#""type": "market""#, r#""type": null"#);
        let o: Order = serde_json::from_str(&mleg).unwrap();
        assert_eq!(o.symbol, "");
        assert_eq!(o.side, Side::Other(String::new()));
        assert_eq!(o.order_type, OrderType::Other(String::new()));
    }

    #[test]
    fn short_position_qty_is_negative() {
        let p: Position = serde_json::from_str(
            r#"{"symbol":"TSLA","asset_class":"us_equity","qty":"-3","avg_entry_price":"200.5",
                "side":"short","market_value":"-600.30","current_price":"200.10","unrealized_pl":"1.20",
                "cost_basis":"-601.5","exchange":"NASDAQ","asset_id":"x"}"#,
        )
        .unwrap();
        assert_eq!(p.qty, dec("-3"));
        assert_eq!(p.market_value, Some(dec("-600.30")));
        let bare: Position = serde_json::from_str(
            r#"{"symbol":"TSLA","asset_class":"us_equity","qty":"3","avg_entry_price":"1","side":"short"}"#,
        )
        .unwrap();
        assert_eq!(bare.qty, dec("-3"));
        let back: Position = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn clock_with_offsets_becomes_utc() {
        let c: Clock = serde_json::from_str(
            r#"{"timestamp":"2024-03-04T10:15:02.123456-05:00","is_open":true,
                "next_open":"2024-03-05T09:30:00-05:00","next_close":"2024-03-04T16:00:00-05:00"}"#,
        )
        .unwrap();
        assert_eq!(c.next_close.to_rfc3339(), "2024-03-04T21:00:00+00:00");
        assert!(c.is_open);
    }

    #[test]
    fn new_order_serialises_as_alpaca_wants() {
        let o = NewOrder::limit("cid-1", "AAPL", Side::Buy, dec("2.5"), dec("187.10"));
        let v: serde_json::Value = serde_json::to_value(&o).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"client_order_id":"cid-1","symbol":"AAPL","side":"buy","qty":"2.5",
                "type":"limit","time_in_force":"day","limit_price":"187.10","extended_hours":false})
        );
        let mut n = NewOrder::market("cid-2", "BTC/USD", Side::Sell, dec("1"));
        n.qty = None;
        n.notional = Some(dec("25"));
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["notional"], "25");
        assert!(v.get("qty").is_none() && v.get("limit_price").is_none());
        assert!(n.validate().is_ok());
    }

    #[test]
    fn new_order_validation() {
        let ok = NewOrder::market("a", "AAPL", Side::Buy, dec("1"));
        assert!(ok.validate().is_ok());
        let mut long_id = ok.clone();
        long_id.client_order_id = "x".repeat(129);
        assert!(long_id.validate().unwrap_err().contains("128"));
        let mut both = ok.clone();
        both.notional = Some(dec("5"));
        assert!(both.validate().unwrap_err().contains("not both"));
        let mut zero = ok.clone();
        zero.qty = Some(Decimal::ZERO);
        assert!(zero.validate().unwrap_err().contains("positive"));
        let mut limit_no_price = ok.clone();
        limit_no_price.order_type = OrderType::Limit;
        assert!(limit_no_price.validate().is_err());
    }

    #[test]
    fn symbols_normalise_across_spellings() {
        assert_eq!(normalize_symbol("BTC/USD"), normalize_symbol("BTCUSD"));
        assert_eq!(normalize_symbol("btc/usd"), "BTCUSD");
        assert_eq!(normalize_symbol(" aapl "), "AAPL");
        assert_ne!(normalize_symbol("ETH/USD"), normalize_symbol("BTC/USD"));
        assert_eq!(normalize_symbol("BRK.B"), "BRK.B");
    }

    #[test]
    fn row_bodies_split_into_order_or_error() {
        let (o, e) = split_row_body(Some(serde_json::from_str(ORDER).unwrap()));
        assert!(o.is_some() && e.is_none());
        let (o, e) = split_row_body(Some(
            serde_json::json!({"code":40410000,"message":"order not found"}),
        ));
        assert!(o.is_none());
        assert_eq!(e.unwrap().code, Some(40410000));
        assert_eq!(split_row_body(None), (None, None));
    }
}
