//! Orders whose fate the daemon does not know: a submit that timed out or got a 5xx or the
//! duplicate-id 422 (looked up at once, and re-sent under the same id only when the broker has
//! no such order — a late duplicate would be refused), and orders silent for `order_timeout`
//! (the trade stream is a hint: fills have been seen never to arrive on it), looked up over REST.

use super::Execution;
use crate::broker::types::NewOrder;
use crate::broker::Broker;
use anyhow::Result;

/// How many look-ups an order with an unknown outcome gets before the daemon stops waiting
/// (it stays in flight and is chased from then on).
const LOOKUPS: u32 = 3;

impl<B: Broker> Execution<'_, B> {
    /// After an unknown outcome: true when the broker has the order (or its fate is still
    /// unknown and it stays counted in flight), false when it refused it.
    pub(super) async fn resolve(&mut self, id: &str, order: &NewOrder) -> Result<bool> {
        for n in 0..LOOKUPS {
            if n > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(200 << n)).await;
            }
            match self.broker.order_by_client_id(id).await {
                Ok(Some(o)) => {
                    self.out.info(format!(
                        "{id}: found at the broker ({}) — adopted, not resent",
                        o.status.as_str()
                    ));
                    self.accepted(id, &o.id, o.status.as_str())?;
                    self.settled(id, "found");
                    self.absorb(o);
                    return Ok(true);
                }
                Ok(None) => match self.broker.submit(order).await {
                    // Not there: the first submit never arrived. The same id again is safe.
                    Ok(o) => {
                        self.accepted(id, &o.id, o.status.as_str())?;
                        self.settled(id, "sent again");
                        self.orders_sent += 1;
                        self.absorb(o);
                        return Ok(true);
                    }
                    Err(e) if e.needs_lookup() => continue,
                    Err(e) => {
                        self.out.warn(format!("order {id} rejected: {e}"));
                        self.inflight.drop(id);
                        self.settled(id, "rejected");
                        self.journal.append(&super::Entry::Rejected {
                            id: id.to_string(),
                            error: e.to_string(),
                            at: self.now(),
                        })?;
                        return Ok(false);
                    }
                },
                Err(e) => {
                    self.rest_errors += 1;
                    self.out.warn(format!("{id}: look-up failed: {e}"));
                }
            }
        }
        // Still unknown: counted in flight, looked up again from the housekeeping tick.
        Ok(true)
    }

    /// Orders of ours silent for `order_timeout`, and submits of unknown outcome: asked for over
    /// REST. A submit the broker never received is journaled as not placed.
    pub async fn chase_silent(&mut self) {
        let now = self.now();
        for id in self.inflight.silent(now, self.order_timeout) {
            self.inflight.heard(&id, now);
            let known = self.inflight.get(&id).is_some_and(|p| p.known);
            match self.broker.order_by_client_id(&id).await {
                Ok(Some(o)) => {
                    if !known {
                        let _ = self.accepted(&id, &o.id, o.status.as_str());
                        self.settled(&id, "found");
                    }
                    self.absorb(o);
                }
                Ok(None) if !known => {
                    let _ = self.journal.append(&super::Entry::NotPlaced {
                        id: id.clone(),
                        at: now,
                    });
                    self.inflight.drop(&id);
                    self.settled(&id, "never placed");
                    self.out.warn(format!("{id}: the broker never received it"));
                }
                Ok(None) => {}
                Err(e) => {
                    self.rest_errors += 1;
                    self.out.warn(format!("{id}: look-up failed: {e}"));
                }
            }
        }
    }
}
