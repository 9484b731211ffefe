//! The broker mirror: the daemon's copy of what the broker last said about the account, the
//! positions, the market clock and the assets, and the latest price of every symbol (from the
//! feed, else the broker's positions). Reads go through here, so their freshness and the REST
//! errors they cost are kept in one place.

use super::clock::due;
use super::orders::Session;
use super::output::Output;
use crate::broker::simulated::f;
use crate::broker::types::{normalize_symbol, Account, Asset, Clock as MarketClock, Position};
use crate::broker::Broker;
use crate::market::{AssetClass, Calendar};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Mirror {
    pub account: Option<Account>,
    /// When the account was last read, and the session's fill count then.
    account_read: Option<(DateTime<Utc>, usize)>,
    /// The bar time the account was read for.
    account_bar: Option<DateTime<Utc>>,
    pub positions: Vec<Position>,
    pub positions_at: Option<DateTime<Utc>>,
    pub market: Option<MarketClock>,
    market_at: Option<DateTime<Utc>>,
    assets: HashMap<String, Asset>,
    /// Latest price per normalized symbol, and its time.
    prices: HashMap<String, (f64, DateTime<Utc>)>,
    pub rest_errors: u64,
}

impl Mirror {
    pub fn price(&self, symbol: &str) -> Option<f64> {
        self.prices.get(&normalize_symbol(symbol)).map(|p| p.0)
    }

    /// A newer price (an older one is ignored).
    pub fn set_price(&mut self, symbol: &str, price: f64, at: DateTime<Utc>) {
        let key = normalize_symbol(symbol);
        if self.prices.get(&key).is_none_or(|(_, t)| *t <= at) {
            self.prices.insert(key, (price, at));
        }
    }

    /// Prices from the broker's positions where the feed has not given one yet.
    pub fn prices_from_positions(&mut self, now: DateTime<Utc>) {
        for p in &self.positions {
            if let Some(px) = p.current_price {
                self.prices
                    .entry(normalize_symbol(&p.symbol))
                    .or_insert((f(px), now));
            }
        }
    }

    /// The broker's equity, or `fallback` before the first answer.
    pub fn equity(&self, fallback: f64) -> f64 {
        self.account.as_ref().map_or(fallback, |a| f(a.equity))
    }

    pub fn buying_power(&self, fallback: f64) -> f64 {
        self.account
            .as_ref()
            .map_or(fallback, |a| f(a.buying_power))
    }

    pub fn cash(&self) -> Option<f64> {
        self.account.as_ref().map(|a| f(a.cash))
    }

    /// The broker's quantity of a symbol.
    pub fn position(&self, symbol: &str) -> f64 {
        let key = normalize_symbol(symbol);
        self.positions
            .iter()
            .filter(|p| normalize_symbol(&p.symbol) == key)
            .map(|p| f(p.qty))
            .sum()
    }

    pub async fn refresh_account<B: Broker>(
        &mut self,
        broker: &B,
        out: &dyn Output,
        now: DateTime<Utc>,
        fills: usize,
    ) {
        match broker.account().await {
            Ok(a) => {
                self.account = Some(a);
                self.account_read = Some((now, fills));
            }
            Err(e) => {
                self.rest_errors += 1;
                out.warn(format!("account: {e}"));
            }
        }
    }

    /// One account read per bar time: the models whose bars close together share it (Alpaca
    /// allows 200 requests a minute), unless a fill moved it since.
    pub async fn account_for<B: Broker>(
        &mut self,
        broker: &B,
        out: &dyn Output,
        bar: DateTime<Utc>,
        now: DateTime<Utc>,
        fills: usize,
    ) {
        let fresh = self
            .account_read
            .is_some_and(|(t, n)| n == fills && now - t < Duration::seconds(1))
            && self.account_bar == Some(bar);
        if !fresh {
            self.refresh_account(broker, out, now, fills).await;
            self.account_bar = Some(bar);
        }
    }

    pub async fn refresh_positions<B: Broker>(
        &mut self,
        broker: &B,
        out: &dyn Output,
        now: DateTime<Utc>,
    ) -> bool {
        match broker.positions().await {
            Ok(p) => {
                self.positions = p;
                self.positions_at = Some(now);
                true
            }
            Err(e) => {
                self.rest_errors += 1;
                out.warn(format!("positions: {e}"));
                false
            }
        }
    }

    /// The market clock, once a minute (the watchdog and extended hours need it).
    pub async fn refresh_market<B: Broker>(
        &mut self,
        broker: &B,
        out: &dyn Output,
        now: DateTime<Utc>,
    ) {
        if !due(self.market_at, now, Duration::seconds(60)) {
            return;
        }
        self.market_at = Some(now);
        match broker.clock().await {
            Ok(c) => self.market = Some(c),
            Err(e) => {
                self.rest_errors += 1;
                out.warn(format!("clock: {e}"));
            }
        }
    }

    pub async fn asset<B: Broker>(
        &mut self,
        broker: &B,
        out: &dyn Output,
        symbol: &str,
    ) -> Option<Asset> {
        if let Some(a) = self.assets.get(symbol) {
            return Some(a.clone());
        }
        match broker.asset(symbol).await {
            Ok(a) => {
                self.assets.insert(symbol.to_string(), a.clone());
                Some(a)
            }
            Err(e) => {
                self.rest_errors += 1;
                out.warn(format!("asset {symbol}: {e}"));
                None
            }
        }
    }

    /// Regular, extended or closed for an equity order now (crypto: always regular).
    pub fn session_for(&self, class: AssetClass) -> Session {
        if class == AssetClass::Crypto {
            return Session::Regular;
        }
        match &self.market {
            Some(c) if c.is_open => Session::Regular,
            Some(c) => {
                let (minute, _) = Calendar::for_class(class).local_clock(c.timestamp);
                // 04:00–09:30 and 16:00–20:00 ET.
                if (240..570).contains(&minute) || (960..1200).contains(&minute) {
                    Session::Extended
                } else {
                    Session::Closed
                }
            }
            // Before the first clock answer (or on a broker without one): trust the bar.
            None => Session::Regular,
        }
    }
}
