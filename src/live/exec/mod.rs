//! Execution: the one component that talks orders with the broker. It owns the broker, the
//! journal, the ledger (what the broker says happened to each order) and the orders in flight.
//! Every order is journaled (fsync) before it is sent; a submit whose outcome is unknown — a
//! timeout, a 5xx (Alpaca can answer 500 after accepting), the duplicate-id 422 — is looked up
//! by client id before anything else (`resolve`). Every change the broker reports goes through
//! [`Execution::absorb`], whatever its source (the submit's reply, the trade stream, a look-up, a
//! reconciliation), so each fill is reported once.

mod flatten;
pub mod inflight;
mod resolve;
mod sync;

pub use inflight::InFlight;

use super::clock::Clock;
use super::ids::{client_order_id, Intent};
use super::journal::{Entry, Journal};
use super::ledger::Ledger;
use super::mirror::Mirror;
use super::orders::Planned;
use super::output::{Alert, Output};
use super::view::{FillView, OrderView, ProblemOrder};
use crate::broker::simulated::{dec, f};
use crate::broker::types::{Order, Side};
use crate::broker::{Broker, BrokerError};
use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// Rejected and unknown-outcome orders kept for the pane.
const PROBLEMS: usize = 20;

pub struct Execution<'a, B: Broker> {
    pub broker: B,
    journal: Journal,
    pub ledger: Ledger,
    pub inflight: InFlight,
    out: &'a dyn Output,
    clock: Arc<dyn Clock>,
    session: String,
    /// An order silent this long is looked up over REST.
    order_timeout: Duration,
    /// The journal lost entries while the session was stopped: the next reconciliation takes
    /// the fills the broker holds as reported already (they were, before the loss).
    pub journal_lost: bool,
    /// Fills already reported per order (from the journal), so a restart never repeats one.
    reported: HashMap<String, f64>,
    pub problems: VecDeque<ProblemOrder>,
    pub orders_sent: usize,
    pub fills: usize,
    pub rest_errors: u64,
    /// Symbols whose fills moved since the daemon last rebuilt their books.
    moved: BTreeSet<String>,
}

fn order_view(o: &Order, external: bool) -> OrderView {
    OrderView {
        client_order_id: o.client_order_id.clone(),
        symbol: o.symbol.clone(),
        side: o.side.as_str().to_string(),
        qty: o.qty.map(f).unwrap_or(0.0),
        filled_qty: f(o.filled_qty),
        fill_price: o.filled_avg_price.map(f),
        order_type: o.order_type.as_str().to_string(),
        status: o.status.as_str().to_string(),
        external,
        at: o.updated_at.or(o.submitted_at),
    }
}

pub fn view_of(o: &Order, external: bool) -> OrderView {
    order_view(o, external)
}

