//! The simulated broker: Alpaca's shapes (orders, positions, account, clock), filled by the
//! backtest's rules — a market order fills at once at the latest price with the backtest's
//! slippage and commission — so paper trading on it reproduces the backtest. Its state is written
//! to a file after every change (when given one), so a killed daemon restarts against the same
//! broker, as it would against Alpaca.

use super::types::{
    Account, Asset, BrokerAssetClass, CancelRow, Clock, ClosePositionRow, NewOrder, Order,
    OrderStatus, OrderType, Position, PositionSide, Side, TimeInForce,
};
use super::{Broker, BrokerError, BrokerKind};
use crate::market::AssetClass;
use crate::paths::write_atomic;
use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// The costs the simulated broker charges (the backtest's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SimCosts {
    /// Proportional: a buy pays `price × (1 + slippage)`, a sell receives `price × (1 − slippage)`.
    pub slippage: f64,
    /// Fixed, per filled order.
    pub commission: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Holding {
    qty: Decimal,
    avg: Decimal,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    cash: Decimal,
    holdings: BTreeMap<String, Holding>,
    classes: BTreeMap<String, AssetClass>,
    prices: BTreeMap<String, (Decimal, DateTime<Utc>)>,
    orders: Vec<Order>,
    next_id: u64,
    now: Option<DateTime<Utc>>,
}

pub struct SimBroker {
    costs: SimCosts,
    allow_short_equity: bool,
    state: Mutex<State>,
    file: Option<PathBuf>,
}

pub fn dec(x: f64) -> Decimal {
    Decimal::try_from(x).unwrap_or_default()
}

pub fn f(x: Decimal) -> f64 {
    x.to_f64().unwrap_or(0.0)
}

impl SimBroker {
    /// A broker holding `cash`. With `file`, its state is kept there: an existing file is
    /// continued (a restart), a missing one is started.
    pub fn open(
        cash: f64,
        costs: SimCosts,
        allow_short_equity: bool,
        file: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let state = match &file {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p)?;
                serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!("{} is not a simulated broker state: {e}", p.display())
                })?
            }
            _ => State {
                cash: dec(cash),
                ..Default::default()
            },
        };
        Ok(SimBroker {
            costs,
            allow_short_equity,
            state: Mutex::new(state),
            file,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, s: &State) -> Result<(), BrokerError> {
        if let Some(p) = &self.file {
            let bytes = serde_json::to_vec(s).map_err(|e| BrokerError::Config {
                message: e.to_string(),
            })?;
            write_atomic(p, &bytes).map_err(|e| BrokerError::Transport {
                what: "saving the simulated broker".into(),
                reason: format!("{e:#}"),
            })?;
        }
        Ok(())
    }

    /// The replayed feed moves on: `symbol` now trades at `price`. Open limit orders it crosses fill.
    pub fn set_price(
        &self,
        symbol: &str,
        class: AssetClass,
        price: f64,
        at: DateTime<Utc>,
    ) -> Result<(), BrokerError> {
        let mut s = self.lock();
        let p = dec(price);
        s.prices.insert(symbol.to_string(), (p, at));
        s.classes.insert(symbol.to_string(), class);
        s.now = Some(s.now.map_or(at, |n| n.max(at)));
        let crossing: Vec<usize> = s
            .orders
            .iter()
            .enumerate()
            .filter(|(_, o)| o.symbol == symbol && o.status.is_open())
            .filter(|(_, o)| match (o.limit_price, &o.side) {
                (Some(l), Side::Buy) => p <= l,
                (Some(l), Side::Sell) => p >= l,
                _ => false,
            })
            .map(|(i, _)| i)
            .collect();
        for i in crossing {
            let limit = s.orders[i].limit_price.unwrap_or(p);
            fill(&mut s, i, limit, self.costs, at);
        }
        self.save(&s)
    }

    fn equity(s: &State) -> Decimal {
        s.cash
            + s.holdings
                .iter()
                .map(|(sym, h)| h.qty * s.prices.get(sym).map_or(h.avg, |x| x.0))
                .sum::<Decimal>()
    }

    fn gross(s: &State) -> Decimal {
        s.holdings
            .iter()
            .map(|(sym, h)| (h.qty * s.prices.get(sym).map_or(h.avg, |x| x.0)).abs())
            .sum()
    }
}

