//! Brokers: the [`Broker`] trait the paper trader talks to, a simulated broker that fills by
//! the `sim` rules, and Alpaca's trading API (`alpaca`: REST client and trade-updates stream,
//! over the typed data in `types`).

pub mod alpaca;
mod enums;
mod simulated;
pub mod types;
mod wire;

pub use simulated::SimBroker;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionView {
    pub symbol: String,
    pub qty: f64,
    pub avg_price: f64,
    pub market_price: f64,
    pub unrealized_pnl: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    pub client_order_id: String,
    pub symbol: String,
    pub side: String,
    pub qty: f64,
    pub status: String,
    pub fill_price: Option<f64>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// A market order. `client_order_id` is deterministic (run, symbol, bar) so a retry after a
/// crash cannot place the same order twice: the broker rejects a duplicate id.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRequest {
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    pub qty: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccountSnapshot {
    pub cash: f64,
    pub equity: f64,
}

pub trait Broker {
    fn account(&self) -> Result<AccountSnapshot>;
    fn positions(&self) -> Result<Vec<PositionView>>;
    fn submit(&mut self, order: OrderRequest) -> Result<OrderView>;
    fn orders(&self) -> Result<Vec<OrderView>>;
    /// The latest price the broker knows for `symbol`.
    fn last_price(&self, symbol: &str) -> Option<f64>;
}
