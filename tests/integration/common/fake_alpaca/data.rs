//! The market-data REST API: bar pages for `/v2/stocks/bars` and `/v1beta3/crypto/us/bars`,
//! ordered by symbol then time, `page_cap` bars a page, continued by `page_token`. `15Min` and
//! `1Day` serve the test's dataset (whatever bars it holds); `1Min` serves what `push_bar` fed. `/v2/calendar` answers `[]`.

use super::http::{err, HttpReq, Resp};
use super::{Fault, State};
use chrono::{DateTime, SecondsFormat, Utc};
use quantdeck::market::Bar;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn respond(st: &Arc<Mutex<State>>, req: &HttpReq) -> Resp {
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    let h = &req.headers;
    if h.get("apca-api-key-id") != Some(&s.key_id)
        || h.get("apca-api-secret-key") != Some(&s.secret)
    {
        let (c, b) = err(401, "request is not authorized");
        return Resp::raw(c, b, None);
    }
    if let Some(f) = s.faults.pop_front() {
        return match &f {
            Fault::TooMany { .. } => {
                let (c, b) = err(429, "too many requests");
                Resp::raw(c, b, Some(f))
            }
            Fault::Status(code, msg) => {
                let (c, b) = err(*code, msg);
                Resp::raw(c, b, Some(f))
            }
            _ => {
                let (c, b) = page(&mut s, &req.path, &req.query);
                Resp::raw(c, b, Some(f))
            }
        };
    }
    if req.path == "/v2/calendar" {
        return Resp::raw(200, b"[]".to_vec(), None);
    }
    if s.fail_after_pages.is_some_and(|n| s.pages_served >= n) {
        let (c, b) = err(500, "internal server error");
        return Resp::raw(c, b, None);
    }
    let (c, b) = page(&mut s, &req.path, &req.query);
    Resp::raw(c, b, None)
}

fn page(s: &mut State, path: &str, q: &BTreeMap<String, String>) -> (u16, Vec<u8>) {
    if path != "/v2/stocks/bars" && path != "/v1beta3/crypto/us/bars" {
        return err(404, "not found");
    }
    if q.get("feed").is_some_and(|f| f == "sip") && s.sip_forbidden {
        return err(403, "subscription does not permit querying recent SIP data");
    }
    let Some(tf) = q.get("timeframe") else {
        return err(422, "invalid timeframe");
    };
    let minute = tf == "1Min";
    if tf != "15Min" && tf != "1Day" && !minute {
        return err(422, &format!("invalid timeframe: {tf}"));
    }
    let parse = |k: &str| {
        q.get(k)
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(start), Some(end)) = (parse("start"), parse("end")) else {
        return err(422, "invalid start or end");
    };
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(1000);
    let mut symbols: Vec<String> = q
        .get("symbols")
        .map(|s| s.split(',').map(String::from).collect())
        .unwrap_or_default();
    symbols.sort();
    let source = if minute { &s.bars_1min } else { &s.bars };
    let mut all: Vec<(String, Bar)> = Vec::new();
    for sym in &symbols {
        match source.get(sym) {
            Some(bars) => all.extend(
                bars.iter()
                    .filter(|b| b.ts >= start && b.ts <= end)
                    .map(|b| (sym.clone(), *b)),
            ),
            // A minute feed with nothing pushed yet is simply empty.
            None if s.unknown_is_error && !minute => {
                return err(422, &format!("invalid symbol: {sym}"))
            }
            None => {}
        }
    }
    let offset: usize = q
        .get("page_token")
        .and_then(|t| t.strip_prefix("p"))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let size = limit.min(s.page_cap).max(1);
    let end_i = (offset + size).min(all.len());
    let mut map: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for (sym, b) in &all[offset.min(all.len())..end_i] {
        map.entry(sym.clone()).or_default().push(serde_json::json!({"t": rfc(b.ts), "o": b.open, "h": b.high, "l": b.low, "c": b.close, "v": b.volume, "n": 1, "vw": b.close}));
    }
    let next = if end_i < all.len() {
        serde_json::Value::String(format!("p{end_i}"))
    } else {
        serde_json::Value::Null
    };
    s.pages_served += 1;
    (
        200,
        serde_json::json!({"bars": map, "next_page_token": next})
            .to_string()
            .into_bytes(),
    )
}