/// Fills order `i` completely at `price` (before slippage).
fn fill(s: &mut State, i: usize, price: Decimal, costs: SimCosts, at: DateTime<Utc>) {
    let o = &s.orders[i];
    let qty = o.qty.unwrap_or_default();
    let sign = if o.side == Side::Buy {
        Decimal::ONE
    } else {
        -Decimal::ONE
    };
    let paid = price * (Decimal::ONE + sign * dec(costs.slippage));
    let sym = o.symbol.clone();
    s.cash -= sign * qty * paid + dec(costs.commission);
    let h = s.holdings.entry(sym.clone()).or_default();
    let new_qty = h.qty + sign * qty;
    if new_qty.is_zero() {
        h.avg = Decimal::ZERO;
    } else if h.qty.is_zero() || h.qty.is_sign_positive() != new_qty.is_sign_positive() {
        h.avg = paid;
    } else if new_qty.abs() > h.qty.abs() {
        h.avg = (h.avg * h.qty + paid * sign * qty) / new_qty;
    }
    h.qty = new_qty;
    if h.qty.is_zero() {
        s.holdings.remove(&sym);
    }
    let o = &mut s.orders[i];
    o.filled_qty = qty;
    o.filled_avg_price = Some(paid);
    o.status = OrderStatus::Filled;
    o.filled_at = Some(at);
    o.updated_at = Some(at);
}

fn rejected(message: String) -> BrokerError {
    BrokerError::Rejected {
        status: 422,
        code: None,
        message,
    }
}

impl Broker for SimBroker {
    fn kind(&self) -> BrokerKind {
        BrokerKind::Sim
    }

    /// The simulated broker trades like the backtest: any quantity, any change in one order.
    fn rules(&self) -> super::OrderRules {
        super::OrderRules::BACKTEST
    }

    fn observe_price(&self, symbol: &str, class: AssetClass, price: f64, at: DateTime<Utc>) {
        if let Err(e) = self.set_price(symbol, class, price, at) {
            tracing::error!("simulated broker: {e}");
        }
    }

    async fn account(&self) -> Result<Account, BrokerError> {
        let s = self.lock();
        let equity = Self::equity(&s);
        Ok(Account {
            id: "simulated".into(),
            status: "ACTIVE".into(),
            cash: s.cash,
            equity,
            last_equity: None,
            // Reg-T-like: twice the equity, less what is already deployed.
            buying_power: (equity * Decimal::TWO - Self::gross(&s)).max(Decimal::ZERO),
            trading_blocked: false,
            account_blocked: false,
            pattern_day_trader: None,
            daytrade_count: None,
            currency: Some("USD".into()),
        })
    }

    async fn positions(&self) -> Result<Vec<Position>, BrokerError> {
        let s = self.lock();
        Ok(s.holdings
            .iter()
            .map(|(sym, h)| {
                let px = s.prices.get(sym).map(|x| x.0);
                let class = match s.classes.get(sym) {
                    Some(AssetClass::Crypto) => BrokerAssetClass::Crypto,
                    _ => BrokerAssetClass::UsEquity,
                };
                Position {
                    symbol: sym.clone(),
                    asset_class: class,
                    qty: h.qty,
                    avg_entry_price: h.avg,
                    current_price: px,
                    market_value: px.map(|p| p * h.qty),
                    unrealized_pl: px.map(|p| (p - h.avg) * h.qty),
                    side: if h.qty.is_sign_negative() {
                        PositionSide::Short
                    } else {
                        PositionSide::Long
                    },
                    qty_available: Some(h.qty),
                }
            })
            .collect())
    }

    async fn clock(&self) -> Result<Clock, BrokerError> {
        // The replayed market is always open: the feed decides when bars come.
        let now = self.lock().now.unwrap_or_else(Utc::now);
        Ok(Clock {
            timestamp: now,
            is_open: true,
            next_open: now,
            next_close: now + chrono::Duration::days(1),
        })
    }

    async fn asset(&self, symbol: &str) -> Result<Asset, BrokerError> {
        let class = self
            .lock()
            .classes
            .get(symbol)
            .copied()
            .unwrap_or(if symbol.contains('/') {
                AssetClass::Crypto
            } else {
                AssetClass::Equity
            });
        Ok(Asset {
            symbol: symbol.to_string(),
            class: match class {
                AssetClass::Crypto => BrokerAssetClass::Crypto,
                AssetClass::Equity => BrokerAssetClass::UsEquity,
            },
            exchange: "SIM".into(),
            status: "active".into(),
            tradable: true,
            fractionable: true,
            shortable: class == AssetClass::Equity && self.allow_short_equity,
            easy_to_borrow: true,
            marginable: true,
            min_order_size: None,
            min_trade_increment: None,
            price_increment: None,
        })
    }

