//! Calibration: the per-bar volatility that makes `synthetic.annual_vol` the realised annualised
//! volatility of daily close-to-close log returns, at every bar size.
//!
//! A session's log return is its overnight gap (equities) plus the sum of its bars' returns
//! r_i = s·w_i·m_i·u_i: w_i the bar's intraday weight (seasonality × √minutes), m_i the regime
//! multiplier, u_i the unit return (drift share plus noise) and s the scale solved for here. With
//! ρ_k the lag-k autocorrelation of u (a²·φ^k from the AR(1) drift) and E[m_i·m_j] from the regime
//! chain, Var(session) = gap² + s²·Σ_i Σ_j w_i·w_j·E[m_i·m_j]·ρ_|i−j|. Setting it to annual_vol² /
//! 252 (crypto: / 365) gives s. The drift's term dominates: at 15-minute bars with the defaults it
//! makes a session's variance 2.8× (a 96-bar crypto day's: 5.6×) the sum of its bars' variances.

use crate::market::{AssetClass, Timeframe};

/// Regime volatility shapes (calm, normal, stressed). Regimes are drawn uniformly, so each holds
/// a third of the bars in the long run; [`regime_vol`] scales them to a mean variance of 1.
const REGIME_SHAPE: [f64; REGIMES] = [0.75, 1.0, 1.6];
pub(super) const REGIMES: usize = 3;

/// Mean sessions (crypto: days) between regime draws, whatever the bar size: a year then holds
/// about 50 draws, enough for its realised volatility to stay near `annual_vol`.
const REGIME_SESSIONS: f64 = 5.0;

/// The overnight gap takes at most this share of a session's variance (`gap_vol` is capped for
/// very low `annual_vol`, so the bars keep some volatility of their own).
const MAX_GAP_SHARE: f64 = 0.5;

/// The NYSE regular session in local minutes after midnight.
const EQUITY_OPEN: f64 = 570.0;
const EQUITY_CLOSE: f64 = 960.0;

/// The drift-carrying parts of a unit bar return, each as (its share of the return's variance ×
/// the drift's share a² within it, the drift's φ): lag-k autocorrelation Σ share·a²·φ^k.
pub(super) type DriftParts = [(f64, f64); 2];

/// The volatility multiplier of `regime` (0 calm, 1 normal, 2 stressed).
pub(super) fn regime_vol(regime: usize) -> f64 {
    REGIME_SHAPE[regime] / mean_square_regime().sqrt()
}

fn mean_square_regime() -> f64 {
    REGIME_SHAPE.iter().map(|v| v * v).sum::<f64>() / REGIMES as f64
}

/// The odds, per bar, that the regime is not redrawn.
pub(super) fn regime_stay(class: AssetClass, tf: Timeframe) -> f64 {
    1.0 - 1.0 / (REGIME_SESSIONS * tf.bars_per_day(class)).max(1.0)
}

/// U-shaped intraday activity for equities (busy open and close); a mild day/night cycle in UTC
/// for crypto. Its level cancels out of the calibration; only the shape matters.
pub(super) fn intraday_season(class: AssetClass, minute_of_day: f64) -> f64 {
    match class {
        AssetClass::Equity => {
            let u = ((minute_of_day - EQUITY_OPEN) / (EQUITY_CLOSE - EQUITY_OPEN)).clamp(0.0, 1.0);
            (0.75 + (2.0 * u - 1.0).powi(2)) / (0.75 + 1.0 / 3.0)
        }
        AssetClass::Crypto => {
            let phase = minute_of_day / 1440.0 * std::f64::consts::TAU;
            1.0 + 0.25 * (phase - 2.5).sin()
        }
    }
}

/// A bar's volatility weight: the season at its middle, and variance in proportion to its length
/// (a session's last bar may be short).
pub(super) fn bar_weight(class: AssetClass, middle_minute: f64, minutes: f64) -> f64 {
    intraday_season(class, middle_minute) * minutes.max(0.0).sqrt()
}

/// The weights of one regular session's (crypto: one UTC day's) bars.
fn session_weights(class: AssetClass, tf: Timeframe) -> Vec<f64> {
    let (open, close) = match class {
        AssetClass::Equity => (EQUITY_OPEN, EQUITY_CLOSE),
        AssetClass::Crypto => (0.0, 1440.0),
    };
    if tf == Timeframe::Day {
        return vec![bar_weight(class, (open + close) / 2.0, close - open)];
    }
    let step = tf.minutes() as f64;
    let mut out = Vec::new();
    let mut t = open;
    while t < close {
        let len = step.min(close - t);
        out.push(bar_weight(class, t + len / 2.0, len));
        t += step;
    }
    out
}

