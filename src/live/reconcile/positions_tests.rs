//! Property tests of the position check: random books, baselines, orders in flight and splits.

use super::*;
use crate::broker::types::{BrokerAssetClass, PositionSide};
use crate::rng::Rng;

const SYMBOLS: [&str; 3] = ["AAA", "BTC/USD", "ZZZ"];

fn position(symbol: &str, qty: f64) -> Position {
    let d = crate::broker::simulated::dec;
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

/// The broker's positions, the session's book, what was accepted as someone else's, and the
/// symbols whose broker quantity moved (a split) since.
struct Books {
    traded: BTreeSet<String>,
    busy: BTreeSet<String>,
    ours: BTreeMap<String, f64>,
    baseline: BTreeMap<String, f64>,
    positions: Vec<Position>,
    changed: BTreeSet<String>,
}

fn books(rng: &mut Rng) -> Books {
    let pick = |rng: &mut Rng, n| {
        SYMBOLS
            .iter()
            .filter(|_| rng.below(n) == 0)
            .map(|s| normalize_symbol(s))
            .collect::<BTreeSet<String>>()
    };
    let traded = pick(rng, 2);
    let busy = traded.intersection(&pick(rng, 4)).cloned().collect();
    let mut b = Books {
        traded,
        busy,
        ours: BTreeMap::new(),
        baseline: BTreeMap::new(),
        positions: Vec::new(),
        changed: BTreeSet::new(),
    };
    for s in SYMBOLS {
        let k = normalize_symbol(s);
        let mine = [0.0, 2.0, 5.5][rng.below(3)];
        let theirs = [0.0, 0.0, 3.0][rng.below(3)];
        if mine != 0.0 {
            b.ours.insert(k.clone(), mine);
        }
        if rng.below(3) != 0 {
            b.baseline.insert(k.clone(), theirs);
        }
        // Now and then a split (or a hand trade) moves the broker's quantity.
        let split = rng.below(5) == 0 && mine != 0.0;
        if split && b.baseline.contains_key(&k) {
            b.changed.insert(k.clone());
        }
        let held = if split { mine * 2.0 } else { mine } + theirs;
        if held != 0.0 {
            b.positions.push(position(s, held));
        }
    }
    b
}

#[test]
fn positions_conserve_and_a_changed_external_part_is_a_mismatch() {
    let mut rng = Rng::new(11);
    for n in 0..5_000 {
        let b = books(&mut rng);
        let c = check_positions(&b.positions, &b.ours, &b.baseline, &b.traded, &b.busy);
        // Conservation: the broker's quantity is the session's plus the external part.
        for p in &b.positions {
            let k = normalize_symbol(&p.symbol);
            let ext: f64 = c
                .external
                .iter()
                .filter(|(s, _)| normalize_symbol(s) == k)
                .map(|(_, q)| q)
                .sum();
            let mine = b.ours.get(&k).copied().unwrap_or(0.0);
            assert!((f(p.qty) - mine - ext).abs() < 1e-9, "case {n}: {k}");
        }
        // Only traded symbols with nothing in flight stop, and every moved one does.
        for m in &c.mismatched {
            let k = normalize_symbol(&m.symbol);
            assert!(b.traded.contains(&k) && !b.busy.contains(&k), "case {n}");
            assert!(m.detail().contains("split"));
        }
        for k in &b.changed {
            let stopped = c
                .mismatched
                .iter()
                .any(|m| normalize_symbol(&m.symbol) == *k);
            let want = b.traded.contains(k) && !b.busy.contains(k);
            assert_eq!(stopped, want, "case {n}: {k}");
        }
        // A second check with the new baseline flags the same symbols and no others.
        let again = check_positions(&b.positions, &b.ours, &c.baseline, &b.traded, &b.busy);
        assert_eq!(again.mismatched, c.mismatched, "case {n}");
    }
}

#[test]
fn someone_elses_holding_is_accepted_once_and_a_split_after_it_stops_the_symbol() {
    let traded = BTreeSet::from(["AAA".to_string()]);
    let none = BTreeSet::new();
    let ours = BTreeMap::from([("AAA".to_string(), 10.0)]);
    // First sight: 4 shares bought by hand beside the model's 10.
    let c = check_positions(
        &[position("AAA", 14.0)],
        &ours,
        &BTreeMap::new(),
        &traded,
        &none,
    );
    assert!(c.mismatched.is_empty());
    assert_eq!(c.baseline.get("AAA"), Some(&4.0));
    // A 2:1 split: the broker holds 28.
    let c = check_positions(&[position("AAA", 28.0)], &ours, &c.baseline, &traded, &none);
    assert_eq!(c.mismatched.len(), 1);
    assert_eq!((c.mismatched[0].broker, c.mismatched[0].book), (28.0, 10.0));
}
