//! Known-value tests on small hand-checkable series, block by block.

use super::series::{sliding_max, sliding_min, sliding_sum};
use super::*;
use crate::config::SyntheticConfig;
use crate::data::synthetic;
use crate::market::{Symbol, Timeframe};
use chrono::{NaiveDate, TimeZone, Utc};

fn table() -> events::EventTable {
    events::EventTable::embedded()
}

fn close_enough(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

fn hlc(rows: &[(f64, f64, f64)]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    (
        rows.iter().map(|r| r.0).collect(),
        rows.iter().map(|r| r.1).collect(),
        rows.iter().map(|r| r.2).collect(),
    )
}

#[test]
fn sliding_windows_match_naive_and_flat_windows_are_exactly_zero() {
    let xs: Vec<f64> = (0..57)
        .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.1)
        .collect();
    for w in [1, 3, 7, 20] {
        let (s, mx, mn) = (
            sliding_sum(&xs, w),
            sliding_max(&xs, w),
            sliding_min(&xs, w),
        );
        for t in w - 1..xs.len() {
            let win = &xs[t + 1 - w..=t];
            assert!(close_enough(s[t], win.iter().sum()));
            assert_eq!(mx[t], win.iter().cloned().fold(f64::MIN, f64::max));
            assert_eq!(mn[t], win.iter().cloned().fold(f64::MAX, f64::min));
        }
    }
    let mut spiky = vec![0.0; 40];
    spiky[3] = 1e6;
    assert_eq!(sliding_sum(&spiky, 10)[30], 0.0);
}

#[test]
fn rsi_atr_roc_known_values() {
    let (rsi, norm) = ta::rsi(&[1.0, 2.0, 1.5, 2.5], 2);
    assert!(rsi[1].is_nan());
    // Gains/losses seeded as simple means (.5, .25), then Wilder: (.75, .125).
    assert!(close_enough(rsi[2], 100.0 * 0.5 / 0.75));
    assert!(close_enough(rsi[3], 100.0 * 0.75 / 0.875));
    assert!(close_enough(norm[3], (rsi[3] - 50.0) / 50.0));
    let (flat, flat_norm) = ta::rsi(&[5.0; 6], 2);
    assert_eq!(
        (flat[5], flat_norm[5]),
        (0.0, 0.0),
        "TA-Lib writes 0; the feature is neutral"
    );

    let (h, l, c) = hlc(&[
        (2.0, 1.0, 1.5),
        (3.0, 2.0, 2.5),
        (2.8, 1.8, 2.0),
        (3.0, 2.5, 2.9),
    ]);
    let atr = ta::atr(&h, &l, &c, 2);
    // True ranges 1.5, 1, 1: first ATR their mean over bars 1..=2, then Wilder.
    assert!(close_enough(atr[2], 1.25) && close_enough(atr[3], 1.125));
    let roc = ta::roc(&[10.0, 11.0, 12.1], 2);
    assert!(roc[1].is_nan() && close_enough(roc[2], 21.0));
}

#[test]
fn dmi_known_values() {
    let (h, l, c) = hlc(&[
        (10.0, 9.0, 9.5),
        (11.0, 9.5, 10.5),
        (12.0, 10.0, 11.5),
        (11.5, 9.0, 9.5),
    ]);
    let (pdi, mdi, adx) = ta::dmi(&h, &l, &c, 2);
    // Sums after bar 2: +DM 1.5, -DM 0, TR 2.75; after bar 3: .75, 1, 3.875.
    assert!(close_enough(pdi[2], 100.0 * 1.5 / 2.75) && mdi[2] == 0.0);
    assert!(close_enough(pdi[3], 100.0 * 0.75 / 3.875));
    assert!(close_enough(mdi[3], 100.0 / 3.875));
    let dx3 = 100.0 * (mdi[3] - pdi[3]).abs() / (mdi[3] + pdi[3]);
    assert!(adx[2].is_nan() && close_enough(adx[3], (100.0 + dx3) / 2.0));
}

