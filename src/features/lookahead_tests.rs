//! The check passes the real layout and catches what it exists to catch: a feature that reads
//! the next bar, and one whose memory is longer than the declared warm-up.

use super::*;
use crate::config::SyntheticConfig;
use crate::data::synthetic;
use crate::features::{self, events::EventTable, FeatureSpec};
use crate::market::{Symbol, Timeframe};
use chrono::NaiveDate;

fn series(sym: &Symbol, tf: Timeframe, from: (i32, u32, u32)) -> Vec<Bar> {
    let d = |(y, m, dd): (i32, u32, u32)| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
    synthetic::generate(
        &SyntheticConfig::default(),
        sym,
        tf,
        d(from),
        d((2024, 3, 28)),
    )
    .unwrap()
}

fn run(
    sym: &Symbol,
    bars: &[Bar],
    tamper: impl Fn(&[Bar], &mut FeatureMatrix),
) -> (FeatureSpec, Report) {
    let table = EventTable::embedded();
    let spec = FeatureSpec::current(16, &table);
    let cuts = cut_points(bars.len(), spec.warmup, 40, &mut Rng::new(3));
    let report = check(&spec.names, bars, spec.warmup + 1, &cuts, |b| {
        let mut fm = features::compute(&spec, sym, b, &table);
        tamper(b, &mut fm);
        fm
    });
    (spec, report)
}

#[test]
fn the_layout_neither_looks_ahead_nor_outgrows_its_warm_up() {
    for (sym, tf, from) in [
        (Symbol::equity("SYNA"), Timeframe::Day, (2021, 1, 4)),
        (Symbol::equity("SYNB"), Timeframe::Hour(1), (2023, 1, 3)),
        (
            Symbol::crypto("SYNX/USD"),
            Timeframe::Minute(15),
            (2024, 1, 1),
        ),
    ] {
        let bars = series(&sym, tf, from);
        let (_, r) = run(&sym, &bars, |_, _| {});
        assert_eq!(r.cuts.len(), 40, "{sym} {tf}");
        assert!(r.clean(), "{sym} {tf}: {r:?}");
        assert!(r.worst_look_ahead <= TOLERANCE && r.worst_window <= TOLERANCE);
    }
}

#[test]
fn a_feature_that_reads_the_next_bar_is_named_with_its_first_bad_time() {
    let sym = Symbol::equity("SYNA");
    let bars = series(&sym, Timeframe::Day, (2021, 1, 4));
    // Column 3 becomes the *next* bar's return: invisible at the cut, present in the whole.
    let (spec, r) = run(&sym, &bars, |b, fm| {
        for t in fm.first_valid..b.len() {
            let next = b.get(t + 1).map_or(0.0, |n| (n.close / b[t].close).ln());
            let nf = fm.n_features;
            fm.values[t * nf + 3] = next as f32;
        }
    });
    let names: Vec<&str> = r.looks_ahead.iter().map(|f| f.feature.as_str()).collect();
    assert_eq!(names, [spec.names[3].as_str()]);
    let f = &r.looks_ahead[0];
    assert_eq!(f.first_bad, bars[r.cuts[0]].ts);
    assert_eq!(f.cut, 0.0);
    assert!(f.whole != 0.0 && f.worst > TOLERANCE);
    // Every cut but the last (which has no next bar either way) differs.
    assert_eq!(f.bad_cuts, r.cuts.len() - 1);
}

#[test]
fn a_feature_with_unbounded_memory_is_caught_by_the_window_half_only() {
    let sym = Symbol::equity("SYNA");
    let bars = series(&sym, Timeframe::Day, (2021, 1, 4));
    // Column 7 becomes the mean close since the series began: causal, but older than the
    // warm-up, so the paper trader's trailing history would give another value.
    let (spec, r) = run(&sym, &bars, |b, fm| {
        let mut sum = 0.0;
        for (t, bar) in b.iter().enumerate() {
            sum += bar.close;
            if t >= fm.first_valid {
                let nf = fm.n_features;
                fm.values[t * nf + 7] = (sum / (t + 1) as f64 / bar.close) as f32;
            }
        }
    });
    assert!(r.looks_ahead.is_empty(), "{:?}", r.looks_ahead);
    let names: Vec<&str> = r
        .outgrows_window
        .iter()
        .map(|f| f.feature.as_str())
        .collect();
    assert_eq!(names, [spec.names[7].as_str()]);
    assert!(r.worst_window > TOLERANCE && r.worst_look_ahead <= TOLERANCE);
}

#[test]
fn cut_points_are_distinct_sorted_in_range_and_hold_both_ends() {
    let mut rng = Rng::new(11);
    for (n, first, count) in [
        (1000, 320, 50),
        (400, 320, 500),
        (321, 320, 5),
        (10, 320, 5),
    ] {
        let c = cut_points(n, first, count, &mut rng);
        if first >= n {
            assert!(c.is_empty());
            continue;
        }
        assert_eq!(c.len(), count.min(n - first), "{n} {first} {count}");
        assert!(c.windows(2).all(|w| w[0] < w[1]));
        assert_eq!((c[0], *c.last().unwrap()), (first, n - 1));
    }
}
