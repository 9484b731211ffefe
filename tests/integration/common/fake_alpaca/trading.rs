//! The trading REST API over the engine: account, positions, clock, assets, orders (submit,
//! list with `status`/`after`/`until`/`direction`/`limit` ≤ 500, by client id), and the 207
//! multi-status cancels and closes. Client order ids must be unique (422, code 40010001).

use super::engine::FakeOrder;
use super::http::{HttpReq, Resp};
use super::{fixture, Fault, OrderFault, State};
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use quantdeck::broker::types::normalize_symbol;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

fn not_found(what: &str) -> Resp {
    Resp::json(
        404,
        &json!({"code": 40410000, "message": format!("{what} not found")}),
    )
}

pub fn respond(st: &Arc<Mutex<State>>, req: &HttpReq) -> Resp {
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    let h = &req.headers;
    let keys_ok = h.get("apca-api-key-id") == Some(&s.key_id)
        && h.get("apca-api-secret-key") == Some(&s.secret);
    if !keys_ok || s.data_only_keys {
        return Resp::json(
            401,
            &json!({"code": 40110000, "message": "request is not authorized"}),
        );
    }
    let (m, p) = (req.method.as_str(), req.path.as_str());
    if m == "POST" && p == "/v2/orders" {
        return submit(&mut s, &req.body);
    }
    // Reads and cancels: scripted faults first.
    let fault = s.trading_faults.pop_front();
    match &fault {
        Some(Fault::TooMany { .. }) => {
            let body = json!({"code": 42910000, "message": "too many requests"});
            return Resp::raw(429, body.to_string().into_bytes(), fault);
        }
        Some(Fault::Status(code, msg)) => {
            let body = json!({"code": *code as u64 * 100_000, "message": msg});
            return Resp::raw(*code, body.to_string().into_bytes(), fault);
        }
        _ => {}
    }
    let mut resp = match (m, p) {
        ("GET", "/v2/account") => account(&s),
        ("GET", "/v2/positions") => positions(&s),
        ("DELETE", "/v2/positions") => close_all(&mut s, req),
        ("GET", "/v2/clock") => clock(&s),
        ("GET", "/v2/orders") => list_orders(&s, req),
        ("DELETE", "/v2/orders") => cancel_all(&mut s),
        ("GET", "/v2/orders:by_client_order_id") => {
            let cid = req
                .query
                .get("client_order_id")
                .cloned()
                .unwrap_or_default();
            match s.engine.orders.iter().find(|o| o.client_order_id == cid) {
                Some(o) => Resp::json(200, &o.to_json()),
                None => not_found("order"),
            }
        }
        ("GET", _) if p.starts_with("/v2/assets/") => asset(&s, &p["/v2/assets/".len()..]),
        _ => not_found("endpoint"),
    };
    resp.fault = fault;
    resp
}

fn submit(s: &mut State, body: &[u8]) -> Resp {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return Resp::json(
            400,
            &json!({"code": 40010000, "message": "request body format is invalid"}),
        );
    };
    let cid = req
        .get("client_order_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    *s.posts.entry(cid.clone()).or_default() += 1;
    if !cid.is_empty() && s.engine.orders.iter().any(|o| o.client_order_id == cid) {
        return Resp::json(
            422,
            &json!({"code": 40010001, "message": "client_order_id must be unique"}),
        );
    }
    let fault = s.order_faults.pop_front();
    match &fault {
        Some(OrderFault::InsufficientBuyingPower) => {
            return Resp::json(
                403,
                &json!({"buying_power": "0", "code": 40310000, "cost_basis": "1000",
                        "message": "insufficient buying power"}),
            )
        }
        Some(OrderFault::WashTrade) => {
            let other = s
                .engine
                .orders
                .iter()
                .rev()
                .find(|o| o.is_open())
                .map(|o| o.id.clone());
            return Resp::json(
                403,
                &json!({"code": 40310000, "existing_order_id": other,
                        "message": "potential wash trade detected. use complex orders",
                        "reject_reason": "opposite side market/stop order exists"}),
            );
        }
        Some(OrderFault::Reject(status, body)) => return Resp::json(*status, body),
        _ => {}
    }
    let i = match s.engine.accept(&req) {
        Ok(i) => i,
        Err((status, body)) => return Resp::json(status, &body),
    };
    // The reply is the order as accepted; fills follow on the stream.
    let accepted = s.engine.orders[i].to_json();
    let symbol = s.engine.orders[i].symbol.clone();
    s.engine.on_accept(&symbol);
    match fault {
        Some(OrderFault::AcceptThenStatus(status)) => Resp::json(
            status,
            &json!({"code": status as u64 * 100_000, "message": "internal server error"}),
        ),
        Some(OrderFault::AcceptThenSlow(d)) => Resp {
            delay: Some(d),
            ..Resp::json(200, &accepted)
        },
        Some(OrderFault::AcceptThenDrop) => Resp {
            drop: true,
            ..Resp::json(200, &accepted)
        },
        _ => Resp::json(200, &accepted),
    }
}

