//! The portfolio's gates, applied to what the models want before any order is made (seed §7):
//! the capital rules (a cash buffer, so only part of the equity is ever allocated; a cap per
//! position; a cap on total exposure), buying power net of open orders, a per-symbol cooldown
//! after a trade, and the session-wide blocks (pause, flatten, drawdown halt, daily loss limit,
//! a stale feed). They **resize before they block**: an entry that does not fit is made smaller;
//! only what cannot fit at all is dropped. Exits (reducing a position) always pass.
//!
//! They live in `sim` because evaluation applies them too: a backtest of one model runs the same
//! gates against its own account (`sim::decide`), so a verdict describes what paper will trade.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CapitalRules {
    /// Share of equity never allocated (seed: 30 %).
    pub cash_buffer: f64,
    /// Cap of one position, as a share of equity (seed: 20 %).
    pub max_position: f64,
    /// Cap of total gross exposure, as a share of equity (seed: < 80 %).
    pub max_exposure: f64,
    /// Entries smaller than this (in currency) are not worth an order.
    pub min_order_value: f64,
}

impl CapitalRules {
    /// The gross exposure allowed: the tighter of the allocation and the exposure cap.
    pub fn gross_cap(&self, equity: f64) -> f64 {
        (1.0 - self.cash_buffer).min(self.max_exposure) * equity
    }
}

/// Buying power of the simulated broker (and of a backtest, which trades like it): Reg-T-like,
/// twice the equity less the gross value already deployed, never negative.
pub fn sim_buying_power(equity: f64, gross: f64) -> f64 {
    (2.0 * equity - gross).max(0.0)
}

/// The gates' word on one symbol, shown in the Paper pane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", content = "why", rename_all = "snake_case")]
pub enum GateNote {
    Ok,
    Resized(String),
    Blocked(String),
}

impl GateNote {
    pub fn text(&self) -> String {
        match self {
            GateNote::Ok => "ok".into(),
            GateNote::Resized(w) => format!("resized: {w}"),
            GateNote::Blocked(w) => format!("blocked: {w}"),
        }
    }
}

/// What one model wants on this bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    pub symbol: String,
    pub price: f64,
    /// The model's own position now (signed).
    pub current: f64,
    /// The position it asks for (signed).
    pub target: f64,
    /// A cooldown after its last trade blocks new entries in this symbol.
    pub cooling: bool,
}

/// The session's situation the gates judge against.
#[derive(Debug, Clone, PartialEq)]
pub struct Situation {
    pub equity: f64,
    /// Buying power left once open orders are counted.
    pub buying_power: f64,
    /// Gross exposure of everything not in this batch (other models' positions, open entry orders).
    pub other_exposure: f64,
    /// A session-wide reason to take no new entry (pause, flatten, halt, daily loss, stale feed).
    pub block: Option<String>,
}

