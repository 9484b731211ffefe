//! Reconciliation as pure functions of the journal, the broker's orders and its positions (as
//! nautilus_trader's `execution/reconciliation`). The daemon does the I/O — lists the broker's
//! orders, looks up by client id every journaled intent the listing lacks ([`to_look_up`]),
//! reads positions — and these decide what it all means. A session's orders are recognised by
//! their deterministic client ids, never by time: a listing window that misses them (the
//! simulated broker stamps bar time; a clock may disagree) only costs a look-up.

use super::ids::is_ours;
use super::journal::Entry;
use crate::broker::simulated::f;
use crate::broker::types::{normalize_symbol, Order, Position, Side};
use std::collections::{BTreeMap, BTreeSet};

/// A journaled intent whose outcome the journal does not hold: the broker must say.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenIntent {
    pub id: String,
    pub symbol: String,
    /// Signed quantity (sells negative).
    pub qty: f64,
}

/// An outcome to append to the journal.
#[derive(Debug, Clone, PartialEq)]
pub enum Settle {
    /// The broker has it.
    Accepted {
        id: String,
        order_id: String,
        status: String,
    },
    /// A look-up found no such order: it never reached the broker.
    NotPlaced { id: String },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    /// Sent, or about to be: its outcome is the broker's to say.
    Open,
    Accepted,
    /// Refused, or never placed: final.
    Closed,
}

/// Fills already reported per order (the journal's `filled` records).
pub fn reported_fills(journal: &[Entry]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for e in journal {
        if let Entry::Filled { id, filled, .. } = e {
            let q = out.entry(id.clone()).or_insert(0.0f64);
            *q = q.max(f(*filled));
        }
    }
    out
}

/// Every intent of the journal, with its journaled fate, in journal order.
fn intents(journal: &[Entry]) -> Vec<(OpenIntent, Fate)> {
    let mut out: Vec<(OpenIntent, Fate)> = Vec::new();
    let mut at: BTreeMap<String, usize> = BTreeMap::new();
    for e in journal {
        let fate = match e {
            Entry::Intent {
                id,
                symbol,
                side,
                qty,
                ..
            } => {
                let q = f(*qty);
                let qty = if side == Side::Sell.as_str() { -q } else { q };
                let intent = OpenIntent {
                    id: id.clone(),
                    symbol: symbol.clone(),
                    qty,
                };
                at.insert(id.clone(), out.len());
                out.push((intent, Fate::Open));
                continue;
            }
            Entry::Accepted { .. } => Fate::Accepted,
            Entry::Rejected { .. } | Entry::NotPlaced { .. } => Fate::Closed,
            Entry::Unknown { .. } | Entry::Filled { .. } => continue,
        };
        if let Some(&i) = at.get(e.id()) {
            out[i].1 = fate;
        }
    }
    out
}

/// The journaled intents the broker's listing lacks (refused and never-placed ones aside): each
/// is looked up by its client id before anything is decided.
pub fn to_look_up(journal: &[Entry], listed: &[Order]) -> Vec<String> {
    let have: BTreeSet<&str> = listed.iter().map(|o| o.client_order_id.as_str()).collect();
    intents(journal)
        .into_iter()
        .filter(|(i, fate)| *fate != Fate::Closed && !have.contains(i.id.as_str()))
        .map(|(i, _)| i.id)
        .collect()
}

/// Whether snapshot `b` of an order is at least as far along as `a` (fills never go back, a
/// terminal status never reopens).
pub fn not_older(a: &Order, b: &Order) -> bool {
    b.filled_qty >= a.filled_qty && (b.status.is_terminal() || !a.status.is_terminal())
}

pub struct Inputs<'a> {
    pub session: &'a str,
    /// Orders the broker made for the models (flatten-all's closing orders).
    pub adopted: &'a BTreeSet<String>,
    pub journal: &'a [Entry],
    /// The broker's listing of recent orders (any window).
    pub listed: &'a [Order],
    /// Look-ups by client id: `None` when the broker has no such order. An id missing from the
    /// map could not be looked up (an error): its fate stays unknown.
    pub looked_up: &'a BTreeMap<String, Option<Order>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reconciled {
    /// This session's orders at the broker, the newest snapshot of each, by client id.
    pub ours: BTreeMap<String, Order>,
    pub external_orders: Vec<Order>,
    /// Outcomes the journal lacks.
    pub settle: Vec<Settle>,
    /// Intents whose fate nobody could tell yet: counted in flight, looked up again.
    pub unknown: Vec<OpenIntent>,
    /// The session's position per normalized symbol: its orders' fills, signed.
    pub positions: BTreeMap<String, f64>,
}

