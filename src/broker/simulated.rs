use super::{AccountSnapshot, Broker, OrderRequest, OrderView, PositionView, Side};
use crate::market::Bar;
use crate::sim::Rules;
use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
struct Position {
    qty: f64,
    avg_price: f64,
}

/// Fills market orders immediately at the latest bar's close, charging the rules' slippage and
/// commission: exactly what the backtest charges, so a replay reproduces the backtest.
pub struct SimBroker {
    rules: Rules,
    cash: f64,
    positions: BTreeMap<String, Position>,
    prices: BTreeMap<String, (f64, DateTime<Utc>)>,
    orders: Vec<OrderView>,
}

impl SimBroker {
    pub fn new(rules: Rules) -> Self {
        SimBroker {
            rules,
            cash: rules.initial_cash,
            positions: BTreeMap::new(),
            prices: BTreeMap::new(),
            orders: Vec::new(),
        }
    }

    /// The replayed feed advances: the broker now prices `symbol` at this bar's close.
    pub fn on_bar(&mut self, symbol: &str, bar: &Bar) {
        self.prices.insert(symbol.to_string(), (bar.close, bar.ts));
    }
}

impl Broker for SimBroker {
    fn account(&self) -> Result<AccountSnapshot> {
        let mv: f64 = self
            .positions
            .iter()
            .map(|(s, p)| p.qty * self.prices.get(s).map(|x| x.0).unwrap_or(p.avg_price))
            .sum();
        Ok(AccountSnapshot {
            cash: self.cash,
            equity: self.cash + mv,
        })
    }

    fn positions(&self) -> Result<Vec<PositionView>> {
        Ok(self
            .positions
            .iter()
            .filter(|(_, p)| p.qty != 0.0)
            .map(|(s, p)| {
                let px = self.prices.get(s).map(|x| x.0).unwrap_or(p.avg_price);
                PositionView {
                    symbol: s.clone(),
                    qty: p.qty,
                    avg_price: p.avg_price,
                    market_price: px,
                    unrealized_pnl: (px - p.avg_price) * p.qty,
                }
            })
            .collect())
    }

    fn submit(&mut self, o: OrderRequest) -> Result<OrderView> {
        if self
            .orders
            .iter()
            .any(|x| x.client_order_id == o.client_order_id)
        {
            bail!(
                "order rejected: client_order_id {} already used",
                o.client_order_id
            );
        }
        if o.qty.is_nan() || o.qty <= 0.0 || !o.qty.is_finite() {
            bail!("order rejected: quantity must be positive, got {}", o.qty);
        }
        let Some(&(price, at)) = self.prices.get(&o.symbol) else {
            bail!("order rejected: no price yet for {}", o.symbol);
        };
        let signed = match o.side {
            Side::Buy => o.qty,
            Side::Sell => -o.qty,
        };
        let pos = self.positions.entry(o.symbol.clone()).or_default();
        let new_qty = pos.qty + signed;
        if pos.qty == 0.0 || pos.qty.signum() != new_qty.signum() {
            pos.avg_price = price;
        } else if new_qty.abs() > pos.qty.abs() {
            pos.avg_price = (pos.avg_price * pos.qty + price * signed) / new_qty;
        }
        pos.qty = new_qty;
        self.cash -= signed * price + o.qty * price * self.rules.slippage + self.rules.commission;
        let view = OrderView {
            client_order_id: o.client_order_id,
            symbol: o.symbol,
            side: o.side.as_str().to_string(),
            qty: o.qty,
            status: "filled".to_string(),
            fill_price: Some(price),
            at,
        };
        self.orders.push(view.clone());
        Ok(view)
    }

    fn orders(&self) -> Result<Vec<OrderView>> {
        Ok(self.orders.clone())
    }

    fn last_price(&self, symbol: &str) -> Option<f64> {
        self.prices.get(symbol).map(|x| x.0)
    }
}