/// Σ_i Σ_j w_i·w_j·E[m_i·m_j]·ρ_|i−j| over a session's bar weights, for unit-variance regimes
/// redrawn with odds 1 − `stay` per bar (so E[m_i·m_j] = μ² + (1 − μ²)·stay^|i−j|).
fn session_variance(weights: &[f64], parts: &DriftParts, stay: f64) -> f64 {
    let mean = (0..REGIMES).map(regime_vol).sum::<f64>() / REGIMES as f64;
    let mean_sq = mean * mean;
    let mut total: f64 = weights.iter().map(|w| w * w).sum();
    for k in 1..weights.len() {
        let rho: f64 = parts.iter().map(|&(a2, phi)| a2 * phi.powi(k as i32)).sum();
        let regime = mean_sq + (1.0 - mean_sq) * stay.powi(k as i32);
        let cross: f64 = weights.iter().zip(&weights[k..]).map(|(a, b)| a * b).sum();
        total += 2.0 * cross * rho * regime;
    }
    total
}

/// A symbol's volatility scale: bar returns are `per_bar` × their weight × regime × unit return.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Scale {
    pub per_bar: f64,
    /// The overnight gap's standard deviation (0 for crypto).
    pub gap: f64,
}

/// The scale that gives daily close-to-close log returns a standard deviation of
/// `annual_vol` / √(252 sessions or 365 crypto days), gap included.
pub(super) fn calibrate(
    annual_vol: f64,
    gap_vol: f64,
    class: AssetClass,
    tf: Timeframe,
    parts: &DriftParts,
) -> Scale {
    let daily = annual_vol * annual_vol / Timeframe::Day.bars_per_year(class);
    let gap = match class {
        AssetClass::Equity => gap_vol.min((MAX_GAP_SHARE * daily).sqrt()),
        AssetClass::Crypto => 0.0,
    };
    let bars = session_variance(&session_weights(class, tf), parts, regime_stay(class, tf));
    Scale {
        per_bar: ((daily - gap * gap) / bars).sqrt(),
        gap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regimes_have_unit_mean_variance_and_keep_their_shape() {
        let v: Vec<f64> = (0..3).map(regime_vol).collect();
        assert!((v.iter().map(|x| x * x).sum::<f64>() / 3.0 - 1.0).abs() < 1e-12);
        assert!((v[0] / v[1] - 0.75).abs() < 1e-12 && (v[2] / v[1] - 1.6).abs() < 1e-12);
    }

    #[test]
    fn without_drift_or_seasonality_the_bars_split_the_day_evenly() {
        // A random walk over one 24 h crypto bar: the bar's variance is the day's.
        let day = calibrate(
            0.365,
            0.0,
            AssetClass::Crypto,
            Timeframe::Day,
            &[(0.0, 0.0); 2],
        );
        let w = bar_weight(AssetClass::Crypto, 720.0, 1440.0);
        assert!(((day.per_bar * w).powi(2) - 0.365f64.powi(2) / 365.0).abs() < 1e-12);
        // Positive autocorrelation adds variance within the day, so each bar gets less.
        let drift = [(0.1 / 0.97, 0.97), (0.0, 0.0)];
        let fine = |parts: &DriftParts| {
            calibrate(0.25, 0.0, AssetClass::Crypto, Timeframe::Minute(15), parts).per_bar
        };
        assert!(fine(&drift) < 0.6 * fine(&[(0.0, 0.0); 2]));
    }

    #[test]
    fn the_gap_takes_its_share_and_no_more_than_half() {
        let none = [(0.0, 0.0); 2];
        let s = calibrate(0.25, 0.006, AssetClass::Equity, Timeframe::Day, &none);
        assert_eq!(s.gap, 0.006);
        let w = bar_weight(AssetClass::Equity, 765.0, 390.0);
        let total = (s.per_bar * w).powi(2) + s.gap * s.gap;
        assert!((total - 0.25f64.powi(2) / 252.0).abs() < 1e-12);
        let calm = calibrate(0.05, 0.006, AssetClass::Equity, Timeframe::Day, &none);
        assert!((calm.gap.powi(2) - 0.5 * 0.05f64.powi(2) / 252.0).abs() < 1e-15);
    }
}