pub fn reconcile(i: &Inputs) -> Reconciled {
    let mut r = Reconciled::default();
    let mine = |id: &str| is_ours(i.session, id) || i.adopted.contains(id);
    let found = i.listed.iter().chain(i.looked_up.values().flatten());
    for o in found {
        if !mine(&o.client_order_id) {
            if !r.external_orders.iter().any(|x| x.id == o.id) {
                r.external_orders.push(o.clone());
            }
            continue;
        }
        match r.ours.get(&o.client_order_id) {
            Some(have) if !not_older(have, o) => {}
            _ => {
                r.ours.insert(o.client_order_id.clone(), o.clone());
            }
        }
    }
    for (intent, fate) in intents(i.journal) {
        match (fate, r.ours.get(&intent.id)) {
            (Fate::Open, Some(o)) => r.settle.push(Settle::Accepted {
                id: intent.id.clone(),
                order_id: o.id.clone(),
                status: o.status.as_str().to_string(),
            }),
            (Fate::Open, None) if matches!(i.looked_up.get(&intent.id), Some(None)) => {
                r.settle.push(Settle::NotPlaced {
                    id: intent.id.clone(),
                })
            }
            (Fate::Open, None) => r.unknown.push(intent),
            _ => {}
        }
    }
    for o in r.ours.values() {
        let q = f(o.filled_qty);
        *r.positions.entry(normalize_symbol(&o.symbol)).or_default() +=
            if o.side == Side::Sell { -q } else { q };
    }
    r
}

/// The broker's quantity of a symbol the session trades, against what its own orders add up to
/// and what it has accepted as someone else's: they no longer agree (a split, a trade outside
/// quantdeck), so the book is wrong and the symbol stops trading.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub symbol: String,
    pub broker: f64,
    pub book: f64,
    /// The part of the broker's quantity known to be someone else's.
    pub external: f64,
}

impl Mismatch {
    pub fn detail(&self) -> String {
        let expected = self.book + self.external;
        format!(
            "the broker holds {} but the session's orders add up to {}{} (a split, or a trade outside quantdeck?); trading in it stopped — check the position, then clear (`quantdeck paper clear`)",
            trim(self.broker),
            trim(self.book),
            if self.external != 0.0 {
                format!(" and {} was someone else's ({} expected)", trim(self.external), trim(expected))
            } else {
                String::new()
            }
        )
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PositionCheck {
    /// The broker's quantity beyond the session's, per symbol the broker or the session holds.
    pub external: Vec<(String, f64)>,
    /// What is accepted as someone else's from now on (the next check's `baseline`).
    pub baseline: BTreeMap<String, f64>,
    pub mismatched: Vec<Mismatch>,
}

/// Positions at the broker against the session's (`ours`, by normalized symbol). `traded`: the
/// symbols the session's models trade; `busy`: symbols with an order in flight (a fill not seen
/// yet would look like a mismatch). A traded symbol's external part is fixed when first seen;
/// any later change is a mismatch. Other symbols are just someone else's.
pub fn check_positions(
    positions: &[Position],
    ours: &BTreeMap<String, f64>,
    baseline: &BTreeMap<String, f64>,
    traded: &BTreeSet<String>,
    busy: &BTreeSet<String>,
) -> PositionCheck {
    let mut broker: BTreeMap<String, (String, f64)> = BTreeMap::new();
    for p in positions {
        let e = broker
            .entry(normalize_symbol(&p.symbol))
            .or_insert((p.symbol.clone(), 0.0));
        e.1 += f(p.qty);
    }
    let mut keys: BTreeSet<String> = broker.keys().cloned().collect();
    keys.extend(ours.keys().cloned());
    keys.extend(traded.iter().cloned());
    let mut out = PositionCheck::default();
    for k in keys {
        let (name, held) = broker.get(&k).cloned().unwrap_or((k.clone(), 0.0));
        let book = ours.get(&k).copied().unwrap_or(0.0);
        let ext = held - book;
        let tol = 1e-9 + 1e-6 * held.abs().max(book.abs());
        if ext.abs() > tol {
            out.external.push((name.clone(), ext));
        }
        let known = baseline.get(&k).copied();
        let kept = match known {
            Some(base) if traded.contains(&k) && busy.contains(&k) => base,
            Some(base) if traded.contains(&k) && (ext - base).abs() > tol => {
                out.mismatched.push(Mismatch {
                    symbol: name,
                    broker: held,
                    book,
                    external: base,
                });
                base
            }
            Some(base) if traded.contains(&k) => base,
            // First sight of a traded symbol (nothing in flight), or anyone else's symbol.
            _ if busy.contains(&k) => continue,
            _ => ext,
        };
        if traded.contains(&k) || kept.abs() > tol {
            out.baseline
                .insert(k, if kept.abs() > tol { kept } else { 0.0 });
        }
    }
    out
}

#[cfg(test)]
mod positions_tests;
#[cfg(test)]
mod tests;
