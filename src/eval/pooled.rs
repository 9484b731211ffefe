//! Validation over several ranges at once: the stored path's validation range and, on the
//! synthetic market, `synthetic.validation_paths` drawn paths over the same days. One 38-day
//! range gives a Sharpe whose standard error is about 2.6, too wide to tell a good checkpoint
//! from a lucky one; the ranges are chained into one history and scored as one, so the record,
//! the gate's thresholds and its checkpoint choice read the same kind of figures as before.

use super::backtest::{BacktestResult, Backtester};
use super::metrics::{Evidence, ValidationMetrics};
use crate::engine::HostPolicy;
use std::ops::Range;

impl BacktestResult {
    /// `parts` as one history: each curve continues from the equity where the one before it
    /// ended (its own returns compounded on), and its bar times, round trips, actions, fills and
    /// confidences follow the earlier ones'. Each part starts a fresh account, so no position
    /// is carried across a seam. `bars` is the first part's.
    pub fn chain(parts: Vec<BacktestResult>) -> BacktestResult {
        let mut parts = parts.into_iter();
        let Some(mut out) = parts.next() else {
            return BacktestResult::default();
        };
        for p in parts {
            let (Some(&from), Some(&base)) = (out.equity.last(), p.equity.first()) else {
                continue;
            };
            let scale = if base > 0.0 { from / base } else { 1.0 };
            out.equity
                .extend(p.equity.iter().skip(1).map(|e| e * scale));
            out.ts.extend(p.ts.iter().skip(1));
            out.returns.extend(p.returns);
            out.trades.extend(p.trades);
            for (a, b) in out.action_counts.iter_mut().zip(p.action_counts) {
                *a += b;
            }
            out.risk_events += p.risk_events;
            out.held_by_threshold += p.held_by_threshold;
            out.fills.extend(p.fills);
            out.confidences.extend(p.confidences);
        }
        out
    }
}

/// A model's validation over every `(backtester, range)` of `parts` as one chained history
/// (see [`BacktestResult::chain`]): the figures as traded, with the raw policy's beside them
/// when the rules have a confidence threshold. The first part is the stored validation range;
/// the record counts the others in `drawn_paths`. One part is `Backtester::validate`.
pub fn validate_on(
    parts: &[(Backtester, Range<usize>)],
    policy: &HostPolicy,
    chunks: usize,
    evidence: Evidence,
) -> ValidationMetrics {
    let Some((first, _)) = parts.first() else {
        return ValidationMetrics {
            insufficient: true,
            ..Default::default()
        };
    };
    let class = first.class;
    let traded = BacktestResult::chain(
        parts
            .iter()
            .map(|(bt, r)| bt.run(policy, r.clone()))
            .collect(),
    );
    let mut m = traded.metrics(class, chunks, evidence);
    m.drawn_paths = parts.len() - 1;
    if first.trading.is_some_and(|t| t.has_threshold()) {
        let raw = BacktestResult::chain(
            parts
                .iter()
                .map(|(bt, r)| bt.raw().run(policy, r.clone()))
                .collect(),
        );
        m.raw = Some(raw.raw_figures(class));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn part(equity: &[f64], day: u32, trades: &[f64]) -> BacktestResult {
        // One mark a session, at 20:00 UTC (inside the NYSE session in March).
        let ts = (0..equity.len())
            .map(|k| {
                Utc.with_ymd_and_hms(2024, 3, day + k as u32, 20, 0, 0)
                    .unwrap()
            })
            .collect();
        BacktestResult {
            equity: equity.to_vec(),
            ts,
            returns: equity.windows(2).map(|w| w[1] / w[0] - 1.0).collect(),
            trades: trades.to_vec(),
            action_counts: [1; crate::sim::N_ACTIONS],
            held_by_threshold: 2,
            ..Default::default()
        }
    }

    #[test]
    fn chaining_compounds_each_part_onto_the_last_equity() {
        let a = part(&[100.0, 110.0, 121.0], 4, &[21.0]);
        let b = part(&[100.0, 90.0, 99.0], 11, &[-1.0, 2.0]);
        let c = BacktestResult::chain(vec![a.clone(), b.clone()]);
        assert_eq!(c.equity.len(), 5);
        assert_eq!(c.ts.len(), 5);
        // 121 × 0.9 and × 1.1: the second part's returns, from where the first ended.
        assert!((c.equity[3] - 108.9).abs() < 1e-9, "{:?}", c.equity);
        assert!((c.equity[4] - 119.79).abs() < 1e-9, "{:?}", c.equity);
        assert!((c.total_return() - (1.21 * 0.99 - 1.0)).abs() < 1e-12);
        assert_eq!(c.trades, vec![21.0, -1.0, 2.0]);
        assert_eq!(c.action_counts[0], 2);
        assert_eq!(c.held_by_threshold, 4);
        assert_eq!(c.returns.len(), 4);
        // Days are counted per part: the seam is a change of day.
        assert_eq!(c.days(crate::market::AssetClass::Equity), 5);
        // One part is itself; none is empty.
        assert_eq!(BacktestResult::chain(vec![a.clone()]), a);
        assert_eq!(BacktestResult::chain(vec![]), BacktestResult::default());
    }

    #[test]
    fn a_chained_drawdown_spans_the_seam() {
        // Down 10 % at the end of one part and 10 % at the start of the next: 19 % in all.
        let a = part(&[100.0, 100.0, 90.0], 4, &[]);
        let b = part(&[50.0, 45.0, 60.0], 11, &[]);
        let c = BacktestResult::chain(vec![a, b]);
        let dd = crate::eval::metrics::max_drawdown(&c.equity);
        assert!((dd - 0.19).abs() < 1e-9, "{dd}");
    }
}
