//! The fake's matching engine: orders, fills (whole, partial, or randomly partial like Alpaca
//! paper, seeded), positions, cash, equity and buying power. Market orders fill at the symbol's
//! latest price (from the bars the fake serves, or set by the test); limit orders fill when the
//! price crosses. Every change emits a trade update for the websocket.

use super::{fixture, WsCtl};
use chrono::{DateTime, SecondsFormat, Utc};
use quantdeck::broker::types::normalize_symbol;
use quantdeck::rng::Rng;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use tokio::sync::broadcast;

pub fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal literal")
}

/// An f64 price as the decimal it prints as.
pub fn dec_f64(x: f64) -> Decimal {
    dec(&format!("{x}"))
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// What the fake knows of an asset; `asset()` serves it.
#[derive(Debug, Clone)]
pub struct AssetSpec {
    pub symbol: String,
    pub crypto: bool,
    pub tradable: bool,
    pub fractionable: bool,
    pub shortable: bool,
    pub easy_to_borrow: bool,
    pub min_order_size: Option<Decimal>,
    pub min_trade_increment: Option<Decimal>,
    pub price_increment: Option<Decimal>,
}

impl AssetSpec {
    /// Alpaca-like defaults: equities fractionable and shortable; crypto with increments, not
    /// shortable.
    pub fn default_for(symbol: &str) -> AssetSpec {
        let crypto = symbol.contains('/');
        AssetSpec {
            symbol: symbol.to_string(),
            crypto,
            tradable: true,
            fractionable: true,
            shortable: !crypto,
            easy_to_borrow: !crypto,
            min_order_size: crypto.then(|| dec("0.000011")),
            min_trade_increment: crypto.then(|| dec("0.000000001")),
            price_increment: crypto.then(|| dec("1")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FakeOrder {
    pub seq: u64,
    pub id: String,
    pub client_order_id: String,
    pub symbol: String,
    pub crypto: bool,
    pub side: String,
    pub order_type: String,
    pub time_in_force: String,
    pub qty: Option<Decimal>,
    pub notional: Option<Decimal>,
    pub filled_qty: Decimal,
    pub filled_avg_price: Option<Decimal>,
    pub limit_price: Option<Decimal>,
    pub status: String,
    pub extended_hours: bool,
    pub submitted_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub filled_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    /// The partial share to fill first, decided at acceptance.
    pub first_fill: Option<Decimal>,
    /// Price updates of its symbol to wait before it may fill (delayed fills).
    pub hold: u32,
}

impl FakeOrder {
    pub fn is_open(&self) -> bool {
        !matches!(
            self.status.as_str(),
            "filled" | "canceled" | "expired" | "rejected" | "replaced"
        )
    }

    pub fn to_json(&self) -> Value {
        let mut v = fixture("order.json");
        let s = |d: Option<Decimal>| d.map_or(Value::Null, |d| Value::String(d.to_string()));
        let t = |d: Option<DateTime<Utc>>| d.map_or(Value::Null, |d| Value::String(ts(d)));
        let o = v.as_object_mut().expect("order fixture is an object");
        o.insert("id".into(), json!(self.id));
        o.insert("client_order_id".into(), json!(self.client_order_id));
        o.insert("created_at".into(), json!(ts(self.submitted_at)));
        o.insert("submitted_at".into(), json!(ts(self.submitted_at)));
        o.insert("updated_at".into(), json!(ts(self.updated_at)));
        o.insert("filled_at".into(), t(self.filled_at));
        o.insert("canceled_at".into(), t(self.canceled_at));
        o.insert("symbol".into(), json!(self.symbol));
        let class = if self.crypto { "crypto" } else { "us_equity" };
        o.insert("asset_class".into(), json!(class));
        o.insert("qty".into(), s(self.qty));
        o.insert("notional".into(), s(self.notional));
        o.insert("filled_qty".into(), json!(self.filled_qty.to_string()));
        o.insert("filled_avg_price".into(), s(self.filled_avg_price));
        o.insert("order_type".into(), json!(self.order_type));
        o.insert("type".into(), json!(self.order_type));
        o.insert("side".into(), json!(self.side));
        let intent = if self.side == "buy" {
            "buy_to_open"
        } else {
            "sell_to_close"
        };
        o.insert("position_intent".into(), json!(intent));
        o.insert("time_in_force".into(), json!(self.time_in_force));
        o.insert("limit_price".into(), s(self.limit_price));
        o.insert("status".into(), json!(self.status));
        o.insert("extended_hours".into(), json!(self.extended_hours));
        v
    }
}

#[derive(Debug, Clone)]
pub struct FakePosition {
    /// As Alpaca names positions: crypto without the slash (`BTCUSD`).
    pub symbol: String,
    pub crypto: bool,
    pub qty: Decimal,
    pub avg: Decimal,
}

pub struct Engine {
    pub cash: Decimal,
    pub last_equity: Decimal,
    pub positions: BTreeMap<String, FakePosition>,
    pub orders: Vec<FakeOrder>,
    pub prices: BTreeMap<String, Decimal>,
    pub assets: BTreeMap<String, AssetSpec>,
    /// Market orders fill as soon as a price is known; off: they wait for `fill_open_orders`.
    pub auto_fill: bool,
    /// Fractions of the next orders to fill first (the rest fills on the next price).
    pub partial_script: VecDeque<Decimal>,
    /// Like Alpaca paper: this share of orders fills partially first (seeded).
    pub partial_probability: f64,
    pub rng: Rng,
    /// This many `fill` events are dropped from the stream (the fill itself happens).
    pub suppress_fills: u32,
    /// Scripted submission clock: (next time, step); `None` = the wall clock.
    pub order_clock: Option<(DateTime<Utc>, chrono::Duration)>,
    /// Fills wait a number of price updates drawn in this range (inclusive).
    pub fill_delay: Option<(u32, u32)>,
    pub events: broadcast::Sender<WsCtl>,
    next_seq: u64,
}

impl Engine {
    pub fn new(events: broadcast::Sender<WsCtl>) -> Engine {
        Engine {
            cash: dec("100000"),
            last_equity: dec("100000"),
            positions: BTreeMap::new(),
            orders: Vec::new(),
            prices: BTreeMap::new(),
            assets: BTreeMap::new(),
            auto_fill: true,
            partial_script: VecDeque::new(),
            partial_probability: 0.0,
            rng: Rng::new(7),
            suppress_fills: 0,
            order_clock: None,
            fill_delay: None,
            events,
            next_seq: 0,
        }
    }

    pub fn asset(&self, symbol: &str) -> AssetSpec {
        self.assets
            .get(&normalize_symbol(symbol))
            .cloned()
            .unwrap_or_else(|| AssetSpec::default_for(symbol))
    }

    pub fn price(&self, symbol: &str) -> Option<Decimal> {
        self.prices.get(&normalize_symbol(symbol)).copied()
    }

    fn now_for_order(&mut self) -> DateTime<Utc> {
        match &mut self.order_clock {
            Some((t, step)) => {
                let now = *t;
                *t += *step;
                now
            }
            None => Utc::now(),
        }
    }

    fn next_id(&mut self) -> (u64, String) {
        self.next_seq += 1;
        let n = self.next_seq;
        (n, format!("0f0e0d0c-{:04x}-4000-8000-{n:012x}", n % 0xffff))
    }

    pub fn equity(&self) -> Decimal {
        self.cash
            + self
                .positions
                .iter()
                .map(|(k, p)| p.qty * self.prices.get(k).copied().unwrap_or(p.avg))
                .sum::<Decimal>()
    }

    /// Cash not reserved by open buy orders.
    pub fn buying_power(&self) -> Decimal {
        let reserved: Decimal = self
            .orders
            .iter()
            .filter(|o| o.is_open() && o.side == "buy")
            .map(|o| self.reserve(o))
            .sum();
        (self.cash - reserved).max(Decimal::ZERO)
    }

    fn reserve(&self, o: &FakeOrder) -> Decimal {
        if let Some(n) = o.notional {
            return n;
        }
        let px = o
            .limit_price
            .or_else(|| self.price(&o.symbol))
            .unwrap_or(Decimal::ZERO);
        (o.qty.unwrap_or(Decimal::ZERO) - o.filled_qty) * px
    }

    /// Inserts an order as given (for listings: external orders, pagination fixtures).
    pub fn insert_order(&mut self, mut o: FakeOrder) -> FakeOrder {
        let (seq, id) = self.next_id();
        o.seq = seq;
        if o.id.is_empty() {
            o.id = id;
        }
        self.orders.push(o.clone());
        o
    }

    /// Validates and books a new order, Alpaca-style; `Err` is (HTTP status, error body).
    pub fn accept(&mut self, req: &Value) -> Result<usize, (u16, Value)> {
        self.book(req, false)
    }

    /// `closing`: a liquidation, exempt from the buying-power, short and size checks.
    fn book(&mut self, req: &Value, closing: bool) -> Result<usize, (u16, Value)> {
        let bad = |code: u64, msg: &str| (422, json!({"code": code, "message": msg}));
        let text = |k: &str| req.get(k).and_then(Value::as_str).map(str::to_string);
        let amount = |k: &str| -> Result<Option<Decimal>, (u16, Value)> {
            match req.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => s
                    .parse()
                    .map(Some)
                    .map_err(|_| bad(40010001, &format!("invalid {k}"))),
                Some(other) => Err(bad(40010001, &format!("{k} must be a string, got {other}"))),
            }
        };
        let symbol = text("symbol").ok_or_else(|| bad(40010001, "symbol is required"))?;
        let side = text("side").ok_or_else(|| bad(40010001, "side is required"))?;
        let order_type = text("type").ok_or_else(|| bad(40010001, "type is required"))?;
        let tif =
            text("time_in_force").ok_or_else(|| bad(40010001, "time_in_force is required"))?;
        let cid = text("client_order_id").unwrap_or_default();
        let (qty, notional, limit) = (amount("qty")?, amount("notional")?, amount("limit_price")?);
        let spec = self.asset(&symbol);
        if !spec.tradable {
            return Err(bad(40010001, &format!("asset {symbol} is not active")));
        }
        if qty.is_some() == notional.is_some() {
            return Err(bad(40010001, "qty or notional is required, not both"));
        }
        if cid.len() > 128 {
            return Err(bad(
                40010001,
                "client_order_id must be no more than 128 characters",
            ));
        }
        if !["buy", "sell"].contains(&side.as_str())
            || !["market", "limit"].contains(&order_type.as_str())
        {
            return Err(bad(40010001, "unsupported side or order type"));
        }
        if spec.crypto && !["gtc", "ioc"].contains(&tif.as_str()) {
            return Err(bad(40010001, "invalid crypto time_in_force"));
        }
        if let Some(q) = qty {
            if q.fract() != Decimal::ZERO && !spec.fractionable {
                return Err(bad(
                    40010001,
                    "fractional orders are not supported for this asset",
                ));
            }
            if let Some(min) = spec.min_order_size.filter(|m| q < *m && !closing) {
                return Err(bad(40010001, &format!("qty must be >= {min}")));
            }
            if let Some(inc) = spec
                .min_trade_increment
                .filter(|i| (q % *i) != Decimal::ZERO)
            {
                return Err(bad(
                    40010001,
                    &format!("qty must be in increments of {inc}"),
                ));
            }
        }
        if let Some(lp) = limit {
            let tick = spec.price_increment.unwrap_or(if lp >= Decimal::ONE {
                dec("0.01")
            } else {
                dec("0.0001")
            });
            if lp % tick != Decimal::ZERO {
                return Err((
                    422,
                    json!({"code": 42210000, "message": "sub-penny increment does not fulfill minimum pricing criteria"}),
                ));
            }
        }
        let px = limit
            .or_else(|| self.price(&symbol))
            .unwrap_or(Decimal::ZERO);
        if closing {
            // A liquidation is not checked against buying power or shortability.
        } else if side == "buy" {
            let cost = notional.unwrap_or_else(|| qty.unwrap_or_default() * px);
            let bp = self.buying_power();
            if cost > bp {
                return Err((
                    403,
                    json!({"buying_power": bp.to_string(), "code": 40310000,
                           "cost_basis": cost.to_string(), "message": "insufficient buying power"}),
                ));
            }
        } else {
            let held = self
                .positions
                .get(&normalize_symbol(&symbol))
                .map_or(Decimal::ZERO, |p| p.qty);
            let q = qty.unwrap_or_else(|| {
                if px > Decimal::ZERO {
                    notional.unwrap_or_default() / px
                } else {
                    Decimal::ZERO
                }
            });
            if q > held && (spec.crypto || !spec.shortable) {
                let base = symbol.split('/').next().unwrap_or(&symbol);
                let msg = if spec.crypto {
                    format!("insufficient balance for {base} (requested: {q}, available: {held})")
                } else {
                    format!("asset {symbol} cannot be sold short")
                };
                return Err((403, json!({"code": 40310000, "message": msg})));
            }
        }
        let now = self.now_for_order();
        let (seq, id) = self.next_id();
        let first_fill = match self.partial_script.pop_front() {
            Some(f) => Some(f),
            None if self.partial_probability > 0.0
                && self.rng.uniform() < self.partial_probability =>
            {
                Some(dec("0.5"))
            }
            None => None,
        };
        self.orders.push(FakeOrder {
            seq,
            id,
            client_order_id: if cid.is_empty() {
                format!("auto-{seq}")
            } else {
                cid
            },
            symbol,
            crypto: spec.crypto,
            side,
            order_type,
            time_in_force: tif,
            qty,
            notional,
            filled_qty: Decimal::ZERO,
            filled_avg_price: None,
            limit_price: limit,
            status: "new".into(),
            extended_hours: req
                .get("extended_hours")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            submitted_at: now,
            updated_at: now,
            filled_at: None,
            canceled_at: None,
            first_fill,
            // A liquidation fills at once.
            hold: match self.fill_delay {
                Some((lo, hi)) if !closing => lo + self.rng.below((hi - lo + 1) as usize) as u32,
                _ => 0,
            },
        });
        let i = self.orders.len() - 1;
        self.emit(i, "new", None);
        Ok(i)
    }

    /// An order was just accepted: it fills at once if it can (and fills are not held).
    pub fn on_accept(&mut self, symbol: &str) {
        if self.auto_fill {
            self.match_orders(Some(symbol));
        }
    }

    /// A new price for `symbol`: fills what crosses, unless fills are held.
    pub fn on_price(&mut self, symbol: &str) {
        let key = normalize_symbol(symbol);
        for o in self.orders.iter_mut().filter(|o| o.is_open() && o.hold > 0) {
            if normalize_symbol(&o.symbol) == key {
                o.hold -= 1;
            }
        }
        if self.auto_fill {
            self.match_orders(Some(symbol));
        }
    }

    /// Fills what can fill: after an acceptance, a new price, or on demand.
    pub fn match_orders(&mut self, only_symbol: Option<&str>) {
        let key = only_symbol.map(normalize_symbol);
        for i in 0..self.orders.len() {
            let o = &self.orders[i];
            if !o.is_open()
                || o.hold > 0
                || key
                    .as_ref()
                    .is_some_and(|k| *k != normalize_symbol(&o.symbol))
            {
                continue;
            }
            let Some(px) = self.price(&o.symbol) else {
                continue;
            };
            let crosses = match (o.order_type.as_str(), o.limit_price) {
                ("limit", Some(l)) => (o.side == "buy" && px <= l) || (o.side == "sell" && px >= l),
                _ => true,
            };
            if !crosses {
                continue;
            }
            // A notional order fills whole, at the quantity its amount buys now.
            let total = match (o.qty, o.notional) {
                (Some(q), _) => q,
                (None, Some(n)) => (n / px).round_dp(9),
                (None, None) => continue,
            };
            let remaining = total - o.filled_qty;
            let mut part = remaining;
            if o.filled_qty.is_zero() && o.qty.is_some() {
                if let Some(f) = o.first_fill {
                    let mut p = (remaining * f).round_dp(9);
                    if !self.asset(&o.symbol).fractionable {
                        p = p.floor();
                    }
                    if p > Decimal::ZERO && p < remaining {
                        part = p;
                    }
                }
            }
            self.fill(i, part, px, total);
        }
    }

    fn fill(&mut self, i: usize, q: Decimal, px: Decimal, total: Decimal) {
        let now = Utc::now();
        let (signed, key, name, crypto) = {
            let o = &self.orders[i];
            let signed = if o.side == "buy" { q } else { -q };
            let key = normalize_symbol(&o.symbol);
            let name = if o.crypto {
                key.clone()
            } else {
                o.symbol.clone()
            };
            (signed, key, name, o.crypto)
        };
        let pos = self.positions.entry(key.clone()).or_insert(FakePosition {
            symbol: name,
            crypto,
            qty: Decimal::ZERO,
            avg: Decimal::ZERO,
        });
        let old = pos.qty;
        let new = old + signed;
        if old.is_zero() || old.is_sign_positive() == signed.is_sign_positive() {
            pos.avg = (old.abs() * pos.avg + q * px) / new.abs();
        } else if !new.is_zero() && new.is_sign_positive() != old.is_sign_positive() {
            pos.avg = px;
        }
        pos.qty = new;
        if new.is_zero() {
            self.positions.remove(&key);
        }
        self.cash -= signed * px;
        let o = &mut self.orders[i];
        let before = o.filled_qty;
        o.filled_qty += q;
        o.filled_avg_price = Some(
            ((before * o.filled_avg_price.unwrap_or_default() + q * px) / o.filled_qty).round_dp(9),
        );
        o.updated_at = now;
        let done = o.filled_qty >= total;
        o.status = if done { "filled" } else { "partially_filled" }.into();
        if done {
            o.filled_at = Some(now);
        }
        let event = if done { "fill" } else { "partial_fill" };
        if done && self.suppress_fills > 0 {
            self.suppress_fills -= 1;
            return;
        }
        let position_qty = self.positions.get(&key).map_or(Decimal::ZERO, |p| p.qty);
        self.emit(i, event, Some((px, q, position_qty)));
    }

    pub fn cancel(&mut self, i: usize) {
        let now = Utc::now();
        let o = &mut self.orders[i];
        o.status = "canceled".into();
        o.canceled_at = Some(now);
        o.updated_at = now;
        self.emit(i, "canceled", None);
    }

    fn emit(&mut self, i: usize, event: &str, fill: Option<(Decimal, Decimal, Decimal)>) {
        let mut data = json!({
            "event": event,
            "timestamp": ts(Utc::now()),
            "order": self.orders[i].to_json(),
        });
        if let Some((price, qty, position_qty)) = fill {
            let (seq, exec) = self.next_id();
            let _ = seq;
            data["price"] = json!(price.to_string());
            data["qty"] = json!(qty.to_string());
            data["position_qty"] = json!(position_qty.to_string());
            data["execution_id"] = json!(exec);
        }
        let msg = json!({"stream": "trade_updates", "data": data}).to_string();
        let _ = self.events.send(WsCtl::Trade(msg));
    }

    /// A market order that closes `key`'s position (for `DELETE /v2/positions`).
    pub fn close_position(&mut self, key: &str) -> Result<usize, (u16, Value)> {
        let p = self.positions.get(key).cloned().ok_or((
            404,
            json!({"code": 40410000, "message": "position not found"}),
        ))?;
        let symbol = if p.crypto {
            // Orders name crypto with the slash.
            let (base, quote) = p.symbol.split_at(p.symbol.len().saturating_sub(3));
            format!("{base}/{quote}")
        } else {
            p.symbol.clone()
        };
        let req = json!({
            "symbol": symbol,
            "qty": p.qty.abs().to_string(),
            "side": if p.qty.is_sign_positive() { "sell" } else { "buy" },
            "type": "market",
            "time_in_force": if p.crypto { "gtc" } else { "day" },
        });
        self.book(&req, true)
    }
}
