//! Property tests: random sessions (intents with random fates at the broker, outcomes torn off
//! the journal by crashes, listings that miss orders, look-ups that fail, external orders and
//! positions), reconciled and held against what really happened.

use super::*;
use crate::broker::types::{BrokerAssetClass, OrderStatus, TimeInForce};
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
    let (equity, day) = (BrokerAssetClass::UsEquity, TimeInForce::Day);
    Order {
        id: id.into(),
        filled_qty: d(filled),
        filled_avg_price: (filled > 0.0).then(|| d(100.0)),
        ..Order::market(cid, symbol, equity, side, day, Some(d(qty)), status)
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

fn at() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 15, 0, 0).unwrap()
}

/// One intent: journaled, maybe placed (with a random fill), its outcome line maybe torn off.
fn add_intent(w: &mut World, rng: &mut Rng, n: usize) {
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
        bar: at(),
        at: at(),
    });
    let reached = rng.below(4) != 0;
    if reached {
        let (filled, status) = match rng.below(4) {
            0 => (qty, OrderStatus::Filled),
            1 => (qty / 2.0, OrderStatus::PartiallyFilled),
            2 => (0.0, OrderStatus::New),
            _ => (0.0, OrderStatus::Canceled),
        };
        let o = order(&format!("o{n}"), &id, symbol, side, qty, filled, status);
        w.broker.push(o);
        w.placed.insert(id.clone());
    }
    let (id, at) = (id.clone(), at());
    let outcome = match (reached, rng.below(4)) {
        (_, 0) => None,
        (true, 1) => Some(Entry::Unknown {
            id,
            reason: "500".into(),
            at,
        }),
        (true, _) => Some(Entry::Accepted {
            id,
            order_id: format!("o{n}"),
            status: "new".into(),
            at,
        }),
        (false, 1) => Some(Entry::Rejected {
            id,
            error: "no".into(),
            at,
        }),
        (false, 2) => Some(Entry::Unknown {
            id,
            reason: "timeout".into(),
            at,
        }),
        (false, _) => Some(Entry::NotPlaced { id, at }),
    };
    w.journal.extend(outcome);
}

