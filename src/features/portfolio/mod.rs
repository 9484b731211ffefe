//! Portfolio features: the four factor scores per symbol and bar ([`FactorTable`]), and the
//! per-step observation rows built from them ([`PortfolioFeatures`], layout in
//! [`PortfolioSpec`]). Like the single-symbol pipeline, every value is a pure function of a
//! bounded trailing window (the factor lookback), so the paper trader recomputes exactly what
//! training saw.
//!
//! Per symbol per step, all scale-free (a price level or a currency never enters):
//! - `ret_z`: the bar's return over the symbol's lookback volatility, clamped to ±5;
//! - `momentum_z`, `low_vol_z`, `quality_z`, `size_z`: cross-sectional z-scores (over the symbols
//!   with scores at that bar; population standard deviation; 0 when it is 0; clamped to ±5) of
//!   momentum, −ln volatility, quality and −ln price (the logs tame the 1/x scores' skew; the
//!   ranks are the same);
//! - `available`: 1 when the symbol has scores at that bar, else 0 — and then all its features
//!   are 0.
//!
//! Per step: `market.ret_z` (mean `ret_z`), `market.breadth` (2 × share with positive momentum
//! − 1) and `market.vol` (mean volatility annualised with the calendar's bars per year), over the
//! symbols with scores; all 0 when none has.

mod factors;
mod spec;

pub use factors::{Factor, FactorScores, FactorTable, VOL_FLOOR};
pub use spec::{PortfolioSpec, ACCOUNT_TAIL, MARKET_FEATURES, PORTFOLIO_VERSION, SYMBOL_FEATURES};

use crate::data::Panel;
use anyhow::{bail, Result};

/// Clamp of every z-score feature.
const Z_CLIP: f64 = 5.0;

/// Observation rows for a panel: `values[t * step_dim + k]`, plus the factor table they come
/// from (the trading rules rank by the same scores).
#[derive(Debug, Clone, PartialEq)]
pub struct PortfolioFeatures {
    pub step_dim: usize,
    pub n_bars: usize,
    pub values: Vec<f32>,
    pub factors: FactorTable,
}

impl PortfolioFeatures {
    pub fn row(&self, t: usize) -> &[f32] {
        &self.values[t * self.step_dim..(t + 1) * self.step_dim]
    }
}

/// Computes the spec's rows over `panel`, whose universe and timeframe must be the spec's.
pub fn compute(spec: &PortfolioSpec, panel: &Panel) -> Result<PortfolioFeatures> {
    let names: Vec<&str> = panel.symbols.iter().map(|s| s.name.as_str()).collect();
    if names != spec.symbols || panel.timeframe != spec.timeframe {
        bail!(
            "the panel ({} bars of [{}]) is not the layout's universe ({} bars of [{}])",
            panel.timeframe,
            names.join(","),
            spec.timeframe,
            spec.symbols.join(",")
        );
    }
    let factors = FactorTable::compute(panel, spec.lookback);
    let (n, m) = (panel.n_bars(), panel.n_symbols());
    let nf = spec.symbol_features.len();
    let step_dim = spec.step_dim();
    let per_year = panel.timeframe.bars_per_year(panel.class).sqrt();
    let mut values = vec![0.0f32; n * step_dim];
    let mut cols: [Vec<f64>; 5] = Default::default();
    for t in 0..n {
        let row = &mut values[t * step_dim..(t + 1) * step_dim];
        let scored: Vec<(usize, FactorScores, f64)> = (0..m)
            .filter_map(|i| {
                let s = factors.scores[t * m + i]?;
                Some((i, s, factors.returns[t * m + i]?))
            })
            .collect();
        if scored.is_empty() {
            continue;
        }
        for c in cols.iter_mut() {
            c.clear();
        }
        for (_, s, r) in &scored {
            cols[0].push(clip(r / s.volatility.max(VOL_FLOOR)));
            cols[1].push(s.momentum);
            cols[2].push(-s.volatility.max(VOL_FLOOR).ln());
            cols[3].push(s.quality);
            cols[4].push(s.size.ln());
        }
        for c in cols[1..].iter_mut() {
            zscore(c);
        }
        for (k, (i, _, _)) in scored.iter().enumerate() {
            let at = i * nf;
            for (f, col) in cols.iter().enumerate() {
                row[at + f] = col[k] as f32;
            }
            row[at + 5] = 1.0;
        }
        let count = scored.len() as f64;
        let market = m * nf;
        row[market] = (cols[0].iter().sum::<f64>() / count) as f32;
        let up = scored.iter().filter(|x| x.1.momentum > 0.0).count() as f64;
        row[market + 1] = (2.0 * up / count - 1.0) as f32;
        let vol = scored.iter().map(|x| x.1.volatility).sum::<f64>() / count;
        row[market + 2] = (vol * per_year).min(Z_CLIP) as f32;
    }
    Ok(PortfolioFeatures {
        step_dim,
        n_bars: n,
        values,
        factors,
    })
}

fn clip(x: f64) -> f64 {
    if x.is_finite() {
        x.clamp(-Z_CLIP, Z_CLIP)
    } else {
        0.0
    }
}

/// In place: (x − mean) / population std, clamped; all 0 when the std is (nearly) 0.
fn zscore(xs: &mut [f64]) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    for x in xs.iter_mut() {
        *x = if sd > 1e-12 {
            clip((*x - mean) / sd)
        } else {
            0.0
        };
    }
}

/// Writes the observation for a decision executed at bar `t_exec` into `out`: rows
/// `t_exec − window ..= t_exec − 1` flattened oldest first (observations end at T−1), then
/// `tail` (the account, see [`PortfolioSpec`]). `t_exec` must be at least
/// [`PortfolioSpec::first_exec_bar`] and at most the panel's length.
pub fn observation(
    spec: &PortfolioSpec,
    pf: &PortfolioFeatures,
    t_exec: usize,
    tail: &[f32],
    out: &mut Vec<f32>,
) {
    out.clear();
    let from = (t_exec - spec.window) * pf.step_dim;
    out.extend_from_slice(&pf.values[from..t_exec * pf.step_dim]);
    out.extend_from_slice(tail);
}

#[cfg(test)]
mod tests;
