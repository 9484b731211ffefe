//! Windowed helpers shared by the blocks. Every rolling statistic here is computed from the
//! window's own elements only (block-decomposed sums and extrema, after van Herk / Gil-Werman),
//! so its rounding depends on the window, not on how long the series is: a value recomputed live
//! from a short history equals the batch value, and an all-zero window gives exactly zero.

use crate::market::Bar;

/// Closes, log returns and their rolling moments for one series.
pub struct Series {
    pub close: Vec<f64>,
    /// `ln(c[t] / c[t-1])`; 0 at t = 0 and wherever a price is not positive and finite.
    pub lr: Vec<f64>,
    /// Population standard deviation of the last 20, 50 and 100 log returns.
    pub sd20: Vec<f64>,
    pub sd50: Vec<f64>,
    pub sd100: Vec<f64>,
    /// Sum of |log return| over the last 20, 50 and 100 bars (efficiency-ratio denominators).
    pub abs20: Vec<f64>,
    pub abs50: Vec<f64>,
    pub abs100: Vec<f64>,
}

impl Series {
    pub fn new(bars: &[Bar]) -> Self {
        let close: Vec<f64> = bars.iter().map(|b| b.close).collect();
        let mut lr = vec![0.0; close.len()];
        for t in 1..close.len() {
            lr[t] = safe_ln_ratio(close[t], close[t - 1]);
        }
        let sq: Vec<f64> = lr.iter().map(|x| x * x).collect();
        let ab: Vec<f64> = lr.iter().map(|x| x.abs()).collect();
        let sd = |w| rolling_sd(&sliding_sum(&lr, w), &sliding_sum(&sq, w), w);
        Series {
            sd20: sd(20),
            sd50: sd(50),
            sd100: sd(100),
            abs20: sliding_sum(&ab, 20),
            abs50: sliding_sum(&ab, 50),
            abs100: sliding_sum(&ab, 100),
            close,
            lr,
        }
    }

    /// `ln(c[t] / c[t-k])`, 0 when undefined.
    pub fn log_change(&self, t: usize, k: usize) -> f64 {
        if t < k {
            return 0.0;
        }
        safe_ln_ratio(self.close[t], self.close[t - k])
    }
}

pub fn safe_ln_ratio(a: f64, b: f64) -> f64 {
    if a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite() {
        (a / b).ln()
    } else {
        0.0
    }
}

/// `out[t] = xs[t+1-w..=t].sum()` (a partial sum while `t < w - 1`). Blocks of `w` carry prefix
/// and suffix sums; a window is one block's suffix plus the next block's prefix.
pub fn sliding_sum(xs: &[f64], w: usize) -> Vec<f64> {
    sliding(xs, w, 0.0, |a, b| a + b)
}

pub fn sliding_max(xs: &[f64], w: usize) -> Vec<f64> {
    sliding(xs, w, f64::NEG_INFINITY, f64::max)
}

pub fn sliding_min(xs: &[f64], w: usize) -> Vec<f64> {
    sliding(xs, w, f64::INFINITY, f64::min)
}

fn sliding(xs: &[f64], w: usize, id: f64, op: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let n = xs.len();
    let w = w.max(1);
    let mut pre = vec![id; n];
    let mut suf = vec![id; n];
    for start in (0..n).step_by(w) {
        let end = (start + w).min(n);
        let mut acc = id;
        for i in start..end {
            acc = op(acc, xs[i]);
            pre[i] = acc;
        }
        let mut acc = id;
        for i in (start..end).rev() {
            acc = op(acc, xs[i]);
            suf[i] = acc;
        }
    }
    (0..n)
        .map(|t| {
            if t + 1 < w {
                // Before the first full window every element so far lies in block 0.
                pre[t]
            } else {
                let s = t + 1 - w;
                if s.is_multiple_of(w) {
                    pre[t]
                } else {
                    op(suf[s], pre[t])
                }
            }
        })
        .collect()
}

/// Standard deviation from window sums; a variance that is rounding noise relative to the
/// window's mean square is exactly zero (so a flat or geometric stretch reads as zero).
fn rolling_sd(s1: &[f64], s2: &[f64], w: usize) -> Vec<f64> {
    let n = w as f64;
    s1.iter()
        .zip(s2)
        .map(|(&a, &b)| {
            let var = (b - a * a / n) / n;
            if var <= 1e-10 * (b / n) || var <= 0.0 {
                0.0
            } else {
                var.sqrt()
            }
        })
        .collect()
}

/// tanh through one `exp` (libm's tanh costs several times more, and the matrix calls it
/// millions of times); within 1e-15 of tanh, and NaN maps to 0.
pub trait Squash {
    fn squash(self) -> f64;
}

impl Squash for f64 {
    #[inline]
    fn squash(self) -> f64 {
        if self.is_nan() {
            return 0.0;
        }
        let e = (2.0 * self.clamp(-20.0, 20.0)).exp();
        (e - 1.0) / (e + 1.0)
    }
}
