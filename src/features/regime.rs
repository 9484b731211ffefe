//! Markov regime probabilities (4 chains × 3 states) and reversal probabilities.
//!
//! Each chain is a 3-state hidden Markov model run as a forward filter over exactly the last
//! [`FILTER_LEN`] bars, starting from the chain's prior every time: a value depends on a fixed
//! trailing window (120 bars), never on state carried across calls, so a live recomputation equals
//! the training value and a restarted process does not fall back to uniform probabilities (the
//! seed's stateful builder did). Observations are standardized by the volatility of the 100
//! returns before the bar, so the models are scale-free:
//! - vol (low / med / high): the return z ~ N(0, s²) with s = 0.6, 1, 1.7; prior [.2, .6, .2].
//! - trend (down / neutral / up): z ~ N(μ, 1), μ = -0.3, 0, 0.3; the predicted trend mixes in
//!   the macro chain with weight 0.30 (bull → up, bear → down), the seed's coupling.
//! - momentum (falling / flat / rising): acceleration, the last 5-bar move minus the 5 before,
//!   in σ√10 units, ~ N(μ, 1), μ = -0.5, 0, 0.5.
//! - macro (bull / side / bear): the 100-bar move in σ√100 units, ~ N(μ, 1), μ = 0.5, 0, -0.5.
//!
//! Transitions keep a state with probability `stay` and move to either other state equally.

use super::series::Series;

/// Bars each forward filter runs over (the seed uses the last 20 returns).
pub const FILTER_LEN: usize = 20;
/// First bar with all regime inputs: the filter's first bar needs 100 returns before it.
pub const FIRST: usize = FILTER_LEN + 100;
const COUPLING: f64 = 0.30;
const CLIP: f64 = 8.0;

struct Chain {
    stay: f64,
    prior: [f64; 3],
}

const VOL: Chain = Chain {
    stay: 0.9,
    prior: [0.2, 0.6, 0.2],
};
const TREND: Chain = Chain {
    stay: 0.9,
    prior: [1.0 / 3.0; 3],
};
const MOM: Chain = Chain {
    stay: 0.8,
    prior: [1.0 / 3.0; 3],
};
const MACRO: Chain = Chain {
    stay: 0.95,
    prior: [1.0 / 3.0; 3],
};
const VOL_SCALE: [f64; 3] = [0.6, 1.0, 1.7];

impl Chain {
    /// One filter step on unnormalized weights: predict (stay, or move to either other state),
    /// then weight by the emission. Relative likelihoods are bounded (the middle state's is 1 and
    /// z is clipped), so 20 steps neither overflow nor underflow and one normalization at the
    /// end suffices.
    fn step(&self, p: &[f64; 3], e: &[f64; 3]) -> [f64; 3] {
        let (a, b) = (1.5 * self.stay - 0.5, (1.0 - self.stay) / 2.0);
        let bs = b * (p[0] + p[1] + p[2]);
        [
            (a * p[0] + bs) * e[0],
            (a * p[1] + bs) * e[1],
            (a * p[2] + bs) * e[2],
        ]
    }
}

fn normalized(q: [f64; 3]) -> [f64; 3] {
    let s = q[0] + q[1] + q[2];
    if s > 0.0 && s.is_finite() {
        let r = 1.0 / s;
        [q[0] * r, q[1] * r, q[2] * r]
    } else {
        [1.0 / 3.0; 3]
    }
}

/// Emission likelihoods (relative to the middle state) for the 4 chains at each bar.
fn emissions(s: &Series, from: usize) -> Vec<[[f64; 3]; 4]> {
    let n = s.close.len();
    let mut out = vec![[[1.0; 3]; 4]; n];
    let start = from.saturating_sub(FILTER_LEN - 1).max(101);
    for (t, e) in out.iter_mut().enumerate().skip(start) {
        let sigma = s.sd100[t - 1];
        if sigma <= 0.0 {
            continue;
        }
        let z = (s.lr[t] / sigma).clamp(-CLIP, CLIP);
        let a = ((s.log_change(t, 5) - s.log_change(t - 5, 5)) / (sigma * 10f64.sqrt()))
            .clamp(-CLIP, CLIP);
        let m = (s.log_change(t, 100) / (sigma * 10.0)).clamp(-CLIP, CLIP);
        let z2 = z * z / 2.0;
        e[0] = [
            (-z2 * (1.0 / (VOL_SCALE[0] * VOL_SCALE[0]) - 1.0)).exp() / VOL_SCALE[0],
            1.0,
            (-z2 * (1.0 / (VOL_SCALE[2] * VOL_SCALE[2]) - 1.0)).exp() / VOL_SCALE[2],
        ];
        let gauss = |x: f64, mu: f64| {
            let up = (mu * x).exp();
            let k = (-mu * mu / 2.0).exp();
            [k / up, 1.0, k * up]
        };
        e[1] = gauss(z, 0.3);
        e[2] = gauss(a, 0.5);
        let g = gauss(m, 0.5);
        e[3] = [g[2], 1.0, g[0]];
    }
    out
}

/// Markov block (12 columns from `col`) then reversal block (3 columns from `rev_col`):
/// bullish = P(trend down) × P(momentum rising), bearish = P(trend up) × P(momentum falling),
/// none = the rest.
pub fn fill(s: &Series, out: &mut [f32], nf: usize, col: usize, rev_col: usize, from: usize) {
    let n = s.close.len();
    let from = from.max(FIRST);
    if from >= n {
        return;
    }
    let em = emissions(s, from);
    for t in from..n {
        let (mut v, mut tr, mut mo, mut ma) = (VOL.prior, TREND.prior, MOM.prior, MACRO.prior);
        for e in &em[t + 1 - FILTER_LEN..=t] {
            v = VOL.step(&v, &e[0]);
            // Trend's prediction blends in the macro posterior (bear → down, bull → up): with
            // the trend weights unnormalized, the macro share is scaled by their sum.
            let m = normalized(ma);
            let p = TREND.step(&tr, &[1.0; 3]);
            let sp = COUPLING * (tr[0] + tr[1] + tr[2]);
            tr = [
                ((1.0 - COUPLING) * p[0] + sp * m[2]) * e[1][0],
                ((1.0 - COUPLING) * p[1] + sp * m[1]) * e[1][1],
                ((1.0 - COUPLING) * p[2] + sp * m[0]) * e[1][2],
            ];
            mo = MOM.step(&mo, &e[2]);
            ma = MACRO.step(&m, &e[3]);
        }
        let (v, tr, mo, ma) = (
            normalized(v),
            normalized(tr),
            normalized(mo),
            normalized(ma),
        );
        let row = &mut out[t * nf + col..t * nf + col + 12];
        for (k, p) in [v, tr, mo, ma].iter().enumerate() {
            for j in 0..3 {
                row[3 * k + j] = p[j] as f32;
            }
        }
        let bull = tr[0] * mo[2];
        let bear = tr[2] * mo[0];
        let rev = &mut out[t * nf + rev_col..t * nf + rev_col + 3];
        rev[0] = bull as f32;
        rev[1] = bear as f32;
        rev[2] = (1.0 - bull - bear).max(0.0) as f32;
    }
}
