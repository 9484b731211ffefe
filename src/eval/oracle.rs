//! The oracle: a rule that knows the synthetic market's hidden drift and holds its sign — long
//! while it is positive, short (flat where shorts are not allowed) while it is negative. No
//! policy seeing only past bars can expect to do better by much, so it is the upper bound that
//! the learning benchmark measures a trained policy against. Benchmarks only: it needs the
//! generator's truth, which no real market offers, so nothing user-facing offers it as a model.

use super::{BacktestResult, Backtester};
use std::ops::Range;

/// Half-life, in bars, of the trailing volatility the filter scales returns by (two equity
/// sessions of 15-minute bars).
const VOL_HALFLIFE: f64 = 52.0;

/// The position level the oracle holds at each bar's close: the sign of the drift in force
/// during that bar (the next bar's expected drift has the same sign). Zero drift holds nothing.
pub fn levels(drift: &[f64], allow_short: bool) -> Vec<f64> {
    drift
        .iter()
        .map(|&d| {
            if d > 0.0 {
                1.0
            } else if d < 0.0 && allow_short {
                -1.0
            } else {
                0.0
            }
        })
        .collect()
}

/// Backtests the oracle over `range` through the same bar loop, sizing and costs as any policy.
/// `drift` is per bar of the backtester's series (`synthetic::generate_with_truth`).
pub fn run(bt: &Backtester, drift: &[f64], range: Range<usize>) -> BacktestResult {
    let lv = levels(drift, bt.rules.allow_short);
    bt.run_levels(range, |t| lv.get(t).copied().unwrap_or(0.0))
}

/// The drift as a trader who knows the market's parameters but not its state can estimate it
/// from past closes alone: a steady-state Kalman filter for the AR(1) drift (coefficient `phi`,
/// share `loading` of each bar's return) on returns scaled by a trailing volatility estimate.
/// Entry `t` uses closes up to `t` only. Its sign is what an ideal *observer* would hold: the
/// ceiling for any policy that sees only past bars, below the oracle's.
pub fn filtered_drift(closes: &[f64], phi: f64, loading: f64) -> Vec<f64> {
    let gain = kalman_gain(phi, loading);
    let keep = 0.5f64.powf(1.0 / VOL_HALFLIFE);
    let mut out = Vec::with_capacity(closes.len());
    let (mut est, mut var) = (0.0f64, 0.0f64);
    for (t, &c) in closes.iter().enumerate() {
        let r = match t.checked_sub(1).map(|p| closes[p]) {
            Some(prev) if prev > 0.0 && c > 0.0 => (c / prev).ln(),
            _ => 0.0,
        };
        // Scaled by the volatility known before this bar, so a return never scales itself.
        let z = if var > 0.0 { r / var.sqrt() } else { 0.0 };
        let prior = phi * est;
        est = prior + gain * (z - loading * prior);
        var = if var > 0.0 {
            keep * var + (1.0 - keep) * r * r
        } else {
            r * r
        };
        out.push(est);
    }
    out
}

/// The steady-state Kalman gain for a unit-variance AR(1) state `d` (d' = φ·d + √(1−φ²)·w)
/// observed as a·d + √(1−a²)·v.
fn kalman_gain(phi: f64, a: f64) -> f64 {
    let (q, r) = (1.0 - phi * phi, (1.0 - a * a).max(1e-12));
    let mut p = 1.0;
    let mut gain = 0.0;
    for _ in 0..10_000 {
        let prior = phi * phi * p + q;
        gain = prior * a / (a * a * prior + r);
        let next = (1.0 - gain * a) * prior;
        if (next - p).abs() < 1e-15 {
            break;
        }
        p = next;
    }
    gain
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SyntheticConfig;
    use crate::data::synthetic::{drift_loading, drift_phi, generate_with_truth};
    use crate::market::{Symbol, Timeframe};

    #[test]
    fn the_kalman_gain_is_the_steady_state() {
        // No loading: the returns say nothing about the drift.
        assert_eq!(kalman_gain(0.9, 0.0), 0.0);
        // At the fixed point the posterior variance P satisfies P = (1 − K·a)·(φ²P + q).
        let (phi, a) = (0.97, 0.3);
        let k = kalman_gain(phi, a);
        let q = 1.0 - phi * phi;
        // From K = P⁻a / (a²P⁻ + r): P⁻ = K·r / (a − K·a²).
        let prior = k * (1.0 - a * a) / (a - k * a * a);
        let post = (1.0 - k * a) * prior;
        assert!(
            (phi * phi * post + q - prior).abs() < 1e-9,
            "{k} {prior} {post}"
        );
        assert!(k > 0.0 && k < 1.0 / a);
    }

    #[test]
    fn the_filter_tracks_the_hidden_drift_from_closes_alone() {
        let cfg = SyntheticConfig {
            edge: 0.2,
            ..Default::default()
        };
        let day = |m, d| chrono::NaiveDate::from_ymd_opt(2024, m, d).unwrap();
        let s = generate_with_truth(
            &cfg,
            &Symbol::equity("SYNA"),
            Timeframe::Minute(15),
            day(1, 2),
            day(6, 28),
        )
        .unwrap();
        let closes: Vec<f64> = s.bars.iter().map(|b| b.close).collect();
        let phi = drift_phi(cfg.drift_halflife);
        let est = filtered_drift(&closes, phi, drift_loading(cfg.edge, phi));
        assert_eq!(est.len(), closes.len());
        let agree = est
            .iter()
            .zip(&s.drift)
            .filter(|(e, d)| e.signum() == d.signum())
            .count() as f64
            / est.len() as f64;
        assert!(agree > 0.7, "sign agreement {agree:.2}");
        // Causal: changing a later close leaves every earlier estimate alone.
        let mut later = closes.clone();
        later[2000] *= 1.05;
        let est2 = filtered_drift(&later, phi, drift_loading(cfg.edge, phi));
        assert_eq!(est[..2000], est2[..2000]);
        assert_ne!(est[2000], est2[2000]);
        // With no planted edge there is nothing to estimate.
        assert!(filtered_drift(&closes, phi, 0.0).iter().all(|&e| e == 0.0));
    }

    #[test]
    fn levels_follow_the_drift_sign() {
        let drift = [0.3, -0.2, 0.0, 1e-9, -5.0];
        assert_eq!(levels(&drift, true), vec![1.0, -1.0, 0.0, 1.0, -1.0]);
        assert_eq!(levels(&drift, false), vec![1.0, 0.0, 0.0, 1.0, 0.0]);
        assert!(levels(&[], true).is_empty());
    }
}
