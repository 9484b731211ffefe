//! Brokers: the [`Broker`] trait the paper-trading daemon talks to, Alpaca's trading API behind it
//! (`alpaca`: REST client and trade-updates stream, over the typed data in `types`), and a
//! simulated broker with the same shapes, so that replay and real paper trading share every line
//! of decision and execution code.

pub mod alpaca;
mod enums;
pub mod simulated;
pub mod types;
mod wire;

pub use alpaca::BrokerError;
pub use simulated::{SimBroker, SimCosts};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use types::{Account, Asset, CancelRow, Clock, ClosePositionRow, NewOrder, Order, Position};

/// Which broker a paper session trades on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BrokerKind {
    /// The built-in simulated broker (no keys): fills at the bar's close with the backtest's costs.
    Sim,
    /// Alpaca's paper trading API.
    AlpacaPaper,
    /// Alpaca's live (real-money) API: refused unless enabled and confirmed.
    AlpacaLive,
}

impl BrokerKind {
    pub fn label(self) -> &'static str {
        match self {
            BrokerKind::Sim => "simulated broker",
            BrokerKind::AlpacaPaper => "Alpaca paper",
            BrokerKind::AlpacaLive => "Alpaca LIVE",
        }
    }
}

/// Order rules that differ between brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderRules {
    /// Short positions may hold fractional quantities (Alpaca: whole shares only).
    pub fractional_shorts: bool,
    /// One order may take a position from long to short or back (Alpaca refuses it as
    /// "insufficient qty available": close first, then open the other side).
    pub flip_in_one_order: bool,
}

impl OrderRules {
    pub const ALPACA: OrderRules = OrderRules {
        fractional_shorts: false,
        flip_in_one_order: false,
    };
    /// The backtest's own rules: any quantity, any change in one order.
    pub const BACKTEST: OrderRules = OrderRules {
        fractional_shorts: true,
        flip_in_one_order: true,
    };
}

/// What the daemon needs from a broker. The trading REST calls of Alpaca, one for one.
/// `submit` makes exactly one attempt; on [`BrokerError::needs_lookup`] the caller looks the order
/// up by its client id before anything else.
#[allow(async_fn_in_trait)]
pub trait Broker {
    fn kind(&self) -> BrokerKind;
    /// What orders the broker takes beyond each asset's own properties.
    fn rules(&self) -> OrderRules {
        OrderRules::ALPACA
    }
    /// The feed moved on (the simulated broker prices and fills by it; Alpaca has its own market).
    fn observe_price(
        &self,
        _symbol: &str,
        _class: crate::market::AssetClass,
        _price: f64,
        _at: DateTime<Utc>,
    ) {
    }
    async fn account(&self) -> Result<Account, BrokerError>;
    async fn positions(&self) -> Result<Vec<Position>, BrokerError>;
    async fn clock(&self) -> Result<Clock, BrokerError>;
    async fn asset(&self, symbol: &str) -> Result<Asset, BrokerError>;
    async fn submit(&self, order: &NewOrder) -> Result<Order, BrokerError>;
    /// Every order submitted after `after` (all statuses).
    async fn orders_since(&self, after: DateTime<Utc>) -> Result<Vec<Order>, BrokerError>;
    async fn order_by_client_id(&self, id: &str) -> Result<Option<Order>, BrokerError>;
    async fn cancel_all(&self) -> Result<Vec<CancelRow>, BrokerError>;
    async fn close_all(&self) -> Result<Vec<ClosePositionRow>, BrokerError>;
}

impl Broker for alpaca::TradingClient {
    fn kind(&self) -> BrokerKind {
        if self.settings().allow_live && self.settings().base_url.contains("://api.alpaca.markets")
        {
            BrokerKind::AlpacaLive
        } else {
            BrokerKind::AlpacaPaper
        }
    }
    async fn account(&self) -> Result<Account, BrokerError> {
        alpaca::TradingClient::account(self).await
    }
    async fn positions(&self) -> Result<Vec<Position>, BrokerError> {
        alpaca::TradingClient::positions(self).await
    }
    async fn clock(&self) -> Result<Clock, BrokerError> {
        alpaca::TradingClient::clock(self).await
    }
    async fn asset(&self, symbol: &str) -> Result<Asset, BrokerError> {
        alpaca::TradingClient::asset(self, symbol).await
    }
    async fn submit(&self, order: &NewOrder) -> Result<Order, BrokerError> {
        alpaca::TradingClient::submit(self, order).await
    }
    async fn orders_since(&self, after: DateTime<Utc>) -> Result<Vec<Order>, BrokerError> {
        self.orders(alpaca::OrdersQuery::all_since(after)).await
    }
    async fn order_by_client_id(&self, id: &str) -> Result<Option<Order>, BrokerError> {
        alpaca::TradingClient::order_by_client_id(self, id).await
    }
    async fn cancel_all(&self) -> Result<Vec<CancelRow>, BrokerError> {
        alpaca::TradingClient::cancel_all(self).await
    }
    async fn close_all(&self) -> Result<Vec<ClosePositionRow>, BrokerError> {
        alpaca::TradingClient::close_all(self).await
    }
}
