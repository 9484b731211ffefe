//! Evaluation metrics, defined so that small samples cannot fool the gate:
//!
//! - **Sharpe** is computed from *daily* returns (the equity at the last bar of each session for
//!   equities, of each UTC day for crypto) and annualised with √252 (equities) or √365 (crypto).
//!   Per-bar Sharpe × √(bars per year) assumes independent bars, which intraday returns are not,
//!   and inflates a few days of noise into large annual figures.
//! - **Profit factor** = gross profit / gross loss over closed round trips (an open position is
//!   closed at the last price); with no losing trade it is [`PF_CAP`].
//! - **Fitness** = Sharpe × max(0, 1 − 0.2 × max drawdown) (seed v2.4.5).
//! - **Consistency** = share of equal slices of the equity curve that end higher than they start.
//! - An evaluation with fewer than `min_trades` round trips or fewer than `min_days` days is
//!   **insufficient**: it is reported, but never scored (it cannot become a best checkpoint and the
//!   gate does not grade it).

use crate::market::{AssetClass, Calendar};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Seed v2.4.5: fitness = Sharpe × max(0, 1 − 0.2 × MaxDD).
pub const FITNESS_DD_WEIGHT: f64 = 0.2;
/// Profit factor reported when there are wins and no losses (keeps JSON finite). Reachable only
/// with at least `min_trades` trades: below that the evaluation is insufficient.
pub const PF_CAP: f64 = 99.0;

/// The least evidence an evaluation needs to be scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    pub min_trades: usize,
    pub min_days: usize,
}

/// Metrics of one policy evaluation over a bar range.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationMetrics {
    pub update: usize,
    pub profit_factor: f64,
    /// Annualised, from daily returns.
    pub sharpe: f64,
    pub max_drawdown: f64,
    pub fitness: f64,
    pub consistency: f64,
    pub total_return: f64,
    pub hold_pct: f64,
    pub trades: usize,
    /// Days (sessions for equities) the evaluation spans.
    #[serde(default)]
    pub days: usize,
    /// Too few trades or days to score (see the module docs).
    #[serde(default)]
    pub insufficient: bool,
    /// Share of winning round trips (single symbol) or of up days (portfolio); absent in
    /// records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub win_rate: Option<f64>,
    /// A portfolio model's validation: model and equal-weight figures and the regime histogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portfolio: Option<Box<super::portfolio::PortfolioBlock>>,
    /// The raw policy — every choice acted on, no confidence threshold — beside the figures
    /// above, which are as paper trading trades it. Absent where the rules have no threshold
    /// (the two are then the same) and in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<RawFigures>,
    /// Drawn paths of the synthetic market scored after the stored validation range, their
    /// curves chained onto it (`synthetic.validation_paths`, `eval::pooled`): the figures above
    /// are the whole chain's. 0: the stored range alone.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub drawn_paths: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Headline figures of the raw policy (see [`ValidationMetrics::raw`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RawFigures {
    pub total_return: f64,
    pub sharpe: f64,
    pub max_drawdown: f64,
    /// Round trips (single symbol) or rebalancing decisions (portfolio).
    pub trades: usize,
}

/// Trading days per year, for annualising daily figures.
pub fn days_per_year(class: AssetClass) -> f64 {
    match class {
        AssetClass::Equity => 252.0,
        AssetClass::Crypto => 365.0,
    }
}

/// Daily returns of an equity curve whose point `k` is marked at `ts[k]`: the last point of each
/// day (session date for equities, UTC date for crypto) against the previous day's last point
/// (the first day against the curve's start).
pub fn daily_returns(equity: &[f64], ts: &[DateTime<Utc>], class: AssetClass) -> Vec<f64> {
    let cal = Calendar::for_class(class);
    let n = equity.len().min(ts.len());
    let mut out = Vec::new();
    let mut prev_close = match equity.first() {
        Some(e) => *e,
        None => return out,
    };
    for k in 0..n {
        let last_of_day = k + 1 == n || cal.local_date(ts[k]) != cal.local_date(ts[k + 1]);
        if last_of_day && k > 0 {
            if prev_close > 0.0 {
                out.push(equity[k] / prev_close - 1.0);
            }
            prev_close = equity[k];
        }
    }
    out
}

/// Annualised Sharpe of periodic returns (0 for fewer than two periods or a flat series).
pub fn sharpe(returns: &[f64], periods_per_year: f64) -> f64 {
    let n = returns.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean = returns.iter().sum::<f64>() / n;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
    if var <= 1e-18 {
        0.0
    } else {
        mean / var.sqrt() * periods_per_year.sqrt()
    }
}

/// Largest peak-to-trough fall of an equity curve, as a share of the peak.
pub fn max_drawdown(equity: &[f64]) -> f64 {
    let mut peak = f64::MIN;
    let mut dd = 0f64;
    for &e in equity {
        peak = peak.max(e);
        if peak > 0.0 {
            dd = dd.max(1.0 - e / peak);
        }
    }
    dd
}

