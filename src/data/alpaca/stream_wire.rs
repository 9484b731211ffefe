//! The market-data stream's messages on the wire: a frame is a JSON array of objects keyed by
//! `T` (`success`, `error`, `subscription`, `b` a bar, `u` a revised bar).

use crate::market::Bar;
use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(super) struct WireMsg {
    #[serde(rename = "T")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) msg: Option<String>,
    #[serde(default)]
    pub(super) code: Option<u32>,
    #[serde(rename = "S", default)]
    pub(super) symbol: Option<String>,
    #[serde(default)]
    pub(super) o: Option<f64>,
    #[serde(default)]
    pub(super) h: Option<f64>,
    #[serde(default)]
    pub(super) l: Option<f64>,
    #[serde(default)]
    pub(super) c: Option<f64>,
    #[serde(default)]
    pub(super) v: Option<f64>,
    #[serde(default)]
    pub(super) t: Option<String>,
    #[serde(default)]
    pub(super) bars: Option<Vec<String>>,
}

impl WireMsg {
    pub(super) fn bar(&self) -> Option<(String, Bar)> {
        let ts: DateTime<Utc> = DateTime::parse_from_rfc3339(self.t.as_deref()?)
            .ok()?
            .with_timezone(&Utc);
        Some((
            self.symbol.clone()?,
            Bar {
                ts,
                open: self.o?,
                high: self.h?,
                low: self.l?,
                close: self.c?,
                volume: self.v?,
            },
        ))
    }
}

/// A frame is a JSON array of messages (a lone object is accepted too).
pub(super) fn decode(frame: &[u8]) -> Result<Vec<WireMsg>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(frame).map_err(|e| format!("not JSON: {e}"))?;
    let items = match v {
        serde_json::Value::Array(a) => a,
        obj @ serde_json::Value::Object(_) => vec![obj],
        other => return Err(format!("unexpected message {other}")),
    };
    Ok(items
        .into_iter()
        .filter_map(|m| match serde_json::from_value::<WireMsg>(m.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("market-data stream: skipping a malformed message ({e})");
                None
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_bars_revisions_and_skips_junk() {
        let frame = br#"[{"T":"b","S":"AAPL","o":1.5,"h":2,"l":1,"c":1.75,"v":300,"t":"2024-03-04T14:31:00Z","n":3,"vw":1.6},
            {"T":"u","S":"BTC/USD","o":1,"h":1,"l":1,"c":1,"v":0.0125,"t":"2024-03-04T14:31:00Z"},
            {"T":"b","S":"BAD"},{"nonsense":true}]"#;
        let msgs = decode(frame).unwrap();
        assert_eq!(msgs.len(), 3, "the element without `T` is skipped");
        let (sym, bar) = msgs[0].bar().unwrap();
        assert_eq!((sym.as_str(), bar.close, bar.volume), ("AAPL", 1.75, 300.0));
        assert_eq!(msgs[1].kind, "u");
        assert_eq!(msgs[1].bar().unwrap().1.volume, 0.0125);
        assert!(msgs[2].bar().is_none());
        assert!(decode(b"[{\"T\":").is_err());
    }
}
