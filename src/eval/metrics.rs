use serde::{Deserialize, Serialize};

/// Seed v2.4.5: fitness = Sharpe × max(0, 1 − 0.2 × MaxDD).
pub const FITNESS_DD_WEIGHT: f64 = 0.2;
/// Profit factor reported when there are wins and no losses (keeps JSON finite).
pub const PF_CAP: f64 = 99.0;

/// Metrics of one policy evaluation over a bar range.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationMetrics {
    pub update: usize,
    pub profit_factor: f64,
    pub sharpe: f64,
    pub max_drawdown: f64,
    pub fitness: f64,
    pub consistency: f64,
    pub total_return: f64,
    pub hold_pct: f64,
    pub trades: usize,
}

/// Annualised Sharpe of per-bar returns (0 for a flat series).
pub fn sharpe(returns: &[f64], bars_per_year: f64) -> f64 {
    let n = returns.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean = returns.iter().sum::<f64>() / n;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
    if var <= 1e-18 {
        0.0
    } else {
        mean / var.sqrt() * bars_per_year.sqrt()
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
    let win: f64 = trades.iter().filter(|p| **p > 0.0).sum();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked_values() {
        assert!((max_drawdown(&[100.0, 120.0, 90.0, 130.0, 117.0]) - 0.25).abs() < 1e-12);
        assert_eq!(profit_factor(&[10.0, -5.0, 5.0]), 3.0);
        assert_eq!(profit_factor(&[1.0]), PF_CAP);
        assert_eq!(profit_factor(&[]), 0.0);
        assert_eq!(win_rate(&[1.0, -1.0, 2.0, 0.0]), 0.5);
        assert_eq!(sharpe(&[0.01; 10], 252.0), 0.0);
        let s = sharpe(&[0.01, -0.01, 0.02, 0.0], 4.0);
        let sd = (0.000_166_666_666_666_666_67f64).sqrt();
        assert!((s - 0.005 / sd * 2.0).abs() < 1e-9, "{s}");
        assert!((fitness(2.0, 0.5) - 1.8).abs() < 1e-12);
        assert_eq!(consistency(&[1.0, 2.0, 1.5, 3.0, 2.0], 4), 0.5);
    }
}