/// Gross profit / gross loss over trade P&Ls; 0 without trades, [`PF_CAP`] without losses.
pub fn profit_factor(trades: &[f64]) -> f64 {
    // `0.0 +`: an empty float sum is −0.0, which would print a profit factor of "-0.00".
    let win: f64 = 0.0 + trades.iter().filter(|p| **p > 0.0).sum::<f64>();
    let loss: f64 = -trades.iter().filter(|p| **p < 0.0).sum::<f64>();
    if loss <= 0.0 {
        if win > 0.0 {
            PF_CAP
        } else {
            0.0
        }
    } else {
        (win / loss).min(PF_CAP)
    }
}

pub fn win_rate(trades: &[f64]) -> f64 {
    if trades.is_empty() {
        0.0
    } else {
        trades.iter().filter(|p| **p > 0.0).count() as f64 / trades.len() as f64
    }
}

pub fn fitness(sharpe: f64, max_dd: f64) -> f64 {
    sharpe * (1.0 - FITNESS_DD_WEIGHT * max_dd).max(0.0)
}

/// Share of `chunks` equal slices of the equity curve that end higher than they start.
pub fn consistency(equity: &[f64], chunks: usize) -> f64 {
    let chunks = chunks.max(1).min(equity.len().saturating_sub(1).max(1));
    if equity.len() < 2 {
        return 0.0;
    }
    let step = (equity.len() - 1) as f64 / chunks as f64;
    let positive = (0..chunks)
        .filter(|&c| {
            let a = (c as f64 * step).round() as usize;
            let b = (((c + 1) as f64) * step).round() as usize;
            equity[b.min(equity.len() - 1)] > equity[a]
        })
        .count();
    positive as f64 / chunks as f64
}

pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let m = xs.iter().sum::<f64>() / n;
    let var = if n > 1.0 {
        xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

/// The 10th, 50th and 90th percentiles of a policy's confidences (`None` when none was recorded).
pub fn confidence_quantiles(confidences: &[f32]) -> Option<[f32; 3]> {
    let mut c = confidences.to_vec();
    if c.is_empty() {
        return None;
    }
    c.sort_by(f32::total_cmp);
    let q = |p: f64| c[((c.len() - 1) as f64 * p).round() as usize];
    Some([q(0.1), q(0.5), q(0.9)])
}

/// Annualised Sharpe of an equity curve from its daily returns.
pub fn daily_sharpe(equity: &[f64], ts: &[DateTime<Utc>], class: AssetClass) -> f64 {
    sharpe(&daily_returns(equity, ts, class), days_per_year(class))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked_values() {
        assert!((max_drawdown(&[100.0, 120.0, 90.0, 130.0, 117.0]) - 0.25).abs() < 1e-12);
        assert_eq!(profit_factor(&[10.0, -5.0, 5.0]), 3.0);
        assert_eq!(profit_factor(&[1.0]), PF_CAP);
        assert_eq!(profit_factor(&[]), 0.0);
        // Only losses: zero, not a negative zero that prints as "-0.00".
        assert!(profit_factor(&[-1.0]).is_sign_positive());
        assert_eq!(win_rate(&[1.0, -1.0, 2.0, 0.0]), 0.5);
        assert_eq!(sharpe(&[0.01; 10], 252.0), 0.0);
        let s = sharpe(&[0.01, -0.01, 0.02, 0.0], 4.0);
        let sd = (0.000_166_666_666_666_666_67f64).sqrt();
        assert!((s - 0.005 / sd * 2.0).abs() < 1e-9, "{s}");
        assert!((fitness(2.0, 0.5) - 1.8).abs() < 1e-12);
        assert_eq!(consistency(&[1.0, 2.0, 1.5, 3.0, 2.0], 4), 0.5);
    }

    #[test]
    fn daily_returns_take_each_sessions_last_mark() {
        use chrono::TimeZone;
        // Two NYSE sessions (14:30 and 20:45 UTC are inside the 09:30–16:00 ET session in March).
        let t = |d, h, m| Utc.with_ymd_and_hms(2024, 3, d, h, m, 0).unwrap();
        let ts = [
            t(4, 14, 30),
            t(4, 15, 0),
            t(4, 20, 45),
            t(5, 14, 30),
            t(5, 20, 45),
        ];
        let eq = [100.0, 101.0, 102.0, 90.0, 99.0];
        let r = daily_returns(&eq, &ts, AssetClass::Equity);
        assert_eq!(r.len(), 2);
        assert!((r[0] - 0.02).abs() < 1e-12, "{r:?}");
        assert!((r[1] - (99.0 / 102.0 - 1.0)).abs() < 1e-12, "{r:?}");
        // Crypto days are UTC days: 20:45 and 14:30 on the 5th share one day.
        let r = daily_returns(&eq, &ts, AssetClass::Crypto);
        assert_eq!(r.len(), 2);
        // Sharpe of two days: mean / sample std × √252.
        let s = daily_sharpe(&eq, &ts, AssetClass::Equity);
        let (m, sd) = mean_std(&daily_returns(&eq, &ts, AssetClass::Equity));
        assert!((s - m / sd * 252f64.sqrt()).abs() < 1e-9);
        assert!(daily_returns(&[], &[], AssetClass::Equity).is_empty());
    }
}
