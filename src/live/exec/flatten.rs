//! Flatten-all, the kill switch: cancel every open order, close every position, check each row
//! of the broker's 207 answers, wait until the positions read flat, and read the closing orders
//! back, so what is reported afterwards is the broker's final word, not "new".

use super::Execution;
use crate::broker::types::{normalize_symbol, Order};
use crate::broker::Broker;
use crate::live::mirror::Mirror;

/// What flatten-all did.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Flattened {
    pub ok: bool,
    /// The broker's word on each cancel and close, and any problem.
    pub rows: Vec<String>,
    /// Client ids of the broker's closing orders for the models' symbols: they count as the
    /// models' own (their fills bring the models' positions to zero).
    pub adopted: Vec<String>,
}

impl<B: Broker> Execution<'_, B> {
    /// `models`: the symbols the session's models trade (or traded, for a flatten made while
    /// the daemon is down).
    pub async fn flatten(&mut self, mirror: &mut Mirror, models: &[String]) -> Flattened {
        let mut done = Flattened {
            ok: true,
            ..Default::default()
        };
        self.cancel_all(&mut done).await;
        let closing = self.close_all(&mut done, models).await;
        // The closing orders are the broker's own: wait until positions read flat.
        let mut flat = false;
        for n in 0..10 {
            if n > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            let now = self.now();
            if mirror.refresh_positions(&self.broker, self.out, now).await {
                flat = mirror.positions.is_empty();
                if flat {
                    break;
                }
            }
        }
        if !flat {
            done.ok = false;
            done.rows.push(format!(
                "positions still open: {}",
                mirror
                    .positions
                    .iter()
                    .map(|p| format!("{} {}", p.symbol, p.qty))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        // The closing orders as they ended (a reply said "new"; they filled since).
        for cid in closing {
            if let Ok(Some(o)) = self.broker.order_by_client_id(&cid).await {
                self.settle_closing(o, models);
            }
        }
        let now = self.now();
        mirror
            .refresh_account(&self.broker, self.out, now, self.fills)
            .await;
        done
    }

    async fn cancel_all(&mut self, done: &mut Flattened) {
        match self.broker.cancel_all().await {
            Ok(rows) => {
                for row in rows {
                    done.ok &= row.is_ok();
                    done.rows.push(format!(
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
                done.ok = false;
                done.rows.push(format!("cancel all: {e}"));
            }
        }
    }

    /// Closes every position; returns the closing orders' client ids.
    async fn close_all(&mut self, done: &mut Flattened, models: &[String]) -> Vec<String> {
        let mut closing = Vec::new();
        match self.broker.close_all().await {
            Ok(rows) => {
                for row in rows {
                    done.ok &= row.is_ok();
                    done.rows.push(format!(
                        "close {}: {}{}",
                        row.symbol,
                        row.status,
                        row.error
                            .map(|e| format!(" {}", e.message))
                            .unwrap_or_default()
                    ));
                    if let Some(o) = row.order {
                        if !o.client_order_id.is_empty() {
                            closing.push(o.client_order_id.clone());
                        }
                        if let Some(id) = self.settle_closing(o, models) {
                            done.adopted.push(id);
                        }
                    }
                }
            }
            Err(e) => {
                done.ok = false;
                done.rows.push(format!("close all: {e}"));
            }
        }
        closing
    }

    /// A closing order of a model's symbol is adopted as the model's; anyone else's stays
    /// external. Returns the id adopted.
    fn settle_closing(&mut self, o: Order, models: &[String]) -> Option<String> {
        let key = normalize_symbol(&o.symbol);
        let ours =
            models.iter().any(|s| normalize_symbol(s) == key) && !o.client_order_id.is_empty();
        if ours {
            let id = o.client_order_id.clone();
            self.ledger.adopt(&id);
            self.absorb(o);
            return Some(id);
        }
        self.out.order(&super::view_of(&o, true));
        self.ledger.absorb(o);
        None
    }
}
