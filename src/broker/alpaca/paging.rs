//! Paging `GET /v2/orders`. Alpaca has no page token here: it filters by submission time
//! (`after` and `until`, both exclusive) and returns at most `limit` (≤ 500) orders in
//! `direction`. So the next page starts from the last order's time — but several orders can share
//! a timestamp, and an exclusive bound at that time would skip the ones that did not fit. Each
//! page therefore starts a little *before* the last time seen (an overlap), and orders already
//! seen are dropped by id: nothing skipped, nothing twice.

use crate::broker::types::Order;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderQueryStatus {
    Open,
    Closed,
    All,
}

impl OrderQueryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderQueryStatus::Open => "open",
            OrderQueryStatus::Closed => "closed",
            OrderQueryStatus::All => "all",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Asc => "asc",
            Direction::Desc => "desc",
        }
    }
}

/// Which orders to list. `limit` is the page size (1–500); the client pages until exhausted.
#[derive(Debug, Clone, PartialEq)]
pub struct OrdersQuery {
    pub status: OrderQueryStatus,
    /// Only orders submitted after this instant (exclusive).
    pub after: Option<DateTime<Utc>>,
    /// Only orders submitted before this instant (exclusive).
    pub until: Option<DateTime<Utc>>,
    pub direction: Direction,
    pub limit: u32,
}

impl Default for OrdersQuery {
    fn default() -> Self {
        OrdersQuery {
            status: OrderQueryStatus::All,
            after: None,
            until: None,
            direction: Direction::Asc,
            limit: MAX_PAGE,
        }
    }
}

impl OrdersQuery {
    /// Every order (any status) submitted after `t`, oldest first.
    pub fn all_since(t: DateTime<Utc>) -> Self {
        OrdersQuery {
            after: Some(t),
            ..Default::default()
        }
    }
}

pub const MAX_PAGE: u32 = 500;

/// How far before the last time seen the next page starts. A whole second, so the bound holds
/// even if the server compared at second precision; at 200 requests a minute, one second holds
/// a handful of orders, far below a page.
pub(crate) const OVERLAP: chrono::Duration = chrono::Duration::seconds(1);

