//! The first feature layout: returns, momentum, volatility, RSI, bar shape, volume surprise and
//! the exchange clock. Each value is scale-free and bounded so the network sees comparable inputs.

use super::{FeatureMatrix, FeatureSpec};
use crate::market::{Bar, Calendar};

pub const VERSION: &str = "qd-basic-v1";
pub const NAMES: [&str; 11] = [
    "ret_1",
    "ret_4",
    "mom_20",
    "vol_20",
    "rsi_14",
    "range",
    "close_location",
    "volume_z20",
    "tod_sin",
    "tod_cos",
    "day_of_week",
];
/// The longest lookback (20 bars of returns need 21 closes).
pub const WARMUP: usize = 20;

pub fn compute(spec: &FeatureSpec, cal: Calendar, bars: &[Bar]) -> FeatureMatrix {
    let f = NAMES.len();
    debug_assert_eq!(spec.names.len(), f);
    let n = bars.len();
    let mut values = vec![0.0f32; n * f];
    let logret: Vec<f64> = (0..n)
        .map(|t| {
            if t == 0 {
                0.0
            } else {
                safe_ln(bars[t].close / bars[t - 1].close)
            }
        })
        .collect();
    for t in WARMUP.min(n)..n {
        let b = &bars[t];
        let row = &mut values[t * f..(t + 1) * f];
        row[0] = (100.0 * logret[t]).tanh() as f32;
        row[1] = (50.0 * safe_ln(b.close / bars[t - 4].close)).tanh() as f32;
        row[2] = (20.0 * safe_ln(b.close / bars[t - 20].close)).tanh() as f32;
        row[3] = (100.0 * std_dev(&logret[t - 19..=t])).tanh() as f32;
        row[4] = rsi(&bars[t - 14..=t]) as f32;
        row[5] = (100.0 * (b.high - b.low) / b.close).tanh() as f32;
        row[6] = if b.high > b.low {
            (2.0 * (b.close - b.low) / (b.high - b.low) - 1.0) as f32
        } else {
            0.0
        };
        row[7] = volume_z(&bars[t - 19..=t]) as f32;
        let (minute, weekday) = cal.local_clock(b.ts);
        let phase = minute as f64 / 1440.0 * std::f64::consts::TAU;
        row[8] = phase.sin() as f32;
        row[9] = phase.cos() as f32;
        row[10] = ((weekday.num_days_from_monday() as f64 - 3.0) / 3.0) as f32;
        for v in row.iter_mut() {
            if !v.is_finite() {
                *v = 0.0;
            }
        }
    }
    FeatureMatrix {
        n_features: f,
        ts: bars.iter().map(|b| b.ts).collect(),
        values,
        first_valid: WARMUP.min(n),
    }
}

fn safe_ln(x: f64) -> f64 {
    if x > 0.0 && x.is_finite() {
        x.ln()
    } else {
        0.0
    }
}

fn std_dev(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// RSI over the window's close-to-close changes with simple averages, mapped to [-1, 1]
/// ((RSI - 50) / 50). A window with no movement is neutral (0).
pub fn rsi(window: &[Bar]) -> f64 {
    let (mut up, mut down) = (0.0, 0.0);
    for w in window.windows(2) {
        let d = w[1].close - w[0].close;
        if d > 0.0 {
            up += d;
        } else {
            down -= d;
        }
    }
    if up + down <= 0.0 {
        0.0
    } else {
        (100.0 * up / (up + down) - 50.0) / 50.0
    }
}

/// Last bar's volume against the window's mean and deviation, clipped to ±4σ and scaled to
/// [-1, 1]. Constant or missing volume gives 0, never NaN.
fn volume_z(window: &[Bar]) -> f64 {
    let vols: Vec<f64> = window.iter().map(|b| b.volume).collect();
    let sd = std_dev(&vols);
    if sd <= 1e-12 {
        return 0.0;
    }
    let mean = vols.iter().sum::<f64>() / vols.len() as f64;
    ((vols[vols.len() - 1] - mean) / sd).clamp(-4.0, 4.0) / 4.0
}
