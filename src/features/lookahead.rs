//! The look-ahead check a user can run on their own bars (`quantdeck features --check`).
//!
//! quantdeck promises that every feature at bar `t` is a function of bars `..=t` only, and of no
//! more than the trailing `warmup + 1` of them (what the paper trader keeps). Both halves are
//! checked by recomputation, never by reading the code: at many cut points `t` the row computed
//! over the whole history is compared with
//! - the last row of a history *cut at `t`* (all bars up to `t`, none after): a difference means
//!   the feature saw bars after `t` — it looks ahead;
//! - the last row of only the trailing `warmup + 1` bars: a difference means the feature depends
//!   on older history than declared, so paper trading would see another value than training.
//!
//! The computation is passed in, so the tests can prove that a peeking feature is caught.

use super::FeatureMatrix;
use crate::market::Bar;
use crate::rng::Rng;
use chrono::{DateTime, Utc};

/// Largest difference treated as equal: the spec's promise for recursive smoothers whose seed
/// is forgotten within the warm-up (see `src/features/SPEC.md`).
pub const TOLERANCE: f32 = 1e-6;

/// One feature that failed one half of the check.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub feature: String,
    /// The earliest cut at which it differed.
    pub first_bad: DateTime<Utc>,
    /// Cuts at which it differed, of all checked.
    pub bad_cuts: usize,
    /// Largest |whole − cut| over the bad cuts.
    pub worst: f32,
    /// Its value at `first_bad` over the whole history, and from the cut history.
    pub whole: f32,
    pub cut: f32,
}

/// The outcome of [`check`].
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub bars: usize,
    /// Bar indices checked, ascending.
    pub cuts: Vec<usize>,
    /// Trailing bars each cut's bounded recomputation used.
    pub history: usize,
    pub looks_ahead: Vec<Finding>,
    pub outgrows_window: Vec<Finding>,
    /// Largest difference seen over every feature and cut, per half (0 when all equal).
    pub worst_look_ahead: f32,
    pub worst_window: f32,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.looks_ahead.is_empty() && self.outgrows_window.is_empty()
    }
}

/// Up to `count` distinct cut points in `first..n`, always including the first usable bar and
/// the last bar, ascending. Empty when `first >= n`.
pub fn cut_points(n: usize, first: usize, count: usize, rng: &mut Rng) -> Vec<usize> {
    if first >= n || count == 0 {
        return Vec::new();
    }
    let span = n - first;
    let mut picked: Vec<usize> = if count >= span {
        (first..n).collect()
    } else {
        let mut v = vec![first, n - 1];
        let mut seen: std::collections::HashSet<usize> = v.iter().copied().collect();
        while v.len() < count {
            let t = first + rng.below(span);
            if seen.insert(t) {
                v.push(t);
            }
        }
        v
    };
    picked.sort_unstable();
    picked.dedup();
    picked
}

/// Compares, at each cut, the whole-history row with the cut and the bounded recomputations.
/// `history` is the number of trailing bars the bounded recomputation gets (`warmup + 1` for the
/// spec); `compute` maps bars to their feature matrix.
pub fn check(
    names: &[String],
    bars: &[Bar],
    history: usize,
    cuts: &[usize],
    compute: impl Fn(&[Bar]) -> FeatureMatrix,
) -> Report {
    let whole = compute(bars);
    let mut ahead = Tally::new(names);
    let mut window = Tally::new(names);
    for &t in cuts {
        let full_row = whole.row(t);
        let cut = compute(&bars[..=t]);
        ahead.compare(full_row, cut.row(t), whole.ts[t]);
        let from = (t + 1).saturating_sub(history);
        let bounded = compute(&bars[from..=t]);
        window.compare(full_row, bounded.row(t - from), whole.ts[t]);
    }
    Report {
        bars: bars.len(),
        cuts: cuts.to_vec(),
        history,
        worst_look_ahead: ahead.worst,
        worst_window: window.worst,
        looks_ahead: ahead.findings(),
        outgrows_window: window.findings(),
    }
}

/// Per-feature first failure, in column order.
struct Tally<'a> {
    names: &'a [String],
    found: Vec<Option<Finding>>,
    worst: f32,
}

impl<'a> Tally<'a> {
    fn new(names: &'a [String]) -> Self {
        Tally {
            names,
            found: vec![None; names.len()],
            worst: 0.0,
        }
    }

    fn compare(&mut self, whole: &[f32], cut: &[f32], ts: DateTime<Utc>) {
        for (j, (&a, &b)) in whole.iter().zip(cut).enumerate() {
            let diff = if a.is_nan() != b.is_nan() {
                f32::INFINITY
            } else if a.is_nan() {
                0.0
            } else {
                (a - b).abs()
            };
            self.worst = self.worst.max(diff);
            if diff <= TOLERANCE {
                continue;
            }
            let name = self
                .names
                .get(j)
                .cloned()
                .unwrap_or_else(|| format!("#{j}"));
            let f = self.found[j].get_or_insert(Finding {
                feature: name,
                first_bad: ts,
                bad_cuts: 0,
                worst: 0.0,
                whole: a,
                cut: b,
            });
            f.bad_cuts += 1;
            f.worst = f.worst.max(diff);
        }
    }

    fn findings(self) -> Vec<Finding> {
        self.found.into_iter().flatten().collect()
    }
}

#[cfg(test)]
#[path = "lookahead_tests.rs"]
mod tests;
