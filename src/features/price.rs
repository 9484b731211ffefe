//! The price blocks: base (6), extended indicators normalized (14) and multi-window statistics
//! (9). Every value is scale-free (returns in units of the series' own recent volatility, or
//! percentages) and bounded (tanh or a fixed range), so the network sees comparable inputs.

use super::series::{sliding_max, sliding_min, Series, Squash};
use super::ta::Raw;
use crate::market::Bar;

/// `x / d` with 0 for a zero or undefined denominator.
fn ratio(x: f64, d: f64) -> f64 {
    if d > 0.0 && d.is_finite() {
        x / d
    } else {
        0.0
    }
}

/// Base block: norm_price, returns, log_returns, vol, momentum, rsi.
pub fn fill_base(
    bars: &[Bar],
    s: &Series,
    raw: &Raw,
    out: &mut [f32],
    nf: usize,
    col: usize,
    from: usize,
) {
    let highs: Vec<f64> = bars.iter().map(|b| b.high).collect();
    let lows: Vec<f64> = bars.iter().map(|b| b.low).collect();
    let (hh, ll) = (sliding_max(&highs, 100), sliding_min(&lows, 100));
    for t in from..bars.len() {
        let row = &mut out[t * nf + col..t * nf + col + 6];
        let c = s.close[t];
        let sref = s.sd100[t];
        let range = hh[t] - ll[t];
        row[0] = if range > 0.0 {
            (2.0 * (c - ll[t]) / range - 1.0) as f32
        } else {
            0.0
        };
        let simple = if t > 0 {
            ratio(c, s.close[t - 1]) - 1.0
        } else {
            0.0
        };
        row[1] = (100.0 * simple).squash() as f32;
        row[2] = (ratio(s.lr[t], sref) / 3.0).squash() as f32;
        row[3] = if s.sd20[t] > 0.0 && sref > 0.0 {
            (s.sd20[t] / sref).ln().squash() as f32
        } else {
            0.0
        };
        row[4] = (ratio(s.log_change(t, 10), sref * 10f64.sqrt()) / 2.0).squash() as f32;
        row[5] = raw.rsi_norm[t] as f32;
    }
}

/// Extended block: macd, macd_signal, macd_hist, adx, plus_di, minus_di, stoch_k, stoch_d, atr,
/// bb_pctb, bb_width, cci, willr, roc.
pub fn fill_extended(s: &Series, raw: &Raw, out: &mut [f32], nf: usize, col: usize, from: usize) {
    for t in from..s.close.len() {
        let row = &mut out[t * nf + col..t * nf + col + 14];
        let c = s.close[t];
        let atr = raw.atr[t];
        // MACD in ATRs: price-free, comparable across symbols.
        row[0] = ratio(raw.macd[t], atr).squash() as f32;
        row[1] = ratio(raw.macd_signal[t], atr).squash() as f32;
        row[2] = (2.0 * ratio(raw.macd_hist[t], atr)).squash() as f32;
        row[3] = (raw.adx[t] / 50.0 - 1.0) as f32;
        row[4] = (raw.plus_di[t] / 50.0 - 1.0) as f32;
        row[5] = (raw.minus_di[t] / 50.0 - 1.0) as f32;
        row[6] = (raw.stoch_k_neutral[t] / 50.0 - 1.0) as f32;
        row[7] = (raw.stoch_d_neutral[t] / 50.0 - 1.0) as f32;
        row[8] = (100.0 * ratio(atr, c)).squash() as f32;
        let half_band = (raw.bb_upper[t] - raw.bb_middle[t]) / 2.0; // = σ
        row[9] = ratio(c - raw.bb_middle[t], 2.0 * half_band).squash() as f32;
        row[10] =
            (20.0 * ratio(raw.bb_upper[t] - raw.bb_lower[t], raw.bb_middle[t])).squash() as f32;
        row[11] = (raw.cci[t] / 200.0).squash() as f32;
        row[12] = ((raw.willr_neutral[t] + 50.0) / 50.0) as f32;
        row[13] = (raw.roc[t] / 2.0).squash() as f32;
    }
}

/// Multi-window block: for 20, 50 and 100 bars, the return in units of the 100-bar volatility,
/// the per-bar volatility in percent, and Kaufman's efficiency ratio (net move over path length,
/// mapped to [-1, 1]).
pub fn fill_multiwin(s: &Series, out: &mut [f32], nf: usize, col: usize, from: usize) {
    for t in from..s.close.len() {
        let row = &mut out[t * nf + col..t * nf + col + 9];
        let sref = s.sd100[t];
        for (k, (w, sd, path)) in [
            (20usize, &s.sd20, &s.abs20),
            (50, &s.sd50, &s.abs50),
            (100, &s.sd100, &s.abs100),
        ]
        .into_iter()
        .enumerate()
        {
            let net = s.log_change(t, w);
            row[3 * k] = (ratio(net, sref * (w as f64).sqrt()) / 2.0).squash() as f32;
            row[3 * k + 1] = (100.0 * sd[t]).squash() as f32;
            row[3 * k + 2] = if path[t] > 0.0 {
                (2.0 * (net.abs() / path[t]).min(1.0) - 1.0) as f32
            } else {
                0.0
            };
        }
    }
}