    async fn submit(&self, o: &NewOrder) -> Result<Order, BrokerError> {
        o.validate()
            .map_err(|message| BrokerError::InvalidOrder { message })?;
        let mut s = self.lock();
        if s.orders
            .iter()
            .any(|x| x.client_order_id == o.client_order_id)
        {
            return Err(BrokerError::DuplicateClientOrderId {
                client_order_id: o.client_order_id.clone(),
            });
        }
        let Some(&(price, at)) = s.prices.get(&o.symbol) else {
            return Err(rejected(format!("no price yet for {}", o.symbol)));
        };
        let qty = o.qty.unwrap_or_default();
        if qty <= Decimal::ZERO {
            return Err(rejected(format!("qty must be positive, got {qty}")));
        }
        // Opening or adding exposure needs buying power.
        let held = s.holdings.get(&o.symbol).map_or(Decimal::ZERO, |h| h.qty);
        let signed = if o.side == Side::Buy { qty } else { -qty };
        let adds = (held + signed).abs() > held.abs();
        let equity = Self::equity(&s);
        let bp = (equity * Decimal::TWO - Self::gross(&s)).max(Decimal::ZERO);
        if adds && qty * price > bp {
            return Err(BrokerError::InsufficientBuyingPower {
                message: format!(
                    "insufficient buying power: {:.2} needed, {:.2} available",
                    qty * price,
                    bp
                ),
            });
        }
        s.next_id += 1;
        let order = Order {
            id: format!("sim-{:08}", s.next_id),
            client_order_id: o.client_order_id.clone(),
            symbol: o.symbol.clone(),
            asset_class: match s.classes.get(&o.symbol) {
                Some(AssetClass::Crypto) => BrokerAssetClass::Crypto,
                _ => BrokerAssetClass::UsEquity,
            },
            side: o.side.clone(),
            order_type: o.order_type.clone(),
            time_in_force: o.time_in_force.clone(),
            qty: Some(qty),
            notional: None,
            filled_qty: Decimal::ZERO,
            filled_avg_price: None,
            limit_price: o.limit_price,
            stop_price: None,
            status: OrderStatus::Accepted,
            extended_hours: o.extended_hours,
            created_at: Some(at),
            updated_at: Some(at),
            submitted_at: Some(at),
            filled_at: None,
            canceled_at: None,
            expired_at: None,
            failed_at: None,
        };
        s.orders.push(order);
        let i = s.orders.len() - 1;
        let marketable = match (&o.order_type, o.limit_price, &o.side) {
            (OrderType::Market, _, _) => Some(price),
            (_, Some(l), Side::Buy) if price <= l => Some(l),
            (_, Some(l), Side::Sell) if price >= l => Some(l),
            _ => None,
        };
        if let Some(p) = marketable {
            fill(&mut s, i, p, self.costs, at);
        } else if o.time_in_force == TimeInForce::Ioc {
            s.orders[i].status = OrderStatus::Canceled;
            s.orders[i].canceled_at = Some(at);
        }
        let out = s.orders[i].clone();
        self.save(&s)?;
        Ok(out)
    }

    async fn orders_since(&self, after: DateTime<Utc>) -> Result<Vec<Order>, BrokerError> {
        Ok(self
            .lock()
            .orders
            .iter()
            .filter(|o| o.submitted_at.is_none_or(|t| t > after))
            .cloned()
            .collect())
    }

    async fn order_by_client_id(&self, id: &str) -> Result<Option<Order>, BrokerError> {
        Ok(self
            .lock()
            .orders
            .iter()
            .find(|o| o.client_order_id == id)
            .cloned())
    }

    async fn cancel_all(&self) -> Result<Vec<CancelRow>, BrokerError> {
        let mut s = self.lock();
        let now = s.now.unwrap_or_else(Utc::now);
        let mut rows = Vec::new();
        for o in s.orders.iter_mut().filter(|o| o.status.is_open()) {
            o.status = OrderStatus::Canceled;
            o.canceled_at = Some(now);
            rows.push(CancelRow {
                order_id: o.id.clone(),
                status: 200,
                order: Some(o.clone()),
                error: None,
            });
        }
        self.save(&s)?;
        Ok(rows)
    }

    async fn close_all(&self) -> Result<Vec<ClosePositionRow>, BrokerError> {
        self.cancel_all().await?;
        let held: Vec<(String, Decimal)> = self
            .lock()
            .holdings
            .iter()
            .map(|(s, h)| (s.clone(), h.qty))
            .collect();
        let mut rows = Vec::new();
        for (sym, qty) in held {
            let side = if qty.is_sign_positive() {
                Side::Sell
            } else {
                Side::Buy
            };
            let id = format!("close-{sym}-{}", self.lock().next_id + 1);
            let res = self
                .submit(&NewOrder::market(&id, &sym, side, qty.abs()))
                .await;
            rows.push(match res {
                Ok(order) => ClosePositionRow {
                    symbol: sym,
                    status: 200,
                    order: Some(order),
                    error: None,
                },
                Err(e) => ClosePositionRow {
                    symbol: sym,
                    status: 403,
                    order: None,
                    error: Some(super::types::RowError {
                        code: None,
                        message: e.to_string(),
                    }),
                },
            });
        }
        Ok(rows)
    }
}