impl<'a, B: Broker> Execution<'a, B> {
    pub fn new(
        broker: B,
        journal: Journal,
        ledger: Ledger,
        out: &'a dyn Output,
        clock: Arc<dyn Clock>,
        session: &str,
        order_timeout: std::time::Duration,
    ) -> Self {
        if let Some(r) = journal.repaired() {
            out.warn(r.message());
        }
        let reported = Journal::read(journal.path())
            .map(|e| super::reconcile::reported_fills(&e).into_iter().collect())
            .unwrap_or_default();
        Execution {
            broker,
            journal,
            ledger,
            inflight: InFlight::default(),
            out,
            clock,
            session: session.to_string(),
            order_timeout: Duration::from_std(order_timeout).unwrap_or(Duration::seconds(30)),
            reported,
            problems: VecDeque::new(),
            orders_sent: 0,
            fills: 0,
            rest_errors: 0,
            moved: BTreeSet::new(),
            journal_lost: false,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn journal_len(&self) -> Result<u64> {
        self.journal.synced_len()
    }

    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.clock = clock;
    }

    /// Takes the broker's latest snapshot of an order. Returns the symbol whose fills moved.
    pub fn absorb(&mut self, o: Order) -> Option<String> {
        let view = order_view(&o, false);
        let snapshot = o.clone();
        let change = self.ledger.absorb(o)?;
        self.inflight.update(&snapshot, self.now());
        if change.filled != 0.0 {
            self.fills += 1;
            self.report_fill(&snapshot, change.total_filled, change.price);
            self.moved.insert(change.symbol.clone());
        }
        if change.filled != 0.0 || change.newly_terminal {
            self.out.order(&view);
        }
        (change.filled != 0.0).then_some(change.symbol)
    }

    /// One `Fill` per new fill of an order, whichever way it was learned; journaled as reported.
    fn report_fill(&mut self, o: &Order, total: f64, price: Option<f64>) {
        let done = self
            .reported
            .get(&o.client_order_id)
            .copied()
            .unwrap_or(0.0);
        let qty = total - done;
        if qty <= 1e-12 {
            return;
        }
        let px = price.unwrap_or(0.0);
        let fill = FillView {
            at: o.filled_at.or(o.updated_at).unwrap_or_else(|| self.now()),
            client_order_id: o.client_order_id.clone(),
            symbol: o.symbol.clone(),
            side: o.side.as_str().to_string(),
            qty,
            price: px,
            execution_id: None,
        };
        self.out.fill(&fill);
        self.out.alert(&Alert::Fill {
            symbol: o.symbol.clone(),
            side: fill.side.clone(),
            qty,
            price: px,
        });
        self.reported.insert(o.client_order_id.clone(), total);
        let e = Entry::Filled {
            id: o.client_order_id.clone(),
            filled: o.filled_qty,
            at: self.now(),
        };
        if let Err(e) = self.journal.note(&e) {
            self.out.warn(format!("{e:#}"));
        }
    }

    /// Sends one planned order for `symbol` decided on the bar starting at `bar`; true if the
    /// broker has it (placed now, found placed before, or of unknown outcome and being chased).
    pub async fn execute(
        &mut self,
        mirror: &mut Mirror,
        symbol: &str,
        bar: DateTime<Utc>,
        plan: Planned,
    ) -> Result<bool> {
        let mut plan = plan;
        for attempt in 1..=2u32 {
            match self.attempt(mirror, symbol, bar, &plan, attempt).await? {
                Attempt::Done(sent) => return Ok(sent),
                Attempt::Resize(q) => plan.qty = q,
            }
        }
        Ok(false)
    }

    /// One attempt under the id of (session, symbol, bar, intent, attempt).
    async fn attempt(
        &mut self,
        mirror: &mut Mirror,
        symbol: &str,
        bar: DateTime<Utc>,
        plan: &Planned,
        attempt: u32,
    ) -> Result<Attempt> {
        let id = client_order_id(&self.session, symbol, bar, plan.intent, attempt);
        // Decided before a crash: the broker knows whether it went out.
        if let Some(o) = self.ledger.get(&id).cloned() {
            self.absorb(o);
            return Ok(Attempt::Done(true));
        }
        if self.inflight.get(&id).is_some() {
            return Ok(Attempt::Done(true));
        }
        let order = plan.to_order(&id, symbol);
        self.journal_intent(&id, symbol, bar, plan)?;
        match self.broker.submit(&order).await {
            Ok(o) => {
                self.accepted(&o.client_order_id, &o.id, o.status.as_str())?;
                self.orders_sent += 1;
                self.absorb(o);
                Ok(Attempt::Done(true))
            }
            Err(e) if e.needs_lookup() => {
                self.journal.append(&Entry::Unknown {
                    id: id.clone(),
                    reason: e.to_string(),
                    at: self.now(),
                })?;
                self.out.warn(format!("{id}: {e}"));
                self.problem(&id, symbol, plan, "unknown", &e.to_string());
                self.resolve(&id, &order).await.map(Attempt::Done)
            }
            Err(BrokerError::InsufficientBuyingPower { message })
                if attempt == 1 && plan.intent == Intent::Entry =>
            {
                let why = format!("insufficient buying power: {message}");
                self.reject(&id, symbol, plan, &why)?;
                Ok(match self.resized(mirror, symbol, plan).await {
                    Some(q) => Attempt::Resize(q),
                    None => Attempt::Done(false),
                })
            }
            Err(e) => {
                if matches!(
                    e,
                    BrokerError::Transport { .. } | BrokerError::RateLimited { .. }
                ) {
                    self.rest_errors += 1;
                }
                self.reject(&id, symbol, plan, &e.to_string())?;
                Ok(Attempt::Done(false))
            }
        }
    }

    /// The intent, on disk before the broker hears of it, and counted in flight from now.
    fn journal_intent(
        &mut self,
        id: &str,
        symbol: &str,
        bar: DateTime<Utc>,
        plan: &Planned,
    ) -> Result<()> {
        self.journal.append(&Entry::Intent {
            id: id.to_string(),
            symbol: symbol.to_string(),
            side: plan.side.as_str().to_string(),
            qty: plan.qty,
            order_type: plan.order_type.as_str().to_string(),
            time_in_force: plan.time_in_force.as_str().to_string(),
            limit_price: plan.limit_price,
            intent: plan.intent,
            bar,
            at: self.now(),
        })?;
        let q = f(plan.qty);
        let signed = if plan.side == Side::Sell { -q } else { q };
        self.inflight.intent(id, symbol, signed, self.now());
        Ok(())
    }

    /// Gates resize before they block: once, to what the account now allows.
    async fn resized(
        &mut self,
        mirror: &mut Mirror,
        symbol: &str,
        plan: &Planned,
    ) -> Option<rust_decimal::Decimal> {
        let now = self.now();
        mirror
            .refresh_account(&self.broker, self.out, now, self.fills)
            .await;
        let bp = mirror.buying_power(0.0) - self.inflight.buy_notional(|s| mirror.price(s));
        let q = smaller(plan, bp, mirror.price(symbol).unwrap_or(0.0))?;
        self.out.warn(format!(
            "{symbol}: resizing the entry from {} to {q} to fit buying power",
            plan.qty
        ));
        Some(q)
    }

    fn accepted(&mut self, id: &str, order_id: &str, status: &str) -> Result<()> {
        self.journal.append(&Entry::Accepted {
            id: id.to_string(),
            order_id: order_id.to_string(),
            status: status.to_string(),
            at: self.now(),
        })
    }

    fn reject(&mut self, id: &str, symbol: &str, plan: &Planned, error: &str) -> Result<()> {
        self.out.warn(format!("order {id} rejected: {error}"));
        self.inflight.drop(id);
        self.problem(id, symbol, plan, "rejected", error);
        self.out.alert(&Alert::Rejected {
            symbol: symbol.to_string(),
            id: id.to_string(),
            reason: error.to_string(),
        });
        self.journal.append(&Entry::Rejected {
            id: id.to_string(),
            error: error.to_string(),
            at: self.now(),
        })
    }

    fn problem(&mut self, id: &str, symbol: &str, plan: &Planned, state: &str, reason: &str) {
        self.problems.retain(|p| p.client_order_id != id);
        self.problems.push_back(ProblemOrder {
            client_order_id: id.to_string(),
            symbol: symbol.to_string(),
            side: plan.side.as_str().to_string(),
            qty: f(plan.qty),
            state: state.to_string(),
            reason: reason.to_string(),
            at: self.now(),
        });
        while self.problems.len() > PROBLEMS {
            self.problems.pop_front();
        }
    }

    /// An unknown outcome settled: the problem row says how.
    fn settled(&mut self, id: &str, how: &str) {
        if let Some(p) = self.problems.iter_mut().find(|p| p.client_order_id == id) {
            if p.state == "unknown" {
                p.state = how.to_string();
            }
        }
    }

    /// The symbols whose fills moved since the last call (their books need rebuilding).
    pub fn take_moved(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.moved)
    }

    /// Symbols the session trades with something in flight.
    pub fn busy_symbols(&self) -> BTreeSet<String> {
        self.inflight.busy_symbols()
    }
}

/// What one attempt at an order came to.
enum Attempt {
    /// True when the broker has it (or its fate is being chased).
    Done(bool),
    /// Refused for buying power: try again at this size.
    Resize(rust_decimal::Decimal),
}

/// The entry cut to what `buying_power` allows at `price` (a 2 % margin), whole where it was
/// whole; `None` when nothing fits.
fn smaller(plan: &Planned, buying_power: f64, price: f64) -> Option<rust_decimal::Decimal> {
    let fit = if price > 0.0 {
        (buying_power * 0.98 / price).max(0.0)
    } else {
        0.0
    };
    let q = dec(fit).min(plan.qty);
    let q = if plan.qty.fract().is_zero() {
        q.floor()
    } else {
        q.round_dp(9)
    };
    (q > rust_decimal::Decimal::ZERO).then_some(q)
}
