//! Reconciliation's I/O: the broker's orders since the session started, a look-up by client id
//! of every journaled intent the listing lacks, positions and the account — then the pure
//! `reconcile` says what it means, and the outcomes it settles are journaled. Nothing new is
//! sent until this has succeeded, at start and after every reconnect.

use super::Execution;
use crate::broker::types::Order;
use crate::broker::Broker;
use crate::live::journal::{Entry, Journal};
use crate::live::mirror::Mirror;
use crate::live::reconcile::{reconcile, to_look_up, Inputs, Reconciled, Settle};
use anyhow::Result;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

impl<B: Broker> Execution<'_, B> {
    /// The broker's view, taken as the truth. `None` when the broker did not answer (retried
    /// by the caller before any new order).
    pub async fn reconcile(
        &mut self,
        mirror: &mut Mirror,
        adopted: &BTreeSet<String>,
        since: DateTime<Utc>,
    ) -> Result<Option<Reconciled>> {
        let listed = match self.broker.orders_since(since).await {
            Ok(o) => o,
            Err(e) => {
                self.rest_errors += 1;
                self.out.warn(format!("reconcile: orders: {e}; retrying"));
                return Ok(None);
            }
        };
        let now = self.now();
        if !mirror.refresh_positions(&self.broker, self.out, now).await {
            return Ok(None);
        }
        mirror
            .refresh_account(&self.broker, self.out, now, self.fills)
            .await;
        let journal = Journal::read(self.journal.path())?;
        let looked_up = self.look_up(to_look_up(&journal, &listed)).await;
        let r = reconcile(&Inputs {
            session: &self.session,
            adopted,
            journal: &journal,
            listed: &listed,
            looked_up: &looked_up,
        });
        if std::mem::take(&mut self.journal_lost) {
            self.count_once(&r);
        }
        self.settle(&r, now)?;
        mirror.prices_from_positions(now);
        Ok(Some(r))
    }

    /// After a journal loss: the session's orders at the broker, their fills marked reported
    /// (and journaled so) instead of reported a second time, and said.
    fn count_once(&mut self, r: &Reconciled) {
        let mut taken = 0;
        for (id, o) in &r.ours {
            let filled = crate::broker::simulated::f(o.filled_qty);
            if filled > self.reported.get(id).copied().unwrap_or(0.0) {
                self.reported.insert(id.clone(), filled);
                taken += 1;
                let e = Entry::Filled {
                    id: id.clone(),
                    filled: o.filled_qty,
                    at: self.now(),
                };
                if let Err(e) = self.journal.note(&e) {
                    self.out.warn(format!("{e:#}"));
                }
            }
        }
        self.out.error(format!(
            "journal rebuilt from the broker: {} order(s) of this session found there, {taken} with fills taken as already reported (not reported again)",
            r.ours.len()
        ));
    }

    /// Each id's order at the broker (`None`: it has none); ids it could not answer for are
    /// left out, and stay of unknown fate.
    async fn look_up(&mut self, ids: Vec<String>) -> BTreeMap<String, Option<Order>> {
        let mut found = BTreeMap::new();
        for id in ids {
            match self.broker.order_by_client_id(&id).await {
                Ok(o) => {
                    found.insert(id, o);
                }
                Err(e) => {
                    self.rest_errors += 1;
                    self.out
                        .warn(format!("reconcile: {id}: look-up failed: {e}"));
                }
            }
        }
        found
    }

    /// Journals the outcomes reconciliation settled and takes its orders in: the ledger, and
    /// what is in flight (open orders, and intents of unknown fate at their full quantity).
    fn settle(&mut self, r: &Reconciled, now: DateTime<Utc>) -> Result<()> {
        for s in &r.settle {
            let e = match s {
                Settle::Accepted {
                    id,
                    order_id,
                    status,
                } => Entry::Accepted {
                    id: id.clone(),
                    order_id: order_id.clone(),
                    status: status.clone(),
                    at: now,
                },
                Settle::NotPlaced { id } => Entry::NotPlaced {
                    id: id.clone(),
                    at: now,
                },
            };
            self.journal.append(&e)?;
        }
        for o in r.external_orders.iter().cloned() {
            self.ledger.absorb(o);
        }
        for o in r.ours.values().cloned() {
            self.absorb(o);
        }
        // In flight from the ledger's newest snapshots (an order seen before the reconnect
        // may have changed nothing since).
        self.inflight.clear();
        let open: Vec<Order> = self.ledger.open().cloned().collect();
        for o in &open {
            self.inflight.update(o, now);
        }
        for u in &r.unknown {
            self.inflight.intent(&u.id, &u.symbol, u.qty, now);
        }
        Ok(())
    }
}
