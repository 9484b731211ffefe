//! The 12 factor regimes (seed 002 §12): each maps the factor scores of the symbols eligible at
//! a bar to target weights over those symbols and CASH, the same 12 for 3 symbols or 300.
//!
//! With `E` the eligible symbols (tradable at the bar, with factor scores at the bar before),
//! `n = |E|`, `EW` equal weight 1/n over `E`, and `top(f, k)` equal weight 1/k over the `k`
//! symbols of `E` with the highest score `f` (ties: the earlier symbol in the universe):
//!
//! | # | regime        | target                                                    |
//! |---|---------------|-----------------------------------------------------------|
//! | 0 | HOLD          | no trade: the current holdings stay                       |
//! | 1 | FULL_CASH     | 100 % cash                                                |
//! | 2 | DEFENSIVE     | 50 % cash + 50 % · EW                                     |
//! | 3 | LIGHT_CASH    | 25 % cash + 75 % · EW                                     |
//! | 4 | EQUAL_WEIGHT  | EW                                                        |
//! | 5 | MOMENTUM      | top(momentum, ⌈n/2⌉)                                      |
//! | 6 | LOW_VOL       | top(low_vol, ⌈n/2⌉): the calmer half                      |
//! | 7 | QUALITY       | top(quality, ⌈n/2⌉)                                       |
//! | 8 | SIZE_SMALL    | proportional to size = 1/price over `E`                   |
//! | 9 | SAFE_MOMENTUM | 30 % cash + 70 % · MOMENTUM                               |
//! |10 | SAFE_QUALITY  | 30 % cash + 70 % · QUALITY                                |
//! |11 | RISK_ON       | top(momentum, ⌈0.3 · n⌉): concentrated momentum, no cash  |
//!
//! With no eligible symbol every regime but HOLD is 100 % cash.

use crate::features::portfolio::{Factor, FactorScores};
use serde::{Deserialize, Serialize};

pub const N_REGIMES: usize = 12;

pub const REGIME_NAMES: [&str; N_REGIMES] = [
    "HOLD",
    "FULL_CASH",
    "DEFENSIVE",
    "LIGHT_CASH",
    "EQUAL_WEIGHT",
    "MOMENTUM",
    "LOW_VOL",
    "QUALITY",
    "SIZE_SMALL",
    "SAFE_MOMENTUM",
    "SAFE_QUALITY",
    "RISK_ON",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Regime {
    Hold,
    FullCash,
    Defensive,
    LightCash,
    EqualWeight,
    Momentum,
    LowVol,
    Quality,
    SizeSmall,
    SafeMomentum,
    SafeQuality,
    RiskOn,
}

impl Regime {
    /// In action-index order.
    pub const ALL: [Regime; N_REGIMES] = [
        Regime::Hold,
        Regime::FullCash,
        Regime::Defensive,
        Regime::LightCash,
        Regime::EqualWeight,
        Regime::Momentum,
        Regime::LowVol,
        Regime::Quality,
        Regime::SizeSmall,
        Regime::SafeMomentum,
        Regime::SafeQuality,
        Regime::RiskOn,
    ];

    /// The regime of a policy's action index, if it is one.
    pub fn from_index(i: usize) -> Option<Regime> {
        Self::ALL.get(i).copied()
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        REGIME_NAMES[self.index()]
    }
}

/// Target weights: `symbols[i]` is symbol `i`'s share of the tradable portfolio value, `cash`
/// the rest. Non-negative, summing to 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    pub symbols: Vec<f64>,
    pub cash: f64,
}

impl Weights {
    pub fn all_cash(n: usize) -> Self {
        Weights {
            symbols: vec![0.0; n],
            cash: 1.0,
        }
    }
}

/// The regime's target weights at a bar; `None` for HOLD (nothing trades). `scores[i]` are
/// symbol `i`'s scores (used only where `eligible[i]`, and then present).
pub fn target_weights(
    regime: Regime,
    scores: &[Option<FactorScores>],
    eligible: &[bool],
) -> Option<Weights> {
    let n_all = scores.len();
    let elig: Vec<(usize, FactorScores)> = (0..n_all)
        .filter(|&i| eligible[i])
        .filter_map(|i| Some((i, scores[i]?)))
        .collect();
    let n = elig.len();
    if regime == Regime::Hold {
        return None;
    }
    if n == 0 {
        return Some(Weights::all_cash(n_all));
    }
    let ew = |invested: f64| {
        let mut w = Weights::all_cash(n_all);
        for (i, _) in &elig {
            w.symbols[*i] = invested / n as f64;
        }
        w.cash = 1.0 - invested;
        w
    };
    let top = |f: Factor, k: usize, invested: f64| {
        let mut ranked = elig.clone();
        // Highest score first; the stable sort keeps universe order among ties.
        ranked.sort_by(|a, b| b.1.get(f).total_cmp(&a.1.get(f)));
        let mut w = Weights::all_cash(n_all);
        for (i, _) in ranked.iter().take(k) {
            w.symbols[*i] = invested / k as f64;
        }
        w.cash = 1.0 - invested;
        w
    };
    let half = n.div_ceil(2);
    Some(match regime {
        Regime::Hold => return None,
        Regime::FullCash => Weights::all_cash(n_all),
        Regime::Defensive => ew(0.5),
        Regime::LightCash => ew(0.75),
        Regime::EqualWeight => ew(1.0),
        Regime::Momentum => top(Factor::Momentum, half, 1.0),
        Regime::LowVol => top(Factor::LowVol, half, 1.0),
        Regime::Quality => top(Factor::Quality, half, 1.0),
        Regime::SizeSmall => {
            let total: f64 = elig.iter().map(|(_, s)| s.size).sum();
            let mut w = Weights::all_cash(n_all);
            for (i, s) in &elig {
                w.symbols[*i] = s.size / total;
            }
            w.cash = 0.0;
            w
        }
        Regime::SafeMomentum => top(Factor::Momentum, half, 0.7),
        Regime::SafeQuality => top(Factor::Quality, half, 0.7),
        Regime::RiskOn => top(Factor::Momentum, (3 * n).div_ceil(10), 1.0),
    })
}
