//! The full 58-feature matrix over ~140k 15Min crypto bars (four years) on one core, and the
//! paper trader's per-bar recomputation over `warmup + window` bars. Not a timed test: figures
//! only. `cargo bench --bench features` (release) or `cargo bench --profile dev --bench features`.

use chrono::NaiveDate;
use quantdeck::config::SyntheticConfig;
use quantdeck::data::synthetic;
use quantdeck::features::events::EventTable;
use quantdeck::features::{self, FeatureSpec};
use quantdeck::market::{Symbol, Timeframe};

#[path = "common/timing.rs"]
mod timing;
use timing::median;

fn main() {
    let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).expect("date");
    let spec = FeatureSpec::current(100, &EventTable::embedded());
    for sym in [Symbol::crypto("SYNX/USD"), Symbol::equity("SYNA")] {
        let bars = synthetic::generate(
            &SyntheticConfig::default(),
            &sym,
            Timeframe::Minute(15),
            d(2021, 1, 1),
            d(2024, 12, 29),
        )
        .expect("bars");
        let s = median(
            || {
                drop(features::compute(
                    &spec,
                    &sym,
                    &bars,
                    &EventTable::embedded(),
                ))
            },
            7,
        );
        println!(
            "features/{} {sym} {} bars × {} features: {:.1} ms ({:.2} M bars/s)",
            spec.version,
            bars.len(),
            spec.n_features(),
            s * 1e3,
            bars.len() as f64 / s / 1e6
        );
        let need = spec.warmup + spec.window;
        let tail = &bars[bars.len() - need..];
        let s = median(
            || {
                drop(features::compute(
                    &spec,
                    &sym,
                    tail,
                    &EventTable::embedded(),
                ))
            },
            51,
        );
        println!(
            "features/live {sym} one bar ({need} bars of history): {:.3} ms",
            s * 1e3
        );
    }
}