/// The position each model may take, with the note that says why. Unless the broker takes a
/// long↔short flip in one order (`flip_in_one_order`), a flip closes first and opens the other
/// side on a later bar.
pub fn gate(
    wants: &[Want],
    s: &Situation,
    rules: &CapitalRules,
    flip_in_one_order: bool,
) -> Vec<(f64, GateNote)> {
    let mut out: Vec<(f64, GateNote)> = wants
        .iter()
        .map(|w| {
            let flips =
                w.current != 0.0 && w.target != 0.0 && w.current.signum() != w.target.signum();
            let grows = w.target.abs() > w.current.abs() || flips;
            if !grows {
                return (w.target, GateNote::Ok);
            }
            // Whatever is blocked keeps the exit part: a flip closes first.
            let keep = if flips { 0.0 } else { w.current };
            if let Some(why) = &s.block {
                return (keep, GateNote::Blocked(why.clone()));
            }
            if w.cooling {
                return (
                    keep,
                    GateNote::Blocked("cooldown after the last trade".into()),
                );
            }
            if flips && !flip_in_one_order {
                return (
                    0.0,
                    GateNote::Resized("closing first; the new side next bar".into()),
                );
            }
            let cap = rules.max_position * s.equity / w.price.max(f64::MIN_POSITIVE);
            if w.target.abs() > cap {
                let t = w.target.signum() * cap.max(w.current.abs());
                return (
                    t,
                    GateNote::Resized(format!("{:.0} % position cap", rules.max_position * 100.0)),
                );
            }
            (w.target, GateNote::Ok)
        })
        .collect();

    // Shrink the increases together when the batch overflows the exposure cap or buying power.
    let increase = |i: usize, t: f64| (t.abs() - wants[i].current.abs()).max(0.0) * wants[i].price;
    let kept: f64 = out
        .iter()
        .enumerate()
        .map(|(i, (t, _))| t.abs().min(wants[i].current.abs()) * wants[i].price)
        .sum();
    let inc: f64 = out
        .iter()
        .enumerate()
        .map(|(i, (t, _))| increase(i, *t))
        .sum();
    if inc > 0.0 {
        let room_exposure = rules.gross_cap(s.equity) - s.other_exposure - kept;
        let room = room_exposure.min(s.buying_power).max(0.0);
        if inc > room {
            let f = room / inc;
            let why = if room_exposure <= s.buying_power {
                format!(
                    "exposure cap ({:.0} % of equity)",
                    (1.0 - rules.cash_buffer).min(rules.max_exposure) * 100.0
                )
            } else {
                "buying power".to_string()
            };
            for (i, (t, note)) in out.iter_mut().enumerate() {
                let w = &wants[i];
                if t.abs() > w.current.abs() {
                    let grown = w.current.abs() + f * (t.abs() - w.current.abs());
                    *t = t.signum() * grown;
                    *note = if f <= 0.0 {
                        GateNote::Blocked(why.clone())
                    } else {
                        GateNote::Resized(why.clone())
                    };
                }
            }
        }
    }
    // An entry too small to be worth an order is dropped.
    for (i, (t, note)) in out.iter_mut().enumerate() {
        let w = &wants[i];
        if t.abs() > w.current.abs() && increase(i, *t) < rules.min_order_value {
            *t = w.current;
            if *note == GateNote::Ok {
                *note = GateNote::Blocked("below the minimum order value".into());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: CapitalRules = CapitalRules {
        cash_buffer: 0.30,
        max_position: 0.20,
        max_exposure: 0.80,
        min_order_value: 1.0,
    };

    fn want(symbol: &str, price: f64, current: f64, target: f64) -> Want {
        Want {
            symbol: symbol.into(),
            price,
            current,
            target,
            cooling: false,
        }
    }

    fn calm() -> Situation {
        Situation {
            equity: 100_000.0,
            buying_power: 200_000.0,
            other_exposure: 0.0,
            block: None,
        }
    }

    #[test]
    fn a_position_is_capped_at_twenty_percent() {
        // 300 × $100 = 30 % of equity → 200 shares.
        let r = gate(&[want("A", 100.0, 0.0, 300.0)], &calm(), &RULES, false);
        assert_eq!(r[0].0, 200.0);
        assert!(matches!(r[0].1, GateNote::Resized(_)));
        let r = gate(&[want("A", 100.0, 0.0, -300.0)], &calm(), &RULES, false);
        assert_eq!(r[0].0, -200.0);
    }

    #[test]
    fn the_batch_is_resized_to_the_seventy_percent_allocation() {
        // 50 % already held elsewhere; two entries of 20 % each: 20 % room left → half each.
        let s = Situation {
            other_exposure: 50_000.0,
            ..calm()
        };
        let r = gate(
            &[want("A", 100.0, 0.0, 200.0), want("B", 50.0, 0.0, 400.0)],
            &s,
            &RULES,
            false,
        );
        assert!(
            (r[0].0 - 100.0).abs() < 1e-9 && (r[1].0 - 200.0).abs() < 1e-9,
            "{r:?}"
        );
        assert!(r
            .iter()
            .all(|x| matches!(x.1, GateNote::Resized(ref w) if w.contains("70 %"))));
    }

    #[test]
    fn buying_power_net_of_open_orders_resizes_too() {
        let s = Situation {
            buying_power: 5_000.0,
            ..calm()
        };
        let r = gate(&[want("A", 100.0, 10.0, 110.0)], &s, &RULES, false);
        assert!((r[0].0 - 60.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r[0].1, GateNote::Resized("buying power".into()));
    }

    #[test]
    fn blocks_stop_entries_but_never_exits() {
        let s = Situation {
            block: Some("paused".into()),
            ..calm()
        };
        let r = gate(
            &[
                want("A", 100.0, 50.0, 100.0),
                want("B", 100.0, 50.0, 10.0),
                want("C", 100.0, 50.0, -50.0),
            ],
            &s,
            &RULES,
            false,
        );
        assert_eq!(r[0], (50.0, GateNote::Blocked("paused".into())));
        assert_eq!(r[1], (10.0, GateNote::Ok));
        // A flip keeps its exit half.
        assert_eq!(r[2], (0.0, GateNote::Blocked("paused".into())));
        let mut w = want("D", 100.0, 0.0, 10.0);
        w.cooling = true;
        assert!(matches!(
            gate(&[w], &calm(), &RULES, false)[0].1,
            GateNote::Blocked(_)
        ));
    }

    #[test]
    fn a_flip_closes_first_where_the_broker_needs_it() {
        let r = gate(&[want("A", 100.0, 50.0, -50.0)], &calm(), &RULES, false);
        assert_eq!(r[0].0, 0.0);
        let r = gate(&[want("A", 100.0, 50.0, -50.0)], &calm(), &RULES, true);
        assert_eq!(r[0], (-50.0, GateNote::Ok));
    }
}
