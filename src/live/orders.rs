//! From a position change to an order the broker will take, checking its rules before anything is
//! sent (Alpaca's, per its docs): no crypto shorts, equity shorts only where the asset is
//! shortable and easy to borrow, whole shares for shorts, fractional quantities only on
//! fractionable assets and only as market + day orders, crypto orders `gtc`, quantities rounded
//! down to the asset's increments, and — when extended hours are enabled and the regular session
//! is closed — a limit + day + `extended_hours` order at a marketable price.

use super::ids::Intent;
use crate::broker::simulated::dec;
use crate::broker::types::{Asset, NewOrder, OrderType, Side, TimeInForce};
use crate::market::AssetClass;
use rust_decimal::{Decimal, RoundingStrategy};

/// How far past the last price an extended-hours limit order is placed (marketable, bounded).
pub const EXTENDED_LIMIT_SLACK: f64 = 0.002;

/// The order for a change of position, before it gets its client id.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub intent: Intent,
    pub side: Side,
    pub qty: Decimal,
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    pub limit_price: Option<Decimal>,
    pub extended_hours: bool,
}

impl Planned {
    pub fn to_order(&self, client_order_id: &str, symbol: &str) -> NewOrder {
        NewOrder {
            client_order_id: client_order_id.to_string(),
            symbol: symbol.to_string(),
            side: self.side.clone(),
            qty: Some(self.qty),
            notional: None,
            order_type: self.order_type.clone(),
            time_in_force: self.time_in_force.clone(),
            limit_price: self.limit_price,
            extended_hours: self.extended_hours,
        }
    }
}

/// When the order would go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// Regular hours (or crypto, always).
    Regular,
    /// Outside regular hours, inside the extended sessions (04:00–09:30, 16:00–20:00 ET).
    Extended,
    Closed,
}

fn floor_to(x: Decimal, step: Decimal) -> Decimal {
    if step <= Decimal::ZERO {
        return x;
    }
    (x / step).floor() * step
}

/// Alpaca's price ticks: $0.01 at or above $1, $0.0001 below (unless the asset says otherwise).
fn tick(asset: &Asset, price: f64) -> Decimal {
    asset.price_increment.unwrap_or(if price >= 1.0 {
        Decimal::new(1, 2)
    } else {
        Decimal::new(1, 4)
    })
}

/// The order's quantity for a change of `dq` units, rounded down to what the asset trades in.
fn quantity(
    class: AssetClass,
    asset: &Asset,
    dq: f64,
    touches_short: bool,
    extended: bool,
) -> Result<Decimal, String> {
    let raw = dec(dq.abs());
    let qty = match class {
        AssetClass::Crypto => {
            let step = asset.min_trade_increment.unwrap_or(Decimal::new(1, 9));
            floor_to(raw, step)
        }
        AssetClass::Equity if asset.fractionable && !touches_short && !extended => {
            raw.round_dp_with_strategy(9, RoundingStrategy::ToZero)
        }
        AssetClass::Equity => raw.floor(),
    };
    if qty <= Decimal::ZERO {
        return Err(format!(
            "{} rounds to no whole unit{}",
            raw.round_dp(6),
            if touches_short {
                " (shorts trade in whole shares)"
            } else if !asset.fractionable {
                " (not fractionable)"
            } else {
                ""
            }
        ));
    }
    match asset.min_order_size {
        Some(min) if qty < min => Err(format!("{qty} is below the minimum order size {min}")),
        _ => Ok(qty),
    }
}

/// Order type, time in force and limit price: a marketable limit in the extended sessions,
/// crypto `gtc`, everything else market + day.
fn kind(
    class: AssetClass,
    asset: &Asset,
    side: &Side,
    price: f64,
    extended: bool,
) -> (OrderType, TimeInForce, Option<Decimal>) {
    if extended {
        let slack = if *side == Side::Buy {
            1.0 + EXTENDED_LIMIT_SLACK
        } else {
            1.0 - EXTENDED_LIMIT_SLACK
        };
        let limit = floor_to(dec(price * slack), tick(asset, price));
        (OrderType::Limit, TimeInForce::Day, Some(limit))
    } else if class == AssetClass::Crypto {
        (OrderType::Market, TimeInForce::Gtc, None)
    } else {
        // Fractional and notional orders must be market + day; whole shares are too here.
        (OrderType::Market, TimeInForce::Day, None)
    }
}