#[test]
fn stochastic_williams_bollinger_cci_macd_known_values() {
    let (h, l, c) = hlc(&[(3.0, 1.0, 2.0), (4.0, 2.0, 3.0), (5.0, 3.0, 4.0)]);
    let (hh, ll) = (sliding_max(&h, 3), sliding_min(&l, 3));
    assert!(close_enough(ta::willr(&hh, &ll, &c, 3, 0.0)[2], -25.0));
    let (k, d) = ta::stoch(&hh, &ll, &c, 3, 1, 0.0);
    assert!(close_enough(k[2], 75.0) && close_enough(d[2], 75.0));
    let (hf, lf, cf) = (vec![2.0; 4], vec![2.0; 4], vec![2.0; 4]);
    let (hh, ll) = (sliding_max(&hf, 3), sliding_min(&lf, 3));
    assert_eq!(ta::stoch(&hh, &ll, &cf, 3, 1, 50.0).0[3], 50.0);
    assert_eq!(ta::willr(&hh, &ll, &cf, 3, -50.0)[3], -50.0);

    let (up, mid, lo) = ta::bbands(&[1.0, 2.0, 3.0], 3, 2.0);
    let sd = (2.0f64 / 3.0).sqrt();
    assert!(close_enough(mid[2], 2.0) && close_enough(up[2], 2.0 + 2.0 * sd));
    assert!(close_enough(lo[2], 2.0 - 2.0 * sd));
    // Typical prices 1, 2, 3: mean 2, mean deviation 2/3 → (3 - 2) / (0.015 × 2/3) = 100.
    let p = [1.0, 2.0, 3.0];
    assert!(close_enough(ta::cci(&p, &p, &p, 3)[2], 100.0));

    // A straight line: both EMAs lag by a constant, so MACD is constant and the signal equals it.
    let line: Vec<f64> = (1..=8).map(f64::from).collect();
    let (m, s, hist) = ta::macd(&line, 2, 3, 2);
    assert!(m[2].is_nan() && close_enough(m[3], 0.5) && close_enough(m[7], 0.5));
    assert!(close_enough(s[7], 0.5) && hist[7].abs() < 1e-12);
}

fn bars(symbol: &Symbol) -> Vec<Bar> {
    let d = |m, dd| NaiveDate::from_ymd_opt(2024, m, dd).unwrap();
    synthetic::generate(
        &SyntheticConfig::default(),
        symbol,
        Timeframe::Minute(15),
        d(1, 2),
        d(3, 20),
    )
    .unwrap()
}

#[test]
fn blocks_are_bounded_probabilities_sum_to_one_and_rows_before_warmup_are_zero() {
    let spec = FeatureSpec::current(8, &table());
    for sym in [Symbol::equity("SYNA"), Symbol::crypto("SYNX/USD")] {
        let b = bars(&sym);
        let fm = compute(&spec, &sym, &b, &table());
        assert_eq!(fm.first_valid, spec.warmup);
        assert!(fm.row(spec.warmup - 1).iter().all(|v| *v == 0.0));
        for t in fm.first_valid..fm.len() {
            let r = fm.row(t);
            assert!(
                r.iter().all(|v| v.is_finite() && v.abs() <= 1.2),
                "{sym} {t}: {r:?}"
            );
            for k in 0..4 {
                let s: f32 = r[13 + 3 * k..16 + 3 * k].iter().sum();
                assert!((s - 1.0).abs() < 1e-5, "{sym} {t}: chain {k} sums to {s}");
            }
            let s: f32 = r[25..28].iter().sum();
            assert!((s - 1.0).abs() < 1e-5 && r[25..28].iter().all(|p| *p >= 0.0));
        }
    }
}