fn world(rng: &mut Rng) -> World {
    let mut w = World {
        journal: Vec::new(),
        broker: Vec::new(),
        placed: BTreeSet::new(),
    };
    for n in 0..rng.below(25) {
        add_intent(&mut w, rng, n);
    }
    for n in 0..rng.below(4) {
        let symbol = SYMBOLS[rng.below(SYMBOLS.len())];
        let (id, cid) = (format!("x{n}"), format!("manual-{n}"));
        w.broker.push(order(
            &id,
            &cid,
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

/// A random world, a listing that misses half its orders, look-ups that sometimes fail, and
/// what reconciliation made of it.
struct Case {
    w: World,
    listed: Vec<Order>,
    ask: Vec<String>,
    looked_up: BTreeMap<String, Option<Order>>,
    r: Reconciled,
}

fn case(rng: &mut Rng) -> Case {
    let w = world(rng);
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
    let r = run(&w.journal, &listed, &looked_up);
    Case {
        w,
        listed,
        ask,
        looked_up,
        r,
    }
}

fn run(
    journal: &[Entry],
    listed: &[Order],
    looked_up: &BTreeMap<String, Option<Order>>,
) -> Reconciled {
    let adopted = BTreeSet::new();
    reconcile(&Inputs {
        session: SESSION,
        adopted: &adopted,
        journal,
        listed,
        looked_up,
    })
}

fn settled(r: &Reconciled, id: &str) -> (usize, usize, usize) {
    let accepted = r
        .settle
        .iter()
        .filter(|s| matches!(s, Settle::Accepted { id: x, .. } if x == id))
        .count();
    let not_placed = r
        .settle
        .iter()
        .filter(|s| matches!(s, Settle::NotPlaced { id: x } if x == id))
        .count();
    let unknown = r.unknown.iter().filter(|u| u.id == id).count();
    (accepted, not_placed, unknown)
}

#[test]
fn every_intent_is_settled_once_and_only_by_what_the_broker_says() {
    let mut rng = Rng::new(20240301);
    for n in 0..3_000 {
        let c = case(&mut rng);
        for (intent, fate) in intents(&c.w.journal) {
            let id = intent.id.as_str();
            let listed_it = c.listed.iter().any(|o| o.client_order_id == id);
            // Looked up exactly when the listing lacks it and the journal has not closed it.
            assert_eq!(
                c.ask.iter().any(|a| a == id),
                fate != Fate::Closed && !listed_it,
                "case {n}: {id}"
            );
            let (accepted, not_placed, unknown) = settled(&c.r, id);
            let once = usize::from(fate == Fate::Open);
            assert_eq!(accepted + not_placed + unknown, once, "case {n}: {id}");
            // Sound: accepted only what reached the broker, never-placed only what did not.
            assert!(accepted == 0 || c.w.placed.contains(id), "case {n}");
            assert!(not_placed == 0 || !c.w.placed.contains(id), "case {n}");
            assert!(
                unknown == 0 || (!listed_it && !c.looked_up.contains_key(id)),
                "case {n}"
            );
        }
    }
}

#[test]
fn the_sessions_orders_are_found_and_nobody_elses() {
    let mut rng = Rng::new(7);
    for n in 0..3_000 {
        let c = case(&mut rng);
        for o in &c.w.broker {
            let listed = c.listed.iter().any(|x| x.id == o.id);
            let found = listed
                || c.looked_up
                    .get(&o.client_order_id)
                    .is_some_and(|x| x.is_some());
            let ours = is_ours(SESSION, &o.client_order_id);
            assert_eq!(
                c.r.ours.contains_key(&o.client_order_id),
                ours && found,
                "case {n}"
            );
            if !ours && listed {
                assert!(c.r.external_orders.iter().any(|x| x.id == o.id), "case {n}");
            }
        }
        // Every order of the session found: its position is the broker's truth.
        let all =
            c.w.broker
                .iter()
                .filter(|o| is_ours(SESSION, &o.client_order_id));
        if all
            .clone()
            .all(|o| c.r.ours.contains_key(&o.client_order_id))
        {
            let t = truth(&c.w);
            for k in t.keys().chain(c.r.positions.keys()) {
                let (a, b) = (
                    t.get(k).copied().unwrap_or(0.0),
                    c.r.positions.get(k).copied().unwrap_or(0.0),
                );
                assert!((a - b).abs() < 1e-9, "case {n}: {k} {a} vs {b}");
            }
        }
    }
}

#[test]
fn reconciling_again_settles_nothing_new_and_the_listings_order_does_not_matter() {
    let mut rng = Rng::new(99);
    for n in 0..3_000 {
        let c = case(&mut rng);
        let mut journal = c.w.journal.clone();
        for s in &c.r.settle {
            journal.push(match s {
                Settle::Accepted {
                    id,
                    order_id,
                    status,
                } => Entry::Accepted {
                    id: id.clone(),
                    order_id: order_id.clone(),
                    status: status.clone(),
                    at: at(),
                },
                Settle::NotPlaced { id } => Entry::NotPlaced {
                    id: id.clone(),
                    at: at(),
                },
            });
        }
        let again = run(&journal, &c.listed, &c.looked_up);
        assert!(again.settle.is_empty(), "case {n}: {:?}", again.settle);
        assert_eq!(
            (&again.ours, &again.positions),
            (&c.r.ours, &c.r.positions),
            "case {n}"
        );
        let mut shuffled = c.listed.clone();
        shuffled.reverse();
        let other = run(&c.w.journal, &shuffled, &c.looked_up);
        assert_eq!(
            (&other.ours, &other.positions),
            (&c.r.ours, &c.r.positions),
            "case {n}"
        );
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
        let r = run(&w.journal, &[], &looked_up);
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
