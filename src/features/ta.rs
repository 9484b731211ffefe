//! Technical indicators by their standard definitions, seeded the way TA-Lib seeds them (its
//! default, non-MetaStock mode), so raw values match TA-Lib bar for bar on the same series:
//! RSI 14, MACD 12/26/9, ADX/+DI/-DI 14, slow stochastic 14/3/3 (SMA), ATR 14, Bollinger 20/2
//! (population σ), CCI 20, Williams %R 14, ROC 10. Values before an indicator's lookback are NaN.
//! `tests/features_talib.rs` checks them against TA-Lib's output.

use super::series::{sliding_max, sliding_min, sliding_sum};
use crate::market::Bar;

const NAN: f64 = f64::NAN;

/// TA-Lib treats |x| < 1e-14 as zero when guarding divisions.
fn is_zero(x: f64) -> bool {
    x.abs() < 1e-14
}

/// Raw indicator columns, in the export's column order.
pub const RAW_NAMES: [&str; 16] = [
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "adx_14",
    "plus_di_14",
    "minus_di_14",
    "stoch_k",
    "stoch_d",
    "atr_14",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "cci_20",
    "willr_14",
    "roc_10",
];

/// Every raw indicator for a series, plus the scale-free companions the features need.
pub struct Raw {
    pub rsi: Vec<f64>,
    pub macd: Vec<f64>,
    pub macd_signal: Vec<f64>,
    pub macd_hist: Vec<f64>,
    pub adx: Vec<f64>,
    pub plus_di: Vec<f64>,
    pub minus_di: Vec<f64>,
    pub stoch_k: Vec<f64>,
    pub stoch_d: Vec<f64>,
    pub atr: Vec<f64>,
    pub bb_upper: Vec<f64>,
    pub bb_middle: Vec<f64>,
    pub bb_lower: Vec<f64>,
    pub cci: Vec<f64>,
    pub willr: Vec<f64>,
    pub roc: Vec<f64>,
    /// RSI mapped to [-1, 1]; 0 (neutral) where TA-Lib writes 0 for a motionless window.
    pub rsi_norm: Vec<f64>,
    /// Stochastic %K/%D and Williams %R with a motionless window read as mid-range (50 / -50)
    /// instead of TA-Lib's 0, so a flat market looks neutral to the network.
    pub stoch_k_neutral: Vec<f64>,
    pub stoch_d_neutral: Vec<f64>,
    pub willr_neutral: Vec<f64>,
}

