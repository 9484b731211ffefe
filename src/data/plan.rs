//! Refresh planning: which time ranges to request so that the store ends up with every calendar
//! bar of the wanted range — before the first stored bar, after the last, and in the holes
//! between (a fetch interrupted by another writer, a provider outage, a partial import).
//!
//! Missing bars come in runs of consecutive calendar slots. Thin symbols have natural holes
//! (no trade in a 15-minute slot on IEX), so runs are coalesced into at most `max_ranges`
//! requests: the runs separated by the fewest present bars are joined first, and a joined
//! request re-reads the bars in between (merging them again is harmless). So a refresh costs at
//! most `max_ranges` request streams per symbol, whatever the number of holes, and the ranges
//! still cover every missing bar.

use super::coverage::Slots;
use crate::market::{AssetClass, Timeframe};
use chrono::{DateTime, Duration, Utc};

/// Request streams per symbol and refresh (see the module comment).
pub const MAX_RANGES: usize = 8;

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Inclusive `[start, end]` ranges to request, in order, not overlapping.
    pub ranges: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Calendar bars of the wanted range that the store lacks.
    pub missing: usize,
    /// Runs of consecutive missing bars, before they were coalesced into `ranges`.
    pub runs: usize,
}

/// Plans the requests that complete `stored` (bar start times of one series) over the calendar
/// bars whose start lies in `[start, end]`.
pub fn plan(
    stored: &[DateTime<Utc>],
    class: AssetClass,
    tf: Timeframe,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    max_ranges: usize,
) -> Plan {
    let slots = Slots::new(class, tf, None).detect_grid(stored);
    let expected = slots.between(start, end);
    let mut have: Vec<DateTime<Utc>> = stored.iter().filter_map(|t| slots.slot_of(*t)).collect();
    have.sort();
    have.dedup();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut missing = 0;
    for (i, s) in expected.iter().enumerate() {
        if have.binary_search(&s.key).is_ok() {
            continue;
        }
        missing += 1;
        match runs.last_mut() {
            Some(r) if r.1 + 1 == i => r.1 = i,
            _ => runs.push((i, i)),
        }
    }
    let n_runs = runs.len();
    let merged = coalesce(&runs, max_ranges.max(1));
    let ranges = merged
        .into_iter()
        .map(|(i, j)| {
            let lo = expected[i].span.0.max(start);
            let hi = (expected[j].span.1 - Duration::seconds(1)).min(end);
            (lo, hi.max(lo))
        })
        .collect();
    Plan {
        ranges,
        missing,
        runs: n_runs,
    }
}

/// Joins runs (inclusive index pairs, in order) into at most `max` by keeping the `max - 1`
/// widest separations between neighbours as the cuts.
fn coalesce(runs: &[(usize, usize)], max: usize) -> Vec<(usize, usize)> {
    if runs.len() <= max {
        return runs.to_vec();
    }
    // Separation after run k: the present slots between it and run k + 1.
    let mut cuts: Vec<usize> = (0..runs.len() - 1).collect();
    cuts.sort_by_key(|&k| (std::cmp::Reverse(runs[k + 1].0 - runs[k].1), k));
    cuts.truncate(max - 1);
    cuts.sort();
    let mut out = Vec::with_capacity(max);
    let mut from = 0;
    for k in cuts.into_iter().chain(std::iter::once(runs.len() - 1)) {
        out.push((runs[from].0, runs[k].1));
        from = k + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::Calendar;
    use chrono::TimeZone;

    const TF: Timeframe = Timeframe::Minute(15);

    fn week() -> (DateTime<Utc>, DateTime<Utc>, Vec<DateTime<Utc>>) {
        let start = Utc.with_ymd_and_hms(2024, 3, 4, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2024, 3, 8, 23, 59, 59).unwrap();
        (start, end, Calendar::Nyse.bar_starts(TF, start, end))
    }

    #[test]
    fn complete_series_needs_nothing_and_an_empty_one_everything() {
        let (start, end, all) = week();
        assert_eq!(all.len(), 130);
        let p = plan(&all, AssetClass::Equity, TF, start, end, MAX_RANGES);
        assert_eq!((p.ranges.len(), p.missing), (0, 0));
        let p = plan(&[], AssetClass::Equity, TF, start, end, MAX_RANGES);
        assert_eq!(p.missing, 130);
        assert_eq!(p.ranges, vec![(all[0], all[129] + Duration::seconds(899))]);
    }

    #[test]
    fn head_tail_and_interior_holes_each_get_a_range() {
        let (start, end, all) = week();
        // Stored: bars 10..50 and 60..120 — missing the head, 50..60 and the tail.
        let stored: Vec<_> = all[10..50].iter().chain(&all[60..120]).copied().collect();
        let p = plan(&stored, AssetClass::Equity, TF, start, end, MAX_RANGES);
        assert_eq!(p.missing, 10 + 10 + 10);
        let last = |i: usize| all[i] + Duration::seconds(899);
        assert_eq!(
            p.ranges,
            vec![
                (all[0], last(9)),
                (all[50], last(59)),
                (all[120], last(129))
            ]
        );
        // A hole spanning the overnight break is one run, not two.
        let stored: Vec<_> = all[..20].iter().chain(&all[40..]).copied().collect();
        let p = plan(&stored, AssetClass::Equity, TF, start, end, MAX_RANGES);
        assert_eq!(p.ranges, vec![(all[20], last(39))]);
    }

    #[test]
    fn many_holes_coalesce_into_a_bounded_number_of_ranges_covering_all() {
        let (start, end, all) = week();
        // A thin symbol: every third bar missing, plus one wide hole.
        let stored: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 1 && !(70..90).contains(i))
            .map(|(_, t)| *t)
            .collect();
        let p = plan(&stored, AssetClass::Equity, TF, start, end, 4);
        assert!(p.runs > 30, "{}", p.runs);
        assert_eq!(p.ranges.len(), 4);
        let have: std::collections::BTreeSet<_> = stored.iter().collect();
        for t in all.iter().filter(|t| !have.contains(t)) {
            assert!(
                p.ranges.iter().any(|(a, b)| a <= t && t <= b),
                "{t} not requested"
            );
        }
        assert!(p.ranges.windows(2).all(|w| w[0].1 < w[1].0));
    }
}