fn account(s: &State) -> Resp {
    let e = &s.engine;
    let mut v = fixture("account.json");
    let (long, short): (Decimal, Decimal) =
        e.positions
            .iter()
            .fold((0.into(), 0.into()), |(l, sh), (k, p)| {
                let mv = p.qty * e.prices.get(k).copied().unwrap_or(p.avg);
                if mv.is_sign_negative() {
                    (l, sh + mv)
                } else {
                    (l + mv, sh)
                }
            });
    let equity = e.equity().to_string();
    let bp = e.buying_power().to_string();
    for (k, val) in [
        ("cash", e.cash.to_string()),
        ("equity", equity.clone()),
        ("portfolio_value", equity),
        ("last_equity", e.last_equity.to_string()),
        ("buying_power", bp.clone()),
        ("regt_buying_power", bp.clone()),
        ("non_marginable_buying_power", bp),
        ("long_market_value", long.to_string()),
        ("short_market_value", short.to_string()),
    ] {
        v[k] = json!(val);
    }
    Resp::json(200, &v)
}

fn position_json(s: &State, key: &str) -> Value {
    let e = &s.engine;
    let p = &e.positions[key];
    let price = e.prices.get(key).copied().unwrap_or(p.avg);
    let held: Decimal = e
        .orders
        .iter()
        .filter(|o| o.is_open() && o.side == "sell" && normalize_symbol(&o.symbol) == key)
        .map(|o| o.qty.unwrap_or_default() - o.filled_qty)
        .sum();
    let mut v = fixture("position.json");
    let mv = p.qty * price;
    let cost = p.qty * p.avg;
    let asset = e.asset(&p.symbol);
    for (k, val) in [
        ("symbol", json!(p.symbol)),
        (
            "asset_class",
            json!(if p.crypto { "crypto" } else { "us_equity" }),
        ),
        (
            "exchange",
            json!(if p.crypto { "CRYPTO" } else { "NASDAQ" }),
        ),
        ("asset_marginable", json!(!p.crypto && asset.shortable)),
        ("qty", json!(p.qty.to_string())),
        ("avg_entry_price", json!(p.avg.to_string())),
        (
            "side",
            json!(if p.qty.is_sign_negative() {
                "short"
            } else {
                "long"
            }),
        ),
        ("market_value", json!(mv.to_string())),
        ("cost_basis", json!(cost.to_string())),
        ("unrealized_pl", json!((mv - cost).to_string())),
        ("unrealized_intraday_pl", json!((mv - cost).to_string())),
        ("current_price", json!(price.to_string())),
        ("lastday_price", json!(price.to_string())),
        ("qty_available", json!((p.qty - held).to_string())),
    ] {
        v[k] = val;
    }
    v
}

fn positions(s: &State) -> Resp {
    let list: Vec<Value> = s
        .engine
        .positions
        .keys()
        .map(|k| position_json(s, k))
        .collect();
    Resp::json(200, &Value::Array(list))
}

fn clock(s: &State) -> Resp {
    let et = FixedOffset::west_opt(5 * 3600).expect("offset");
    let now = Utc::now();
    let fmt = |t: DateTime<Utc>| {
        t.with_timezone(&et)
            .to_rfc3339_opts(SecondsFormat::AutoSi, false)
    };
    let (next_open, next_close) = if s.clock_open {
        (
            now + chrono::Duration::hours(18),
            now + chrono::Duration::hours(2),
        )
    } else {
        (
            now + chrono::Duration::hours(1),
            now + chrono::Duration::hours(7),
        )
    };
    let mut v = fixture("clock.json");
    v["timestamp"] = json!(fmt(now));
    v["is_open"] = json!(s.clock_open);
    v["next_open"] = json!(fmt(next_open));
    v["next_close"] = json!(fmt(next_close));
    Resp::json(200, &v)
}