impl Raw {
    pub fn columns(&self) -> [(&'static str, &[f64]); 16] {
        [
            (RAW_NAMES[0], &self.rsi),
            (RAW_NAMES[1], &self.macd),
            (RAW_NAMES[2], &self.macd_signal),
            (RAW_NAMES[3], &self.macd_hist),
            (RAW_NAMES[4], &self.adx),
            (RAW_NAMES[5], &self.plus_di),
            (RAW_NAMES[6], &self.minus_di),
            (RAW_NAMES[7], &self.stoch_k),
            (RAW_NAMES[8], &self.stoch_d),
            (RAW_NAMES[9], &self.atr),
            (RAW_NAMES[10], &self.bb_upper),
            (RAW_NAMES[11], &self.bb_middle),
            (RAW_NAMES[12], &self.bb_lower),
            (RAW_NAMES[13], &self.cci),
            (RAW_NAMES[14], &self.willr),
            (RAW_NAMES[15], &self.roc),
        ]
    }
}

pub fn compute(bars: &[Bar]) -> Raw {
    let h: Vec<f64> = bars.iter().map(|b| b.high).collect();
    let l: Vec<f64> = bars.iter().map(|b| b.low).collect();
    let c: Vec<f64> = bars.iter().map(|b| b.close).collect();
    let (rsi, rsi_norm) = rsi(&c, 14);
    let (macd, macd_signal, macd_hist) = macd(&c, 12, 26, 9);
    let (plus_di, minus_di, adx) = dmi(&h, &l, &c, 14);
    let hh = sliding_max(&h, 14);
    let ll = sliding_min(&l, 14);
    let (stoch_k, stoch_d) = stoch(&hh, &ll, &c, 14, 3, 0.0);
    let (stoch_k_neutral, stoch_d_neutral) = stoch(&hh, &ll, &c, 14, 3, 50.0);
    let (bb_upper, bb_middle, bb_lower) = bbands(&c, 20, 2.0);
    Raw {
        rsi,
        macd,
        macd_signal,
        macd_hist,
        adx,
        plus_di,
        minus_di,
        stoch_k,
        stoch_d,
        atr: atr(&h, &l, &c, 14),
        bb_upper,
        bb_middle,
        bb_lower,
        cci: cci(&h, &l, &c, 20),
        willr: willr(&hh, &ll, &c, 14, 0.0),
        willr_neutral: willr(&hh, &ll, &c, 14, -50.0),
        roc: roc(&c, 10),
        rsi_norm,
        stoch_k_neutral,
        stoch_d_neutral,
    }
}

/// Wilder's RSI: the first averages are simple means of the first `p` changes.
pub(crate) fn rsi(c: &[f64], p: usize) -> (Vec<f64>, Vec<f64>) {
    let n = c.len();
    let (mut out, mut norm) = (vec![NAN; n], vec![0.0; n]);
    if n <= p {
        return (out, norm);
    }
    let pf = p as f64;
    let (mut g, mut l) = (0.0, 0.0);
    let mut put = |t: usize, g: f64, l: f64| {
        let s = g + l;
        if is_zero(s) {
            out[t] = 0.0;
        } else {
            out[t] = 100.0 * (g / s);
            norm[t] = (out[t] - 50.0) / 50.0;
        }
    };
    for i in 1..=p {
        let d = c[i] - c[i - 1];
        if d < 0.0 {
            l -= d;
        } else {
            g += d;
        }
    }
    g /= pf;
    l /= pf;
    put(p, g, l);
    for i in p + 1..n {
        let d = c[i] - c[i - 1];
        g *= pf - 1.0;
        l *= pf - 1.0;
        if d < 0.0 {
            l -= d;
        } else {
            g += d;
        }
        g /= pf;
        l /= pf;
        put(i, g, l);
    }
    (out, norm)
}

fn true_range(h: f64, l: f64, prev_close: f64) -> f64 {
    (h - l)
        .max((h - prev_close).abs())
        .max((l - prev_close).abs())
}

/// ATR: the first value is the mean of the first `p` true ranges (bars 1..=p), then Wilder.
pub(crate) fn atr(h: &[f64], l: &[f64], c: &[f64], p: usize) -> Vec<f64> {
    let n = c.len();
    let mut out = vec![NAN; n];
    if n <= p {
        return out;
    }
    let pf = p as f64;
    let mut a = (1..=p)
        .map(|i| true_range(h[i], l[i], c[i - 1]))
        .sum::<f64>()
        / pf;
    out[p] = a;
    for i in p + 1..n {
        a = (a * (pf - 1.0) + true_range(h[i], l[i], c[i - 1])) / pf;
        out[i] = a;
    }
    out
}

/// +DI, -DI (from bar p) and ADX (from bar 2p - 1), with Wilder's running sums of DM and TR.
pub(crate) fn dmi(h: &[f64], l: &[f64], c: &[f64], p: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = c.len();
    let (mut pdi, mut mdi, mut adx) = (vec![NAN; n], vec![NAN; n], vec![NAN; n]);
    if n <= p {
        return (pdi, mdi, adx);
    }
    let pf = p as f64;
    let dm = |i: usize| {
        let up = h[i] - h[i - 1];
        let down = l[i - 1] - l[i];
        if down > 0.0 && up < down {
            (0.0, down)
        } else if up > 0.0 && up > down {
            (up, 0.0)
        } else {
            (0.0, 0.0)
        }
    };
    let (mut sp, mut sm, mut st) = (0.0, 0.0, 0.0);
    for i in 1..p {
        let (u, d) = dm(i);
        sp += u;
        sm += d;
        st += true_range(h[i], l[i], c[i - 1]);
    }
    let (mut sum_dx, mut prev_adx) = (0.0, 0.0);
    for i in p..n {
        let (u, d) = dm(i);
        sp = sp - sp / pf + u;
        sm = sm - sm / pf + d;
        st = st - st / pf + true_range(h[i], l[i], c[i - 1]);
        let mut dx = None;
        if is_zero(st) {
            pdi[i] = 0.0;
            mdi[i] = 0.0;
        } else {
            pdi[i] = 100.0 * (sp / st);
            mdi[i] = 100.0 * (sm / st);
            let s = pdi[i] + mdi[i];
            if !is_zero(s) {
                dx = Some(100.0 * ((mdi[i] - pdi[i]).abs() / s));
            }
        }
        if i < 2 * p - 1 {
            sum_dx += dx.unwrap_or(0.0);
        } else if i == 2 * p - 1 {
            prev_adx = (sum_dx + dx.unwrap_or(0.0)) / pf;
            adx[i] = prev_adx;
        } else {
            if let Some(dx) = dx {
                prev_adx = (prev_adx * (pf - 1.0) + dx) / pf;
            }
            adx[i] = prev_adx;
        }
    }
    (pdi, mdi, adx)
}

/// MACD with TA-Lib's alignment: both EMAs start at bar `slow - 1`, each seeded with the simple
/// mean of its own last `period` closes; the signal EMA is seeded with the mean of the first
/// `signal` MACD values. All three outputs start at bar `slow + signal - 2`.
pub(crate) fn macd(
    c: &[f64],
    fast: usize,
    slow: usize,
    signal: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = c.len();
    let (mut m, mut s, mut hst) = (vec![NAN; n], vec![NAN; n], vec![NAN; n]);
    let first = slow + signal - 2;
    if n <= first {
        return (m, s, hst);
    }
    let k = |p: usize| 2.0 / (p as f64 + 1.0);
    let (kf, ks, kg) = (k(fast), k(slow), k(signal));
    let start = slow - 1;
    let mut ef = c[start + 1 - fast..=start].iter().sum::<f64>() / fast as f64;
    let mut es = c[..=start].iter().sum::<f64>() / slow as f64;
    let mut line = vec![0.0; n];
    line[start] = ef - es;
    for i in start + 1..n {
        ef = (c[i] - ef) * kf + ef;
        es = (c[i] - es) * ks + es;
        line[i] = ef - es;
    }
    let mut sig = line[start..=first].iter().sum::<f64>() / signal as f64;
    for i in first..n {
        if i > first {
            sig = (line[i] - sig) * kg + sig;
        }
        m[i] = line[i];
        s[i] = sig;
        hst[i] = line[i] - sig;
    }
    (m, s, hst)
}

/// Slow stochastic: fast %K over `p` bars, %K = SMA(3) of fast %K, %D = SMA(3) of %K.
/// A window with no range gives `flat` (TA-Lib: 0).
pub(crate) fn stoch(
    hh: &[f64],
    ll: &[f64],
    c: &[f64],
    p: usize,
    ma: usize,
    flat: f64,
) -> (Vec<f64>, Vec<f64>) {
    let n = c.len();
    let (mut k, mut d) = (vec![NAN; n], vec![NAN; n]);
    let first = p - 1 + 2 * (ma - 1);
    if n <= first {
        return (k, d);
    }
    let fast: Vec<f64> = (0..n)
        .map(|i| {
            let diff = (hh[i] - ll[i]) / 100.0;
            if diff != 0.0 {
                (c[i] - ll[i]) / diff
            } else {
                flat
            }
        })
        .collect();
    let slow_k: Vec<f64> = sliding_sum(&fast, ma)
        .iter()
        .map(|s| s / ma as f64)
        .collect();
    let slow_d: Vec<f64> = sliding_sum(&slow_k, ma)
        .iter()
        .map(|s| s / ma as f64)
        .collect();
    k[first..].copy_from_slice(&slow_k[first..]);
    d[first..].copy_from_slice(&slow_d[first..]);
    (k, d)
}

/// Williams %R in [-100, 0]; a window with no range gives `flat` (TA-Lib: 0).
pub(crate) fn willr(hh: &[f64], ll: &[f64], c: &[f64], p: usize, flat: f64) -> Vec<f64> {
    (0..c.len())
        .map(|i| {
            if i + 1 < p {
                return NAN;
            }
            let diff = (hh[i] - ll[i]) / -100.0;
            if diff != 0.0 {
                (hh[i] - c[i]) / diff
            } else {
                flat
            }
        })
        .collect()
}

/// Bollinger bands around a simple mean, ± `k` population standard deviations.
pub(crate) fn bbands(c: &[f64], p: usize, k: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = c.len();
    let (mut up, mut mid, mut lo) = (vec![NAN; n], vec![NAN; n], vec![NAN; n]);
    let sq: Vec<f64> = c.iter().map(|x| x * x).collect();
    let (s1, s2) = (sliding_sum(c, p), sliding_sum(&sq, p));
    let pf = p as f64;
    for i in p.saturating_sub(1)..n {
        let m = s1[i] / pf;
        let var = s2[i] / pf - m * m;
        // Price variance below rounding noise of the mean square is a flat window.
        let sd = if var > 1e-12 * (s2[i] / pf) {
            var.sqrt()
        } else {
            0.0
        };
        mid[i] = m;
        up[i] = m + k * sd;
        lo[i] = m - k * sd;
    }
    (up, mid, lo)
}

/// Commodity Channel Index on the typical price with the mean absolute deviation.
pub(crate) fn cci(h: &[f64], l: &[f64], c: &[f64], p: usize) -> Vec<f64> {
    let n = c.len();
    let mut out = vec![NAN; n];
    let tp: Vec<f64> = (0..n).map(|i| (h[i] + l[i] + c[i]) / 3.0).collect();
    let pf = p as f64;
    for i in p.saturating_sub(1)..n {
        let w = &tp[i + 1 - p..=i];
        let avg = w.iter().sum::<f64>() / pf;
        let md = w.iter().map(|x| (x - avg).abs()).sum::<f64>();
        let num = tp[i] - avg;
        out[i] = if num != 0.0 && md != 0.0 {
            num / (0.015 * (md / pf))
        } else {
            0.0
        };
    }
    out
}

/// Rate of change in percent over `p` bars.
pub(crate) fn roc(c: &[f64], p: usize) -> Vec<f64> {
    (0..c.len())
        .map(|i| {
            if i < p {
                NAN
            } else if c[i - p] != 0.0 {
                (c[i] / c[i - p] - 1.0) * 100.0
            } else {
                0.0
            }
        })
        .collect()
}