pub(crate) struct Pager {
    q: OrdersQuery,
    after: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    seen: HashSet<String>,
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl Pager {
    pub fn new(mut q: OrdersQuery) -> Self {
        q.limit = q.limit.clamp(1, MAX_PAGE);
        Pager {
            after: q.after,
            until: q.until,
            q,
            seen: HashSet::new(),
        }
    }

    /// The query of the next page.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![
            ("status", self.q.status.as_str().to_string()),
            ("limit", self.q.limit.to_string()),
            ("direction", self.q.direction.as_str().to_string()),
            ("nested", "false".to_string()),
        ];
        if let Some(a) = self.after {
            p.push(("after", rfc(a)));
        }
        if let Some(u) = self.until {
            p.push(("until", rfc(u)));
        }
        p
    }

    /// Takes one page: returns the orders not seen before, and whether another page follows.
    pub fn take(&mut self, page: Vec<Order>) -> Result<(Vec<Order>, bool), String> {
        let full = page.len() >= self.q.limit as usize;
        let times = page.iter().filter_map(Order::listed_at);
        let edge = match self.q.direction {
            Direction::Asc => times.max(),
            Direction::Desc => times.min(),
        };
        let fresh: Vec<Order> = page
            .into_iter()
            .filter(|o| self.seen.insert(o.id.clone()))
            .collect();
        if !full {
            return Ok((fresh, false));
        }
        let Some(edge) = edge else {
            return Err("a full page of orders without submission times: cannot page".into());
        };
        if fresh.is_empty() {
            return Err(format!(
                "more than {} orders were submitted within {} s of {}: cannot page past them",
                self.q.limit,
                OVERLAP.num_seconds(),
                rfc(edge)
            ));
        }
        match self.q.direction {
            Direction::Asc => {
                let next = edge - OVERLAP;
                self.after = Some(self.q.after.map_or(next, |a| a.max(next)));
            }
            Direction::Desc => {
                let next = edge + OVERLAP;
                self.until = Some(self.q.until.map_or(next, |u| u.min(next)));
            }
        }
        Ok((fresh, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::types::{OrderStatus, OrderType, Side, TimeInForce};
    use chrono::TimeZone;

    fn order(id: usize, t: DateTime<Utc>) -> Order {
        Order {
            id: format!("id-{id}"),
            client_order_id: format!("c-{id}"),
            symbol: "AAPL".into(),
            asset_class: Default::default(),
            side: Side::Buy,
            order_type: OrderType::Market,
            time_in_force: TimeInForce::Day,
            qty: None,
            notional: None,
            filled_qty: Default::default(),
            filled_avg_price: None,
            limit_price: None,
            stop_price: None,
            status: OrderStatus::Filled,
            extended_hours: false,
            created_at: Some(t),
            updated_at: None,
            submitted_at: Some(t),
            filled_at: None,
            canceled_at: None,
            expired_at: None,
            failed_at: None,
        }
    }

    /// A server that answers like Alpaca: exclusive bounds, sorted, at most `limit`.
    fn serve(all: &[Order], params: &[(&str, String)]) -> Vec<Order> {
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| DateTime::parse_from_rfc3339(v).unwrap().with_timezone(&Utc))
        };
        let limit: usize = params
            .iter()
            .find(|(n, _)| *n == "limit")
            .unwrap()
            .1
            .parse()
            .unwrap();
        let desc = params.iter().any(|(n, v)| *n == "direction" && v == "desc");
        let mut v: Vec<Order> = all
            .iter()
            .filter(|o| get("after").is_none_or(|a| o.submitted_at.unwrap() > a))
            .filter(|o| get("until").is_none_or(|u| o.submitted_at.unwrap() < u))
            .cloned()
            .collect();
        v.sort_by_key(|o| (o.submitted_at, o.id.clone()));
        if desc {
            v.reverse();
        }
        v.truncate(limit);
        v
    }

    fn run(all: &[Order], q: OrdersQuery) -> Result<Vec<Order>, String> {
        let mut p = Pager::new(q);
        let mut out = Vec::new();
        for _ in 0..1000 {
            let (fresh, more) = p.take(serve(all, &p.params()))?;
            out.extend(fresh);
            if !more {
                return Ok(out);
            }
        }
        panic!("did not terminate")
    }

    #[test]
    fn ties_across_page_edges_are_neither_skipped_nor_repeated() {
        let t0 = Utc.with_ymd_and_hms(2024, 3, 4, 14, 30, 0).unwrap();
        // Groups of three orders share a timestamp, 2 s apart; pages of 10 cut groups in half.
        let all: Vec<Order> = (0..95)
            .map(|i| order(i, t0 + chrono::Duration::seconds(2 * (i / 3) as i64)))
            .collect();
        for direction in [Direction::Asc, Direction::Desc] {
            let got = run(
                &all,
                OrdersQuery {
                    limit: 10,
                    direction,
                    ..Default::default()
                },
            )
            .unwrap();
            let mut ids: Vec<&str> = got.iter().map(|o| o.id.as_str()).collect();
            assert_eq!(ids.len(), 95, "{direction:?}");
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), 95, "{direction:?}: no duplicates");
        }
    }

    #[test]
    fn the_callers_bounds_hold() {
        let t0 = Utc.with_ymd_and_hms(2024, 3, 4, 14, 30, 0).unwrap();
        let all: Vec<Order> = (0..40)
            .map(|i| order(i, t0 + chrono::Duration::seconds(i as i64)))
            .collect();
        let got = run(
            &all,
            OrdersQuery {
                limit: 7,
                after: Some(t0 + chrono::Duration::seconds(9)),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(got.len(), 30);
        assert_eq!(got[0].id, "id-10");
    }

    #[test]
    fn a_page_full_of_one_instant_is_a_clear_error() {
        let t0 = Utc.with_ymd_and_hms(2024, 3, 4, 14, 30, 0).unwrap();
        let all: Vec<Order> = (0..12).map(|i| order(i, t0)).collect();
        let e = run(
            &all,
            OrdersQuery {
                limit: 5,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.contains("cannot page"), "{e}");
    }
}
