//! Property tests: random sessions (intents with random fates at the broker, outcomes torn off
//! the journal by crashes, listings that miss orders, look-ups that fail, external orders and
//! positions), reconciled and held against what really happened.

use super::*;
use crate::broker::types::{BrokerAssetClass, OrderStatus, OrderType, PositionSide, TimeInForce};
use crate::rng::Rng;
use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;

const SESSION: &str = "s1";
const SYMBOLS: [&str; 3] = ["AAA", "BTC/USD", "ZZZ"];

fn d(x: f64) -> Decimal {
    crate::broker::simulated::dec(x)
}

fn order(
    id: &str,
    cid: &str,
    symbol: &str,
    side: Side,
    qty: f64,
    filled: f64,
    status: OrderStatus,
) -> Order {
    Order {
        id: id.into(),
        client_order_id: cid.into(),
        symbol: symbol.into(),
        asset_class: BrokerAssetClass::UsEquity,
        side,
        order_type: OrderType::Market,
        time_in_force: TimeInForce::Day,
        qty: Some(d(qty)),
        notional: None,
        filled_qty: d(filled),
        filled_avg_price: (filled > 0.0).then(|| d(100.0)),
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

fn position(symbol: &str, qty: f64) -> Position {
    Position {
        symbol: normalize_symbol(symbol),
        asset_class: BrokerAssetClass::UsEquity,
        qty: d(qty),
        avg_entry_price: d(100.0),
        current_price: None,
        market_value: None,
        unrealized_pl: None,
        side: if qty < 0.0 {
            PositionSide::Short
        } else {
            PositionSide::Long
        },
        qty_available: None,
    }
}

/// What really happened in one random session.
struct World {
    journal: Vec<Entry>,
    /// Every order the broker holds (ours and others').
    broker: Vec<Order>,
    /// Intent ids that reached the broker.
    placed: BTreeSet<String>,
}

fn world(rng: &mut Rng) -> World {
    let at = Utc.with_ymd_and_hms(2024, 3, 1, 15, 0, 0).unwrap();
    let mut w = World {
        journal: Vec::new(),
        broker: Vec::new(),
        placed: BTreeSet::new(),
    };
    for n in 0..rng.below(25) {
        let symbol = SYMBOLS[rng.below(SYMBOLS.len())];
        let side = if rng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let qty = (1 + rng.below(50)) as f64 / 4.0;
        let id = format!("qd-{SESSION}-{}-{}-e1", normalize_symbol(symbol), 1000 + n);
        w.journal.push(Entry::Intent {
            id: id.clone(),
            symbol: symbol.into(),
            side: side.as_str().into(),
            qty: d(qty),
            order_type: "market".into(),
            time_in_force: "day".into(),
            limit_price: None,
            intent: super::super::ids::Intent::Entry,
            bar: at,
            at,
        });
        let reached = rng.below(4) != 0;
        if reached {
            let (filled, status) = match rng.below(4) {
                0 => (qty, OrderStatus::Filled),
                1 => (qty / 2.0, OrderStatus::PartiallyFilled),
                2 => (0.0, OrderStatus::New),
                _ => (0.0, OrderStatus::Canceled),
            };
            w.broker.push(order(
                &format!("o{n}"),
                &id,
                symbol,
                side,
                qty,
                filled,
                status,
            ));
            w.placed.insert(id.clone());
        }
        // The outcome line, unless a crash tore it off.
        let outcome = match (reached, rng.below(4)) {
            (_, 0) => None,
            (true, 1) => Some(Entry::Unknown {
                id: id.clone(),
                reason: "500".into(),
                at,
            }),
            (true, _) => Some(Entry::Accepted {
                id: id.clone(),
                order_id: format!("o{n}"),
                status: "new".into(),
                at,
            }),
            (false, 1) => Some(Entry::Rejected {
                id: id.clone(),
                error: "no".into(),
                at,
            }),
            (false, 2) => Some(Entry::Unknown {
                id: id.clone(),
                reason: "timeout".into(),
                at,
            }),
            (false, _) => Some(Entry::NotPlaced { id: id.clone(), at }),
        };
        w.journal.extend(outcome);
    }
    for n in 0..rng.below(4) {
        let symbol = SYMBOLS[rng.below(SYMBOLS.len())];
        w.broker.push(order(
            &format!("x{n}"),
            &format!("manual-{n}"),
            symbol,
            Side::Buy,
            3.0,
            3.0,
            OrderStatus::Filled,
        ));
    }
    w
}

fn truth(w: &World) -> BTreeMap<String, f64> {
    let mut p = BTreeMap::new();
    for o in w
        .broker
        .iter()
        .filter(|o| is_ours(SESSION, &o.client_order_id))
    {
        let q = f(o.filled_qty);
        *p.entry(normalize_symbol(&o.symbol)).or_insert(0.0) +=
            if o.side == Side::Sell { -q } else { q };
    }
    p
}

#[test]
fn every_intent_is_settled_once_and_only_by_what_the_broker_says() {
    let mut rng = Rng::new(20240301);
    let adopted = BTreeSet::new();
    for case in 0..3_000 {
        let w = world(&mut rng);
        let listed: Vec<Order> = w
            .broker
            .iter()
            .filter(|_| rng.below(2) == 0)
            .cloned()
            .collect();
        let ask = to_look_up(&w.journal, &listed);
        let mut looked_up = BTreeMap::new();
        for id in &ask {
            // A look-up fails now and then (no answer): its fate stays unknown.
            if rng.below(6) != 0 {
                looked_up.insert(
                    id.clone(),
                    w.broker.iter().find(|o| &o.client_order_id == id).cloned(),
                );
            }
        }
        let r = reconcile(&Inputs {
            session: SESSION,
            adopted: &adopted,
            journal: &w.journal,
            listed: &listed,
            looked_up: &looked_up,
        });
        let fates = intents(&w.journal);
        for (intent, fate) in &fates {
            let listed_it = listed.iter().any(|o| o.client_order_id == intent.id);
            // Looked up exactly when the listing lacks it and the journal has not closed it.
            assert_eq!(
                ask.contains(&intent.id),
                *fate != Fate::Closed && !listed_it,
                "case {case}: {}",
                intent.id
            );
            let accepted = r
                .settle
                .iter()
                .filter(|s| matches!(s, Settle::Accepted { id, .. } if *id == intent.id))
                .count();
            let not_placed = r
                .settle
                .iter()
                .filter(|s| matches!(s, Settle::NotPlaced { id } if *id == intent.id))
                .count();
            let unknown = r.unknown.iter().filter(|u| u.id == intent.id).count();
            if *fate == Fate::Open {
                assert_eq!(
                    accepted + not_placed + unknown,
                    1,
                    "case {case}: {} settled once",
                    intent.id
                );
            } else {
                assert_eq!(
                    accepted + not_placed + unknown,
                    0,
                    "case {case}: {} was settled before",
                    intent.id
                );
            }
            // Sound: accepted only what reached the broker, never-placed only what did not.
            if accepted == 1 {
                assert!(w.placed.contains(&intent.id), "case {case}");
            }
            if not_placed == 1 {
                assert!(!w.placed.contains(&intent.id), "case {case}");
            }
            if unknown == 1 {
                assert!(
                    !listed_it && !looked_up.contains_key(&intent.id),
                    "case {case}"
                );
            }
        }
        // Ours: exactly the session's orders found, never anyone else's.
        for o in &w.broker {
            let found = listed.iter().any(|x| x.id == o.id)
                || looked_up
                    .get(&o.client_order_id)
                    .is_some_and(|x| x.is_some());
            let ours = is_ours(SESSION, &o.client_order_id);
            assert_eq!(
                r.ours.contains_key(&o.client_order_id),
                ours && found,
                "case {case}"
            );
            if !ours && listed.iter().any(|x| x.id == o.id) {
                assert!(
                    r.external_orders.iter().any(|x| x.id == o.id),
                    "case {case}"
                );
            }
        }
        // Every order of the session found: its position is the broker's truth.
        let all_found = w
            .broker
            .iter()
            .filter(|o| is_ours(SESSION, &o.client_order_id))
            .all(|o| r.ours.contains_key(&o.client_order_id));
        if all_found {
            let t = truth(&w);
            for k in t.keys().chain(r.positions.keys()) {
                let (a, b) = (
                    t.get(k).copied().unwrap_or(0.0),
                    r.positions.get(k).copied().unwrap_or(0.0),
                );
                assert!((a - b).abs() < 1e-9, "case {case}: {k} {a} vs {b}");
            }
        }
        // Idempotent: with its outcomes journaled, a second pass settles nothing new.
        let mut journal = w.journal.clone();
        let at = Utc.with_ymd_and_hms(2024, 3, 1, 16, 0, 0).unwrap();
        for s in &r.settle {
            journal.push(match s {
                Settle::Accepted {
                    id,
                    order_id,
                    status,
                } => Entry::Accepted {
                    id: id.clone(),
                    order_id: order_id.clone(),
                    status: status.clone(),
                    at,
                },
                Settle::NotPlaced { id } => Entry::NotPlaced { id: id.clone(), at },
            });
        }
        let again = reconcile(&Inputs {
            session: SESSION,
            adopted: &adopted,
            journal: &journal,
            listed: &listed,
            looked_up: &looked_up,
        });
        assert!(again.settle.is_empty(), "case {case}: {:?}", again.settle);
        assert_eq!(again.ours, r.ours);
        assert_eq!(again.positions, r.positions);
        // The listing's order does not matter.
        let mut shuffled = listed.clone();
        shuffled.reverse();
        let other = reconcile(&Inputs {
            session: SESSION,
            adopted: &adopted,
            journal: &w.journal,
            listed: &shuffled,
            looked_up: &looked_up,
        });
        assert_eq!(other.ours, r.ours);
        assert_eq!(other.positions, r.positions);
    }
}

/// The simulated broker stamps bar time, so a listing "since the session started" (wall time)
/// finds nothing after a restart: the journal's ids still find every order, and the position
/// is the session's own, not EXTERNAL.
#[test]
fn a_listing_that_misses_every_order_still_finds_them_by_id() {
    let mut rng = Rng::new(3);
    for _ in 0..200 {
        let w = world(&mut rng);
        let ask = to_look_up(&w.journal, &[]);
        let looked_up: BTreeMap<String, Option<Order>> = ask
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    w.broker.iter().find(|o| &o.client_order_id == id).cloned(),
                )
            })
            .collect();
        let adopted = BTreeSet::new();
        let r = reconcile(&Inputs {
            session: SESSION,
            adopted: &adopted,
            journal: &w.journal,
            listed: &[],
            looked_up: &looked_up,
        });
        assert_eq!(
            r.positions.iter().filter(|(_, q)| q.abs() > 1e-12).count(),
            truth(&w).iter().filter(|(_, q)| q.abs() > 1e-12).count()
        );
        assert!(r.unknown.is_empty());
    }
}

