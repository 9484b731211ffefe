//! The feature pipeline: a versioned [`FeatureSpec`], indicator code, and [`FeatureMatrix`]
//! (T × F, f32). Every feature is a pure function of a bounded trailing window of bars, so a value
//! recomputed live from recent history equals the training value. Training, backtest and paper
//! trading all build observations through [`observation`].

mod basic;
mod spec;

pub use spec::{FeatureSpec, ACCOUNT_FEATURES};

use crate::market::{Bar, Calendar, Symbol};
use chrono::{DateTime, Utc};

/// Feature values for a bar series: `values[t * n_features + f]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    pub n_features: usize,
    pub ts: Vec<DateTime<Utc>>,
    pub values: Vec<f32>,
    /// First bar whose features are all defined (earlier rows are zero).
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

/// Computes the spec's features over `bars` of `symbol`.
pub fn compute(spec: &FeatureSpec, symbol: &Symbol, bars: &[Bar]) -> FeatureMatrix {
    let cal = Calendar::for_class(symbol.class);
    basic::compute(spec, cal, bars)
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

#[cfg(test)]
mod tests;
