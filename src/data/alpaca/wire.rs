//! Alpaca's JSON bar pages. Single-symbol pages carry `bars` as a list and the `symbol` beside it;
//! multi-symbol pages carry `bars` as a map from symbol to list (ordered by symbol, then time, so
//! one symbol's bars can continue on the next page).

use crate::market::Bar;
use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
struct WireBar {
    t: String,
    o: f64,
    h: f64,
    l: f64,
    c: f64,
    v: f64,
}

#[derive(Debug, Deserialize)]
struct WirePage {
    #[serde(default)]
    bars: Option<serde_json::Value>,
    symbol: Option<String>,
    next_page_token: Option<String>,
}

/// Bars per symbol on one page.
pub type PageBars = BTreeMap<String, Vec<Bar>>;

/// Bars per symbol on one page, and the token of the next page (None = last page).
pub fn parse_bars_page(body: &[u8]) -> Result<(PageBars, Option<String>)> {
    let page: WirePage = serde_json::from_slice(body).context("malformed bar page")?;
    let mut out: BTreeMap<String, Vec<Bar>> = BTreeMap::new();
    match page.bars {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Array(list)) => {
            let sym = page
                .symbol
                .clone()
                .ok_or_else(|| anyhow!("single-symbol page without `symbol`"))?;
            out.insert(sym, convert(list)?);
        }
        Some(serde_json::Value::Object(map)) => {
            for (sym, v) in map {
                let list = match v {
                    serde_json::Value::Array(l) => l,
                    serde_json::Value::Null => Vec::new(),
                    other => return Err(anyhow!("bars for {sym} are not a list: {other}")),
                };
                out.insert(sym, convert(list)?);
            }
        }
        Some(other) => return Err(anyhow!("`bars` is neither a list nor a map: {}", other)),
    }
    Ok((out, page.next_page_token.filter(|t| !t.is_empty())))
}

fn convert(list: Vec<serde_json::Value>) -> Result<Vec<Bar>> {
    list.into_iter()
        .map(|v| {
            let w: WireBar = serde_json::from_value(v).context("malformed bar")?;
            let ts: DateTime<Utc> = DateTime::parse_from_rfc3339(&w.t)
                .with_context(|| format!("bad bar time {:?}", w.t))?
                .with_timezone(&Utc);
            Ok(Bar {
                ts,
                open: w.o,
                high: w.h,
                low: w.l,
                close: w.c,
                volume: w.v,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_symbol_pages() {
        let single = br#"{"bars":[{"t":"2024-02-01T14:30:00Z","o":1,"h":2,"l":0.5,"c":1.5,"v":100,"n":3,"vw":1.2}],"symbol":"AAPL","next_page_token":"abc"}"#;
        let (m, next) = parse_bars_page(single).unwrap();
        assert_eq!(next.as_deref(), Some("abc"));
        assert_eq!(m["AAPL"][0].close, 1.5);
        let multi = br#"{"bars":{"AAPL":[{"t":"2024-02-01T14:30:00Z","o":1,"h":2,"l":0.5,"c":1.5,"v":100}],"BTC/USD":[]},"next_page_token":null}"#;
        let (m, next) = parse_bars_page(multi).unwrap();
        assert!(next.is_none());
        assert_eq!(m.len(), 2);
        assert!(parse_bars_page(br#"{"bars":{"AAPL":[{"t":"x"#).is_err());
    }
}
