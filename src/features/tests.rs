use super::*;
use crate::config::SyntheticConfig;
use crate::data::synthetic;
use crate::market::{Symbol, Timeframe};
use chrono::{NaiveDate, TimeZone, Utc};

fn bars(symbol: &Symbol) -> Vec<Bar> {
    let d = |m, dd| NaiveDate::from_ymd_opt(2024, m, dd).unwrap();
    synthetic::generate(
        &SyntheticConfig::default(),
        symbol,
        Timeframe::Minute(15),
        d(3, 1),
        d(3, 20),
    )
    .unwrap()
}

#[test]
fn live_recompute_from_trailing_history_equals_batch() {
    let spec = FeatureSpec::basic(8);
    for sym in [Symbol::equity("SYNA"), Symbol::crypto("SYNX/USD")] {
        let b = bars(&sym);
        let batch = compute(&spec, &sym, &b);
        for t in [spec.warmup, spec.warmup + 1, b.len() / 2, b.len() - 1] {
            // Only the history the spec declares it needs.
            let live = compute(&spec, &sym, &b[t - spec.warmup..=t]);
            assert_eq!(live.row(live.len() - 1), batch.row(t), "{sym} at bar {t}");
        }
    }
}

#[test]
fn flat_market_with_zero_volume_gives_finite_zeros() {
    let sym = Symbol::crypto("FLAT/USD");
    let t0 = Utc.with_ymd_and_hms(2024, 1, 6, 0, 0, 0).unwrap();
    let flat: Vec<Bar> = (0..60)
        .map(|i| Bar {
            ts: t0 + chrono::Duration::minutes(15 * i),
            open: 10.0,
            high: 10.0,
            low: 10.0,
            close: 10.0,
            volume: 0.0,
        })
        .collect();
    let spec = FeatureSpec::basic(4);
    let fm = compute(&spec, &sym, &flat);
    assert!(fm.values.iter().all(|v| v.is_finite()));
    let row = fm.row(59);
    // Returns, momentum, volatility, RSI, range, close location, volume: all neutral.
    assert!(row[..8].iter().all(|v| *v == 0.0), "{row:?}");
    // 2024-01-06 is a Saturday: day_of_week = (5 - 3) / 3.
    assert!((row[10] - 2.0 / 3.0).abs() < 1e-6);
}

#[test]
fn rsi_known_values() {
    let t0 = Utc.with_ymd_and_hms(2024, 1, 2, 15, 0, 0).unwrap();
    let mk = |closes: &[f64]| -> Vec<Bar> {
        closes
            .iter()
            .enumerate()
            .map(|(i, &c)| Bar {
                ts: t0 + chrono::Duration::minutes(i as i64),
                open: c,
                high: c,
                low: c,
                close: c,
                volume: 1.0,
            })
            .collect()
    };
    // Gains 3, losses 1 → RSI 75 → 0.5.
    assert!((basic::rsi(&mk(&[10.0, 12.0, 11.0, 12.0])) - 0.5).abs() < 1e-12);
    assert_eq!(basic::rsi(&mk(&[10.0, 11.0, 12.0])), 1.0);
    assert_eq!(basic::rsi(&mk(&[10.0, 10.0])), 0.0);
}

#[test]
fn observation_is_window_rows_then_account() {
    let sym = Symbol::equity("SYNA");
    let b = bars(&sym);
    let spec = FeatureSpec::basic(3);
    let fm = compute(&spec, &sym, &b);
    let t = fm.first_observable(3) + 5;
    let mut obs = Vec::new();
    observation(&spec, &fm, t, &[0.5, -0.1, 0.2], &mut obs);
    assert_eq!(obs.len(), spec.obs_dim());
    assert_eq!(&obs[..11], fm.row(t - 2));
    assert_eq!(&obs[22..33], fm.row(t));
    assert_eq!(&obs[33..], &[0.5, -0.1, 0.2]);
}

#[test]
fn mismatched_layout_names_both() {
    let a = FeatureSpec::basic(32);
    let b = FeatureSpec::basic(16);
    let err = a.ensure_same(&b).unwrap_err().to_string();
    assert!(err.contains("16 bars") && err.contains("32 bars"), "{err}");
    assert!(a.ensure_same(&a.clone()).is_ok());
}