#[test]
fn a_steady_climb_reads_as_uptrend_bull_and_a_flat_zero_volume_market_as_neutral() {
    let sym = Symbol::crypto("UP/USD");
    let t0 = Utc.with_ymd_and_hms(2024, 1, 6, 0, 0, 0).unwrap();
    let mk = |i: i64, c: f64| Bar {
        ts: t0 + chrono::Duration::minutes(15 * i),
        open: c,
        high: c * 1.001,
        low: c * 0.999,
        close: c,
        volume: 0.0,
    };
    // Up 0.2 % a bar with alternating noise.
    let up: Vec<Bar> = (0..400)
        .map(|i| {
            mk(
                i,
                100.0 * (0.002 * i as f64 + 0.003 * ((i % 2) as f64 - 0.5)).exp(),
            )
        })
        .collect();
    let spec = FeatureSpec::current(4, &table());
    let fm = compute(&spec, &sym, &up, &table());
    let r = fm.row(399);
    assert!(
        r[18] > 0.6 && r[16] < 0.1,
        "trend up {} down {}",
        r[18],
        r[16]
    );
    assert!(r[22] > 0.6, "macro bull {}", r[22]);
    assert!(
        r[0] > 0.9 && r[5] > 0.0,
        "at the top of its range, RSI above 50"
    );
    assert!(r[31] > 0.0, "ADX above 50 in a steady trend: {}", r[31]);

    let flat: Vec<Bar> = (0..400).map(|i| mk(i, 10.0)).collect();
    let fm = compute(&spec, &sym, &flat, &table());
    assert!(fm.values.iter().all(|v| v.is_finite()));
    let r = fm.row(399);
    // Base returns, momentum, RSI; MACD; stochastic; %b; CCI; Williams; ROC: all neutral.
    for c in [1, 2, 3, 4, 5, 28, 29, 30, 34, 35, 37, 39, 40, 41] {
        assert!(r[c].abs() < 1e-6, "column {} = {}", spec.names[c], r[c]);
    }
    // 2024-01-10 03:45 UTC is a Tuesday night in New York (22:45 ET Tuesday).
    assert!((r[8] - (1.0 - 3.0) / 3.0).abs() < 1e-6);
}

#[test]
fn observation_is_window_rows_then_account() {
    let sym = Symbol::equity("SYNA");
    let b = bars(&sym);
    let spec = FeatureSpec::current(3, &table());
    let fm = compute(&spec, &sym, &b, &table());
    let t = fm.first_observable(3) + 5;
    let mut obs = Vec::new();
    observation(&spec, &fm, t, &[0.5, -0.1, 0.2], &mut obs);
    assert_eq!(obs.len(), spec.obs_dim());
    assert_eq!(spec.obs_dim(), 3 * 58 + 3);
    assert_eq!(&obs[..58], fm.row(t - 2));
    assert_eq!(&obs[116..174], fm.row(t));
    assert_eq!(&obs[174..], &[0.5, -0.1, 0.2]);
}

#[test]
fn latest_vector_and_heatmap_show_what_the_model_sees() {
    let sym = Symbol::equity("SYNA");
    let b = bars(&sym);
    let spec = FeatureSpec::current(6, &table());
    let fm = compute(&spec, &sym, &b, &table());
    let v = latest_vector(&spec, &sym, &b, &table());
    assert_eq!(v.len(), 58);
    assert_eq!(v[0].0, "base.norm_price");
    for (j, (_, x)) in v.iter().enumerate() {
        assert!((x - fm.row(b.len() - 1)[j]).abs() < 1e-6);
    }
    assert!(latest_vector(&spec, &sym, &b[..spec.warmup], &table()).is_empty());
    let hm = window_heatmap(&spec, &sym, &b, &table()).unwrap();
    assert_eq!((hm.rows(), hm.names.len()), (6, 58));
    assert_eq!((hm.blocks[0], hm.blocks[57]), ("base", "hourly"));
    assert_eq!(hm.ts[5], b[b.len() - 1].ts);
    assert!((hm.cell(5, 3) - fm.row(b.len() - 1)[3]).abs() < 1e-6);
}

#[test]
fn layout_has_58_named_features_and_mismatches_name_both() {
    let a = FeatureSpec::current(32, &table());
    assert_eq!(a.n_features(), N_FEATURES);
    assert_eq!(a.obs_dim(), 58 * 32 + 3);
    let mut names = a.names.clone();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 58, "names are unique");
    let sizes: Vec<usize> = BLOCKS.iter().map(|(_, n)| n.len()).collect();
    assert_eq!(sizes, [6, 7, 12, 3, 14, 9, 7]);
    let b = FeatureSpec::current(16, &table());
    let err = a.ensure_same(&b).unwrap_err().to_string();
    assert!(err.contains("16 bars") && err.contains("32 bars"), "{err}");
    assert!(a.ensure_same(&a.clone()).is_ok());
    // Another event table: the same layout (accepted), with a warning naming the change.
    let mut edited = table();
    edited.add_csv("2024-03-12,CPI\n", "user.csv");
    let c = FeatureSpec::current(32, &edited);
    assert!(c.ensure_same(&a).is_ok());
    assert!(c
        .events_warning(&a)
        .is_some_and(|w| w.contains("event-day table changed")));
    assert!(a.events_warning(&a.clone()).is_none());
    assert!(FeatureSpec::by_version("qd-basic-v1", 32, &table()).is_err());
}
