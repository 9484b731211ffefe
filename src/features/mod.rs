//! The feature pipeline: a versioned [`FeatureSpec`] (`qd-seed58-v1`, the seed's 58-feature
//! layout), indicator code, and [`FeatureMatrix`] (T × F, f32). Every feature is a pure function
//! of a bounded trailing window of bars (exact windows, or recursive smoothers that have forgotten
//! their seed to 1e-6 within `spec.warmup` bars), so a value recomputed live from recent history
//! equals the training value. Training, backtest and paper trading all build observations through
//! [`compute`] and [`observation`]. The layout and every definitional choice: `src/features/SPEC.md`.

mod clock;
pub mod events;
pub mod export;
mod hourly;
pub mod lookahead;
pub mod portfolio;
mod price;
mod regime;
mod series;
mod spec;
pub mod ta;

pub use spec::{FeatureSpec, ACCOUNT_FEATURES, BLOCKS, N_FEATURES, VERSION, WARMUP};

use crate::market::{Bar, Symbol};
use chrono::{DateTime, Utc};

/// Feature values for a bar series: `values[t * n_features + f]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    pub n_features: usize,
    pub ts: Vec<DateTime<Utc>>,
    pub values: Vec<f32>,
    /// First usable bar: from here on every value is exact (independent of older history to
    /// 1e-6). Earlier rows are zero. Equals `spec.warmup` (or the series length if shorter).
    pub first_valid: usize,
}

impl FeatureMatrix {
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    pub fn row(&self, t: usize) -> &[f32] {
        &self.values[t * self.n_features..(t + 1) * self.n_features]
    }

    /// First bar at which a full observation window of valid rows exists.
    pub fn first_observable(&self, window: usize) -> usize {
        self.first_valid + window.saturating_sub(1)
    }
}

/// Computes the spec's features over `bars` of `symbol` with the event-day table `table` (whose
/// hash the spec records). O(T); a pure function of its arguments.
pub fn compute(
    spec: &FeatureSpec,
    symbol: &Symbol,
    bars: &[Bar],
    table: &events::EventTable,
) -> FeatureMatrix {
    debug_assert_eq!(spec.names.len(), N_FEATURES, "spec {}", spec.version);
    debug_assert!(
        spec.events_sha256.is_empty() || spec.events_sha256 == table.sha256(),
        "feature spec built for another event table"
    );
    let nf = N_FEATURES;
    let n = bars.len();
    let from = spec.warmup.min(n);
    let mut values = vec![0.0f32; n * nf];
    if from < n {
        let s = series::Series::new(bars);
        let raw = ta::compute(bars);
        let clock = clock::Clock::new(symbol.class, bars, table);
        // Column offsets follow `spec::BLOCKS`.
        price::fill_base(bars, &s, &raw, &mut values, nf, 0, from);
        clock::fill_temporal(&clock, symbol.class, &mut values, nf, 6, from);
        regime::fill(&s, &mut values, nf, 13, 25, from);
        price::fill_extended(&s, &raw, &mut values, nf, 28, from);
        price::fill_multiwin(&s, &mut values, nf, 42, from);
        hourly::fill(bars, &clock, &mut values, nf, 51, from);
        // Bad bars (zero or missing prices) must never reach a network as NaN or infinity.
        for v in values.iter_mut() {
            if !v.is_finite() {
                *v = 0.0;
            }
        }
    }
    FeatureMatrix {
        n_features: nf,
        ts: bars.iter().map(|b| b.ts).collect(),
        values,
        first_valid: from,
    }
}

/// Writes the observation at bar `t` into `out`: the window's rows `t-W+1..=t` flattened oldest
/// first, then the account block. `t` must be at least `fm.first_observable(W)`.
pub fn observation(
    spec: &FeatureSpec,
    fm: &FeatureMatrix,
    t: usize,
    account: &[f32; 3],
    out: &mut Vec<f32>,
) {
    out.clear();
    let w = spec.window;
    let start = (t + 1 - w) * fm.n_features;
    out.extend_from_slice(&fm.values[start..(t + 1) * fm.n_features]);
    out.extend_from_slice(account);
}

/// The feature vector the model sees for the newest bar, as (name, value) pairs, computed from
/// the trailing `warmup + 1` bars (what the paper trader computes). Empty while there are fewer
/// bars than that. For the TUI's Data pane.
pub fn latest_vector(
    spec: &FeatureSpec,
    symbol: &Symbol,
    bars: &[Bar],
    table: &events::EventTable,
) -> Vec<(String, f32)> {
    let need = spec.warmup + 1;
    if bars.len() < need {
        return Vec::new();
    }
    let fm = compute(spec, symbol, &bars[bars.len() - need..], table);
    spec.names
        .iter()
        .cloned()
        .zip(fm.row(fm.len() - 1).iter().copied())
        .collect()
}

/// The newest observation window as a heatmap: `rows` = the window's bars oldest first, one
/// column per feature, values as the network sees them (mostly in [-1, 1]; probabilities and
/// flags in [0, 1]).
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    pub names: Vec<String>,
    /// Block of each column (`base`, `temporal`, `markov`, …), for grouping labels.
    pub blocks: Vec<&'static str>,
    pub ts: Vec<DateTime<Utc>>,
    /// `values[row * names.len() + col]`.
    pub values: Vec<f32>,
}

impl Heatmap {
    pub fn rows(&self) -> usize {
        self.ts.len()
    }

    pub fn cell(&self, row: usize, col: usize) -> f32 {
        self.values[row * self.names.len() + col]
    }
}

/// The window the model would see at the newest bar (computed from the trailing
/// `warmup + window` bars). `None` while the history is shorter than that.
pub fn window_heatmap(
    spec: &FeatureSpec,
    symbol: &Symbol,
    bars: &[Bar],
    table: &events::EventTable,
) -> Option<Heatmap> {
    let need = spec.warmup + spec.window;
    if bars.len() < need || spec.window == 0 {
        return None;
    }
    let fm = compute(spec, symbol, &bars[bars.len() - need..], table);
    let start = fm.len() - spec.window;
    Some(Heatmap {
        names: spec.names.clone(),
        blocks: (0..spec.n_features()).map(|c| spec.block_of(c)).collect(),
        ts: fm.ts[start..].to_vec(),
        values: fm.values[start * fm.n_features..].to_vec(),
    })
}

#[cfg(test)]
mod tests;