/// The order moving the model's position from `current` to `target` (signed units), or why none
/// goes out. Fractional equity quantities keep 9 decimals (Alpaca's precision).
#[allow(clippy::too_many_arguments)]
pub fn plan(
    class: AssetClass,
    asset: &Asset,
    current: f64,
    target: f64,
    price: f64,
    session: Session,
    extended_hours: bool,
    fractional_shorts: bool,
) -> Result<Option<Planned>, String> {
    if !asset.tradable {
        return Err(format!("{} is not tradable at the broker", asset.symbol));
    }
    let mut target = target;
    if target < 0.0 {
        let allowed = class == AssetClass::Equity && asset.shortable && asset.easy_to_borrow;
        if !allowed {
            target = 0.0;
        }
    }
    let dq = target - current;
    if dq == 0.0 || !dq.is_finite() || price.is_nan() || price <= 0.0 {
        return Ok(None);
    }
    let side = if dq > 0.0 { Side::Buy } else { Side::Sell };
    let intent = if target.abs() > current.abs() || target.signum() * current.signum() < 0.0 {
        Intent::Entry
    } else {
        Intent::Exit
    };
    // Short positions (opened, grown, or partly covered) trade in whole shares.
    let touches_short = (target < 0.0 || current < 0.0) && !fractional_shorts;
    let extended = class == AssetClass::Equity && session == Session::Extended;
    if class == AssetClass::Equity && session == Session::Closed {
        return Err("the market is closed".into());
    }
    if extended && !extended_hours {
        return Err("the regular session is closed (extended hours are off)".into());
    }
    let qty = quantity(class, asset, dq, touches_short, extended)?;
    let (order_type, time_in_force, limit_price) = kind(class, asset, &side, price, extended);
    Ok(Some(Planned {
        intent,
        side,
        qty,
        order_type,
        time_in_force,
        limit_price,
        extended_hours: extended,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::types::BrokerAssetClass;

    fn asset(class: BrokerAssetClass, fractionable: bool, shortable: bool) -> Asset {
        Asset {
            symbol: "X".into(),
            class,
            exchange: String::new(),
            status: "active".into(),
            tradable: true,
            fractionable,
            shortable,
            easy_to_borrow: shortable,
            marginable: true,
            min_order_size: None,
            min_trade_increment: None,
            price_increment: None,
        }
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn equities_fractional_long_whole_short() {
        let a = asset(BrokerAssetClass::UsEquity, true, true);
        let p = plan(
            AssetClass::Equity,
            &a,
            0.0,
            10.123_456_789_9,
            50.0,
            Session::Regular,
            false,
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (p.side.clone(), p.qty, p.intent),
            (Side::Buy, d("10.123456789"), Intent::Entry)
        );
        assert_eq!(
            (p.order_type, p.time_in_force),
            (OrderType::Market, TimeInForce::Day)
        );
        // Opening a short: whole shares.
        let p = plan(
            AssetClass::Equity,
            &a,
            0.0,
            -10.7,
            50.0,
            Session::Regular,
            false,
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!((p.side, p.qty), (Side::Sell, d("10")));
    }

    #[test]
    fn unshortable_and_whole_share_assets() {
        // Not shortable: a short becomes flat.
        let ns = asset(BrokerAssetClass::UsEquity, true, false);
        assert_eq!(
            plan(
                AssetClass::Equity,
                &ns,
                0.0,
                -5.0,
                50.0,
                Session::Regular,
                false,
                false
            ),
            Ok(None)
        );
        let p = plan(
            AssetClass::Equity,
            &ns,
            4.0,
            -5.0,
            50.0,
            Session::Regular,
            false,
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (p.side, p.qty, p.intent),
            (Side::Sell, d("4"), Intent::Exit)
        );
        // Not fractionable: floor to whole shares, and say why when nothing is left.
        let whole = asset(BrokerAssetClass::UsEquity, false, false);
        let err = plan(
            AssetClass::Equity,
            &whole,
            0.0,
            0.4,
            50.0,
            Session::Regular,
            false,
            false,
        )
        .unwrap_err();
        assert!(err.contains("not fractionable"), "{err}");
    }

    #[test]
    fn crypto_never_short_gtc_and_on_increments() {
        let mut a = asset(BrokerAssetClass::Crypto, true, false);
        a.min_trade_increment = Some(d("0.0001"));
        a.min_order_size = Some(d("0.0005"));
        let p = plan(
            AssetClass::Crypto,
            &a,
            0.0,
            0.123_456,
            60_000.0,
            Session::Regular,
            false,
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!((p.qty, p.time_in_force), (d("0.1234"), TimeInForce::Gtc));
        assert_eq!(
            plan(
                AssetClass::Crypto,
                &a,
                0.0,
                -1.0,
                60_000.0,
                Session::Regular,
                false,
                false
            ),
            Ok(None)
        );
        assert!(plan(
            AssetClass::Crypto,
            &a,
            0.0,
            0.0003,
            60_000.0,
            Session::Regular,
            false,
            false
        )
        .unwrap_err()
        .contains("minimum order size"));
    }

    #[test]
    fn extended_hours_use_marketable_limits_or_wait() {
        let a = asset(BrokerAssetClass::UsEquity, true, true);
        assert!(plan(
            AssetClass::Equity,
            &a,
            0.0,
            3.5,
            100.0,
            Session::Extended,
            false,
            false
        )
        .unwrap_err()
        .contains("extended hours are off"));
        let p = plan(
            AssetClass::Equity,
            &a,
            0.0,
            3.5,
            100.0,
            Session::Extended,
            true,
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.order_type, OrderType::Limit);
        assert_eq!(p.time_in_force, TimeInForce::Day);
        assert!(p.extended_hours);
        assert_eq!(p.qty, d("3"), "whole shares outside regular hours");
        assert_eq!(p.limit_price, Some(d("100.20")));
        assert!(plan(
            AssetClass::Equity,
            &a,
            0.0,
            3.0,
            100.0,
            Session::Closed,
            true,
            false
        )
        .is_err());
    }
}
