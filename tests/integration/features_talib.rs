//! Raw indicator values against TA-Lib's, from `tests/data/talib_reference.csv` (made once by
//! `tests/data/make_talib_reference.py`; CI needs no TA-Lib).

use chrono::{Duration, TimeZone, Utc};
use quantdeck::features::ta;
use quantdeck::market::Bar;
use std::collections::HashMap;

#[test]
fn indicators_match_talib() {
    let text = include_str!("data/talib_reference.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut cols: HashMap<&str, Vec<f64>> = HashMap::new();
    for line in lines {
        for (name, v) in header.iter().zip(line.split(',')) {
            let x = if v.is_empty() {
                f64::NAN
            } else {
                v.parse().unwrap()
            };
            cols.entry(name).or_default().push(x);
        }
    }
    let t0 = Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).unwrap();
    let bars: Vec<Bar> = (0..cols["close"].len())
        .map(|i| Bar {
            ts: t0 + Duration::minutes(15 * i as i64),
            open: cols["open"][i],
            high: cols["high"][i],
            low: cols["low"][i],
            close: cols["close"][i],
            volume: cols["volume"][i],
        })
        .collect();
    let raw = ta::compute(&bars);
    let mut checked = 0;
    for (name, ours) in raw.columns() {
        let theirs = &cols[name];
        for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
            // Same first valid bar as TA-Lib, and the same values from there on.
            assert_eq!(
                a.is_nan(),
                b.is_nan(),
                "{name} at {i}: ours {a}, TA-Lib {b}"
            );
            if b.is_nan() {
                continue;
            }
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1e-3),
                "{name} at {i}: ours {a}, TA-Lib {b}"
            );
            checked += 1;
        }
    }
    assert!(checked > 16 * 350, "{checked} values compared");
}
