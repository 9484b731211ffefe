//! Orders out, and the broker's truth in. Every order is journaled (fsync) before it is sent; a
//! submit whose outcome is unknown — a timeout, a 5xx (Alpaca can answer 500 after accepting), the
//! duplicate-id 422 — is looked up by client id before anything else. Reconciliation reads the
//! broker's orders since the session started, its positions and its account, at start and after
//! every reconnect, before any new order. Flatten-all cancels every order, closes every position
//! and checks each 207 row.

use super::daemon::{order_view, Daemon};
use super::ids::{client_order_id, Intent};
use super::journal::{Entry, Journal};
use super::orders::Planned;
use crate::broker::simulated::f;
use crate::broker::types::{normalize_symbol, OrderStatus};
use crate::broker::{Broker, BrokerError};
use crate::jobs::Event;
use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashSet;

/// How many look-ups an order with an unknown outcome gets before the daemon stops waiting.
const LOOKUPS: u32 = 3;

impl<B: Broker> Daemon<'_, B> {
    /// Sends one planned order for `symbol` decided on the bar starting at `bar`; true if the
    /// broker has it (placed now, or found placed before).
    pub(super) async fn execute(
        &mut self,
        symbol: &str,
        bar: DateTime<Utc>,
        plan: Planned,
    ) -> Result<bool> {
        let mut plan = plan;
        for attempt in 1..=2u32 {
            let id = client_order_id(&self.state.session, symbol, bar, plan.intent, attempt);
            // Decided before a crash: the broker knows whether it went out.
            if let Some(o) = self.ledger.get(&id).cloned() {
                self.absorb(o);
                return Ok(true);
            }
            let order = plan.to_order(&id, symbol);
            self.journal.append(&Entry::Intent {
                id: id.clone(),
                symbol: symbol.to_string(),
                side: plan.side.as_str().to_string(),
                qty: plan.qty,
                order_type: plan.order_type.as_str().to_string(),
                time_in_force: plan.time_in_force.as_str().to_string(),
                limit_price: plan.limit_price,
                intent: plan.intent,
                bar,
                at: Utc::now(),
            })?;
            match self.broker.submit(&order).await {
                Ok(o) => {
                    self.accepted(&o.client_order_id, &o.id, o.status.as_str())?;
                    self.orders_sent += 1;
                    self.absorb(o);
                    return Ok(true);
                }
                Err(e) if e.needs_lookup() => {
                    self.journal.append(&Entry::Unknown {
                        id: id.clone(),
                        reason: e.to_string(),
                        at: Utc::now(),
                    })?;
                    self.sink.warn(format!("{id}: {e}"));
                    return self.resolve(&id, &order).await;
                }
                Err(BrokerError::InsufficientBuyingPower { message })
                    if attempt == 1 && plan.intent == Intent::Entry =>
                {
                    // Gates resize before they block: once, to what the account now allows.
                    self.reject(&id, &format!("insufficient buying power: {message}"))?;
                    self.refresh_account().await;
                    let bp = self.account.as_ref().map_or(0.0, |a| f(a.buying_power))
                        - self.ledger.open_buy_notional(|s| self.price(s));
                    let px = self.price(symbol).unwrap_or(0.0);
                    let fit = if px > 0.0 {
                        (bp * 0.98 / px).max(0.0)
                    } else {
                        0.0
                    };
                    let smaller = crate::broker::simulated::dec(fit).min(plan.qty);
                    let smaller = if plan.qty.fract().is_zero() {
                        smaller.floor()
                    } else {
                        smaller.round_dp(9)
                    };
                    if smaller <= rust_decimal::Decimal::ZERO {
                        return Ok(false);
                    }
                    self.sink.warn(format!(
                        "{symbol}: resizing the entry from {} to {smaller} to fit buying power",
                        plan.qty
                    ));
                    plan.qty = smaller;
                }
                Err(e) => {
                    if matches!(
                        e,
                        BrokerError::Transport { .. } | BrokerError::RateLimited { .. }
                    ) {
                        self.health.rest_errors += 1;
                    }
                    self.reject(&id, &e.to_string())?;
                    return Ok(false);
                }
            }
        }
        Ok(false)
    }

    fn accepted(&mut self, id: &str, order_id: &str, status: &str) -> Result<()> {
        self.journal.append(&Entry::Accepted {
            id: id.to_string(),
            order_id: order_id.to_string(),
            status: status.to_string(),
            at: Utc::now(),
        })
    }

    fn reject(&mut self, id: &str, error: &str) -> Result<()> {
        self.sink.warn(format!("order {id} rejected: {error}"));
        self.journal.append(&Entry::Rejected {
            id: id.to_string(),
            error: error.to_string(),
            at: Utc::now(),
        })
    }

    /// After an unknown outcome: look the order up; if the broker does not have it, send it once
    /// more under the same id (a late duplicate would be refused by the broker).
    async fn resolve(&mut self, id: &str, order: &crate::broker::types::NewOrder) -> Result<bool> {
        for n in 0..LOOKUPS {
            if n > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(200 << n)).await;
            }
            match self.broker.order_by_client_id(id).await {
                Ok(Some(o)) => {
                    self.sink.info(format!(
                        "{id}: found at the broker ({}) — adopted, not resent",
                        o.status.as_str()
                    ));
                    self.accepted(id, &o.id, o.status.as_str())?;
                    self.absorb(o);
                    return Ok(true);
                }
                Ok(None) => {
                    // Not there: the first submit never arrived. Same id again is safe.
                    match self.broker.submit(order).await {
                        Ok(o) => {
                            self.accepted(id, &o.id, o.status.as_str())?;
                            self.orders_sent += 1;
                            self.absorb(o);
                            return Ok(true);
                        }
                        Err(e) if e.needs_lookup() => continue,
                        Err(e) => {
                            self.reject(id, &e.to_string())?;
                            return Ok(false);
                        }
                    }
                }
                Err(e) => {
                    self.health.rest_errors += 1;
                    self.sink.warn(format!("{id}: look-up failed: {e}"));
                }
            }
        }
        // Still unknown: keep looking it up from the housekeeping loop.
        self.unresolved
            .insert(id.to_string(), std::time::Instant::now());
        Ok(true)
    }

    /// Orders of ours that stayed silent (no terminal update) for `order_timeout`, and submits
    /// whose outcome is still unknown: asked for over REST. Fills have been seen never to arrive
    /// on the stream.
    pub(super) async fn chase_silent_orders(&mut self) {
        let timeout = self.settings.order_timeout;
        let mut ids: Vec<String> = self
            .ledger
            .open()
            .map(|o| o.client_order_id.clone())
            .filter(|id| self.heard.get(id).is_none_or(|t| t.elapsed() >= timeout))
            .collect();
        ids.extend(
            self.unresolved
                .iter()
                .filter(|(_, t)| t.elapsed() >= timeout)
                .map(|(id, _)| id.clone()),
        );
        ids.sort();
        ids.dedup();
        for id in ids {
            self.heard.insert(id.clone(), std::time::Instant::now());
            match self.broker.order_by_client_id(&id).await {
                Ok(Some(o)) => {
                    if self.unresolved.remove(&id).is_some() {
                        let _ = self.accepted(&id, &o.id, o.status.as_str());
                    }
                    self.absorb(o);
                }
                Ok(None) => {
                    if self.unresolved.remove(&id).is_some() {
                        let _ = self.journal.append(&Entry::NotPlaced {
                            id: id.clone(),
                            at: Utc::now(),
                        });
                        self.sink
                            .warn(format!("{id}: the broker never received it"));
                    }
                }
                Err(e) => {
                    self.health.rest_errors += 1;
                    self.sink.warn(format!("{id}: look-up failed: {e}"));
                }
            }
        }
    }

    /// The broker's view, taken as the truth: this session's orders since it started (journal
    /// intents without an outcome are settled against them), positions, account. Anything not
    /// ours is EXTERNAL: shown, never traded by a model.
    pub(super) async fn reconcile(&mut self) -> Result<()> {
        let since = self.state.started - Duration::minutes(1);
        let orders = match self.broker.orders_since(since).await {
            Ok(o) => o,
            Err(e) => {
                // No new order goes out until the broker answers.
                self.health.rest_errors += 1;
                self.sink.warn(format!("reconcile: orders: {e}; retrying"));
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                return Ok(());
            }
        };
        let positions = match self.broker.positions().await {
            Ok(p) => p,
            Err(e) => {
                self.health.rest_errors += 1;
                self.sink
                    .warn(format!("reconcile: positions: {e}; retrying"));
                return Ok(());
            }
        };
        self.refresh_account().await;
        let known: HashSet<String> = orders.iter().map(|o| o.client_order_id.clone()).collect();
        for o in orders {
            self.absorb(o);
        }
        // Intents the journal has but whose outcome it lacks: the broker decides.
        let entries = Journal::read(&self.dir.join(super::JOURNAL))?;
        let mut open_intents: Vec<String> = Vec::new();
        for e in &entries {
            match e {
                Entry::Intent { id, .. } => open_intents.push(id.clone()),
                Entry::Accepted { id, .. }
                | Entry::Rejected { id, .. }
                | Entry::NotPlaced { id, .. } => open_intents.retain(|x| x != id),
                Entry::Unknown { .. } => {}
            }
        }
        for id in open_intents {
            if known.contains(&id) {
                let oid = self
                    .ledger
                    .get(&id)
                    .map(|o| o.id.clone())
                    .unwrap_or_default();
                let st = self
                    .ledger
                    .get(&id)
                    .map(|o| o.status.as_str().to_string())
                    .unwrap_or_default();
                self.accepted(&id, &oid, &st)?;
            } else {
                match self.broker.order_by_client_id(&id).await {
                    Ok(Some(o)) => {
                        self.accepted(&id, &o.id, o.status.as_str())?;
                        self.absorb(o);
                    }
                    Ok(None) => self.journal.append(&Entry::NotPlaced {
                        id: id.clone(),
                        at: Utc::now(),
                    })?,
                    Err(_) => {
                        self.unresolved.insert(id, std::time::Instant::now());
                    }
                }
            }
        }
        self.positions = positions;
        for p in &self.positions {
            if let Some(px) = p.current_price {
                self.prices
                    .entry(normalize_symbol(&p.symbol))
                    .or_insert((f(px), Utc::now()));
            }
        }
        let symbols: Vec<String> = self.slots.iter().map(|s| s.symbol.name.clone()).collect();
        for s in &symbols {
            self.rebuild_book(s);
        }
        let external = self.ledger.external_positions(&self.positions);
        self.external = external.clone();
        self.last_positions = Some(std::time::Instant::now());
        let ext_orders = self.ledger.external_open().count();
        self.sink.info(format!(
            "reconciled with the broker: {} order(s) of this session, {} open external order(s), {} external position(s){}",
            self.ledger.ours().count(),
            ext_orders,
            external.len(),
            if external.is_empty() {
                String::new()
            } else {
                format!(
                    " ({}) — shown as EXTERNAL, never traded by a model",
                    external
                        .iter()
                        .map(|(s, q)| format!("{s} {q:+}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ));
        self.needs_resync = false;
        self.save_state()?;
        Ok(())
    }

    /// Flatten-all (latched): entries are already blocked by the latch; cancel every open order,
    /// close every position, and verify each multi-status row and the positions afterwards.
    pub(super) async fn flatten(&mut self) -> Result<()> {
        self.sink
            .warn("flatten-all: cancelling every open order and closing every position");
        let mut rows = Vec::new();
        let mut ok = true;
        match self.broker.cancel_all().await {
            Ok(r) => {
                for row in r {
                    let good = row.is_ok();
                    ok &= good;
                    rows.push(format!(
                        "cancel {}: {}{}",
                        row.order_id,
                        row.status,
                        row.error
                            .map(|e| format!(" {}", e.message))
                            .unwrap_or_default()
                    ));
                    if let Some(o) = row.order {
                        self.absorb(o);
                    }
                }
            }
            Err(e) => {
                ok = false;
                rows.push(format!("cancel all: {e}"));
            }
        }
        match self.broker.close_all().await {
            Ok(r) => {
                for row in r {
                    let good = row.is_ok();
                    ok &= good;
                    rows.push(format!(
                        "close {}: {}{}",
                        row.symbol,
                        row.status,
                        row.error
                            .map(|e| format!(" {}", e.message))
                            .unwrap_or_default()
                    ));
                    if let Some(o) = row.order {
                        // A model's position closed by the broker's own order: it counts as
                        // the model's trade (its fill brings the model's position to zero).
                        let key = normalize_symbol(&o.symbol);
                        // (The session's models are its slots, or — for a flatten made while the
                        // daemon is down — the symbols its state remembers.)
                        let models_symbol = self
                            .slots
                            .iter()
                            .map(|s| s.symbol.name.as_str())
                            .chain(self.state.models.keys().map(String::as_str))
                            .any(|s| normalize_symbol(s) == key);
                        if models_symbol && !o.client_order_id.is_empty() {
                            self.state.adopted.push(o.client_order_id.clone());
                            self.ledger.adopt(&o.client_order_id);
                            self.absorb(o.clone());
                        }
                        self.sink.emit(Event::Order(order_view(&o, !models_symbol)));
                    }
                }
            }
            Err(e) => {
                ok = false;
                rows.push(format!("close all: {e}"));
            }
        }
        // The closing orders are the broker's own: wait until positions read flat.
        let mut flat = false;
        for n in 0..10 {
            if n > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            if let Ok(p) = self.broker.positions().await {
                flat = p.is_empty();
                self.positions = p;
                if flat {
                    break;
                }
            }
        }
        if !flat {
            ok = false;
            rows.push(format!(
                "positions still open: {}",
                self.positions
                    .iter()
                    .map(|p| format!("{} {}", p.symbol, p.qty))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for m in self.state.models.values_mut() {
            m.level = 0.0;
        }
        self.external = self.ledger.external_positions(&self.positions);
        if let Some(fl) = self.state.flatten.as_mut() {
            fl.done = Some(Utc::now());
            fl.ok = ok;
            fl.rows = rows.clone();
        }
        self.save_state()?;
        self.needs_resync = true;
        let summary = if ok {
            "flatten-all done: no open orders, no positions".to_string()
        } else {
            format!("flatten-all finished with problems: {}", rows.join("; "))
        };
        if ok {
            self.sink.warn(summary);
        } else {
            self.sink.error(summary);
        }
        self.emit_snapshot();
        Ok(())
    }

    /// Flatten-all from outside a running loop (`quantdeck paper flatten` with no daemon): the
    /// latch is already set in the state; returns the outcome line.
    pub async fn flatten_once(&mut self) -> Result<String> {
        self.flatten().await?;
        let fl = self.state.flatten.clone();
        Ok(match fl {
            Some(f) if f.ok => "flatten-all done: no open orders, no positions (latched until `quantdeck paper clear`)".into(),
            Some(f) => format!("flatten-all finished with problems: {}", f.rows.join("; ")),
            None => "flatten-all: nothing recorded".into(),
        })
    }

    /// Orders still open at the broker from this session (for the snapshot's count).
    pub fn open_orders(&self) -> usize {
        self.ledger
            .ours()
            .filter(|o| !matches!(o.status, OrderStatus::Filled | OrderStatus::Canceled))
            .filter(|o| o.status.is_open())
            .count()
    }
}
