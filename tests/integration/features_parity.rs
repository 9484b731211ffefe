//! Live = batch: at random cut points, features recomputed from only the trailing
//! `warmup + window` bars the spec declares (what the paper trader keeps) equal the batch values
//! computed over the whole history, within 1e-6, for every row of the observation window.

use chrono::NaiveDate;
use quantdeck::config::SyntheticConfig;
use quantdeck::data::synthetic;
use quantdeck::features::events::EventTable;
use quantdeck::features::{self, FeatureSpec};
use quantdeck::market::{Symbol, Timeframe};
use quantdeck::rng::Rng;

#[test]
fn live_recompute_from_declared_history_equals_batch() {
    let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
    let cases = [
        (Symbol::equity("SYNA"), Timeframe::Minute(15), d(2023, 6, 1)),
        (
            Symbol::crypto("SYNX/USD"),
            Timeframe::Minute(15),
            d(2024, 1, 1),
        ),
        (Symbol::equity("SYNB"), Timeframe::Minute(5), d(2024, 1, 2)),
        (
            Symbol::crypto("SYNY/USD"),
            Timeframe::Minute(30),
            d(2023, 12, 1),
        ),
        (Symbol::equity("SYNA"), Timeframe::Hour(1), d(2023, 1, 3)),
    ];
    let mut rng = Rng::new(7);
    for (sym, tf, start) in cases {
        let bars =
            synthetic::generate(&SyntheticConfig::default(), &sym, tf, start, d(2024, 3, 28))
                .unwrap();
        let spec = FeatureSpec::current(16, &EventTable::embedded());
        let batch = features::compute(&spec, &sym, &bars, &EventTable::embedded());
        let need = spec.warmup + spec.window;
        assert!(bars.len() > need + 100, "{sym} {tf}: {} bars", bars.len());
        let mut worst = 0.0f32;
        for _ in 0..25 {
            let t = need - 1 + rng.below(bars.len() - need + 1);
            let live = features::compute(
                &spec,
                &sym,
                &bars[t + 1 - need..=t],
                &EventTable::embedded(),
            );
            assert_eq!(live.first_observable(spec.window), live.len() - 1);
            for k in 0..spec.window {
                let (lr, br) = (live.row(live.len() - 1 - k), batch.row(t - k));
                for (j, (a, b)) in lr.iter().zip(br).enumerate() {
                    let diff = (a - b).abs();
                    worst = worst.max(diff);
                    assert!(
                        diff <= 1e-6,
                        "{sym} {tf} bar {t}-{k}: {} live {a} vs batch {b}",
                        spec.names[j]
                    );
                }
            }
        }
        eprintln!(
            "{sym} {tf}: {} bars, worst |live - batch| {worst:e}",
            bars.len()
        );
    }
}