fn asset(s: &State, symbol: &str) -> Resp {
    let a = s.engine.asset(symbol);
    let mut v = fixture(if a.crypto {
        "asset_crypto.json"
    } else {
        "asset_equity.json"
    });
    let opt = |d: Option<Decimal>| d.map_or(Value::Null, |d| json!(d.to_string()));
    v["symbol"] = json!(a.symbol);
    v["tradable"] = json!(a.tradable);
    v["fractionable"] = json!(a.fractionable);
    v["shortable"] = json!(a.shortable);
    v["easy_to_borrow"] = json!(a.easy_to_borrow);
    let obj = v.as_object_mut().expect("asset fixture is an object");
    for (k, d) in [
        ("min_order_size", a.min_order_size),
        ("min_trade_increment", a.min_trade_increment),
        ("price_increment", a.price_increment),
    ] {
        // Equities usually carry no increments at all.
        match d {
            Some(_) => {
                obj.insert(k.into(), opt(d));
            }
            None => {
                obj.remove(k);
            }
        }
    }
    Resp::json(200, &v)
}

fn list_orders(s: &State, req: &HttpReq) -> Resp {
    let q = &req.query;
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50);
    if limit > 500 {
        return Resp::json(
            422,
            &json!({"code": 40010001, "message": "limit must be <= 500"}),
        );
    }
    let time = |k: &str| -> Result<Option<DateTime<Utc>>, Resp> {
        match q.get(k) {
            None => Ok(None),
            Some(v) => DateTime::parse_from_rfc3339(v)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|_| {
                    Resp::json(
                        422,
                        &json!({"code": 40010001, "message": format!("invalid {k}")}),
                    )
                }),
        }
    };
    let (after, until) = match (time("after"), time("until")) {
        (Ok(a), Ok(u)) => (a, u),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let status = q.get("status").map(String::as_str).unwrap_or("open");
    let desc = q.get("direction").map(String::as_str).unwrap_or("desc") == "desc";
    let mut list: Vec<&FakeOrder> = s
        .engine
        .orders
        .iter()
        .filter(|o| match status {
            "open" => o.is_open(),
            "closed" => !o.is_open(),
            _ => true,
        })
        .filter(|o| after.is_none_or(|a| o.submitted_at > a))
        .filter(|o| until.is_none_or(|u| o.submitted_at < u))
        .collect();
    list.sort_by_key(|o| (o.submitted_at, o.seq));
    if desc {
        list.reverse();
    }
    list.truncate(limit);
    Resp::json(
        200,
        &Value::Array(list.iter().map(|o| o.to_json()).collect()),
    )
}

fn cancel_all(s: &mut State) -> Resp {
    let open: Vec<usize> = (0..s.engine.orders.len())
        .filter(|&i| s.engine.orders[i].is_open())
        .collect();
    let mut rows = Vec::new();
    for i in open {
        s.engine.cancel(i);
        let o = &s.engine.orders[i];
        rows.push(json!({"id": o.id, "status": 200, "body": o.to_json()}));
    }
    Resp::json(207, &Value::Array(rows))
}

fn close_all(s: &mut State, req: &HttpReq) -> Resp {
    if req.query.get("cancel_orders").map(String::as_str) == Some("true") {
        let open: Vec<usize> = (0..s.engine.orders.len())
            .filter(|&i| s.engine.orders[i].is_open())
            .collect();
        for i in open {
            s.engine.cancel(i);
        }
    }
    let keys: Vec<String> = s.engine.positions.keys().cloned().collect();
    let mut rows = Vec::new();
    for key in keys {
        let name = s.engine.positions[&key].symbol.clone();
        if s.close_refused.contains(&key) {
            let q = s.engine.positions[&key].qty.abs().to_string();
            let body = json!({"available": "0", "code": 40310000, "existing_qty": q, "held_for_orders": q,
                "message": format!("insufficient qty available for order (requested: {q}, available: 0)"),
                "symbol": name});
            rows.push(json!({"symbol": name, "status": 403, "body": body}));
            continue;
        }
        match s.engine.close_position(&key) {
            Ok(i) => {
                let body = s.engine.orders[i].to_json();
                let symbol = s.engine.orders[i].symbol.clone();
                rows.push(json!({"symbol": name, "status": 200, "body": body}));
                s.engine.on_accept(&symbol);
            }
            Err((status, body)) => {
                rows.push(json!({"symbol": name, "status": status, "body": body}))
            }
        }
    }
    Resp::json(207, &Value::Array(rows))
}