#[test]
fn the_newest_snapshot_of_an_order_wins_wherever_it_came_from() {
    let id = "qd-s1-AAA-1-e1";
    let old = order(
        "o1",
        id,
        "AAA",
        Side::Buy,
        4.0,
        1.0,
        OrderStatus::PartiallyFilled,
    );
    let new = order("o1", id, "AAA", Side::Buy, 4.0, 4.0, OrderStatus::Filled);
    let adopted = BTreeSet::new();
    for (listed, looked) in [(old.clone(), new.clone()), (new.clone(), old.clone())] {
        let looked_up = BTreeMap::from([(id.to_string(), Some(looked))]);
        let r = reconcile(&Inputs {
            session: SESSION,
            adopted: &adopted,
            journal: &[],
            listed: &[listed],
            looked_up: &looked_up,
        });
        assert_eq!(r.ours[id].filled_qty, d(4.0));
        assert_eq!(r.positions["AAA"], 4.0);
    }
}

#[test]
fn positions_conserve_and_a_changed_external_part_is_a_mismatch() {
    let mut rng = Rng::new(11);
    for case in 0..5_000 {
        let traded: BTreeSet<String> = SYMBOLS
            .iter()
            .filter(|_| rng.below(2) == 0)
            .map(|s| normalize_symbol(s))
            .collect();
        let busy: BTreeSet<String> = traded
            .iter()
            .filter(|_| rng.below(4) == 0)
            .cloned()
            .collect();
        let mut ours = BTreeMap::new();
        let mut baseline = BTreeMap::new();
        let mut positions = Vec::new();
        let mut changed = BTreeSet::new();
        for s in SYMBOLS {
            let k = normalize_symbol(s);
            let mine = [0.0, 2.0, 5.5][rng.below(3)];
            let theirs = [0.0, 0.0, 3.0][rng.below(3)];
            if mine != 0.0 {
                ours.insert(k.clone(), mine);
            }
            if rng.below(3) != 0 {
                baseline.insert(k.clone(), theirs);
            }
            // Now and then a split (or a hand trade) moves the broker's quantity.
            let split = rng.below(5) == 0 && mine != 0.0;
            let held = if split {
                mine * 2.0 + theirs
            } else {
                mine + theirs
            };
            if split && baseline.contains_key(&k) {
                changed.insert(k.clone());
            }
            if held != 0.0 {
                positions.push(position(s, held));
            }
        }
        let c = check_positions(&positions, &ours, &baseline, &traded, &busy);
        // Conservation: the broker's quantity is the session's plus the external part.
        for p in &positions {
            let k = normalize_symbol(&p.symbol);
            let ext: f64 = c
                .external
                .iter()
                .filter(|(s, _)| normalize_symbol(s) == k)
                .map(|(_, q)| q)
                .sum();
            let mine = ours.get(&k).copied().unwrap_or(0.0);
            assert!((f(p.qty) - mine - ext).abs() < 1e-9, "case {case}: {k}");
        }
        for m in &c.mismatched {
            let k = normalize_symbol(&m.symbol);
            assert!(
                traded.contains(&k) && !busy.contains(&k),
                "case {case}: only traded, settled symbols stop"
            );
            assert!(m.detail().contains("split"));
        }
        for k in &changed {
            let stopped = c
                .mismatched
                .iter()
                .any(|m| normalize_symbol(&m.symbol) == *k);
            assert_eq!(
                stopped,
                traded.contains(k) && !busy.contains(k),
                "case {case}: {k}"
            );
        }
        // A second check with the new baseline flags the same symbols and no others.
        let again = check_positions(&positions, &ours, &c.baseline, &traded, &busy);
        assert_eq!(again.mismatched, c.mismatched, "case {case}");
    }
}
