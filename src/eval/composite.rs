//! The composite model score (seed 002 §7): one number for a model's overall health, combining
//! trading results with the RL diagnostics of its training.
//!
//! Each term is first mapped to a bounded scale, then weighted; the total is on a ±100 scale
//! (−90 … +90 in practice; the seed colours it green above +20 and red below 0):
//!
//! | term          | weight | normalised as                                               |
//! |---------------|--------|-------------------------------------------------------------|
//! | profitability |  +40 % | tanh(mean return × win rate / `profit_ref`), in (−1, 1)     |
//! | reward        |  +20 % | tanh(mean reward per step / `reward_ref`), in (−1, 1)       |
//! | value         |  +20 % | explained variance clamped to [−1, 1]                       |
//! | exploration   |  +10 % | policy entropy / ln(number of actions), in [0, 1]           |
//! | instability   |  −10 % | ½ · KL / `kl_ref` + ½ · clip fraction / `clip_ref`, [0, 1] |
//!
//! A non-finite input counts as its term's worst value (a NaN explained variance is −1, a NaN
//! KL full instability), so a broken run can never score well.

use serde::{Deserialize, Serialize};

/// Term weights, in the table's order (instability is subtracted).
pub const WEIGHTS: [f64; 5] = [0.40, 0.20, 0.20, 0.10, 0.10];

/// What the score reads: an evaluation's trading figures and the training's diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompositeInputs {
    /// Return over the evaluation (0.05 = +5 %).
    pub mean_return: f64,
    /// Share of winning periods (or trades), in [0, 1].
    pub win_rate: f64,
    /// Mean reward per step, in the env's reward units.
    pub mean_reward: f64,
    pub explained_variance: f64,
    /// Mean policy entropy (nats).
    pub entropy: f64,
    pub n_actions: usize,
    /// Approximate KL divergence of the last update.
    pub approx_kl: f64,
    /// Share of samples whose ratio was clipped.
    pub clip_fraction: f64,
}

/// The references that map raw figures onto the terms' scales.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreScales {
    /// Return × win rate giving tanh(1) ≈ 0.76 (default 0.05: +10 % at a 50 % win rate).
    pub profit_ref: f64,
    /// Mean reward per step giving tanh(1) (default 0.05: 0.05 % a day at reward scale 100).
    pub reward_ref: f64,
    /// KL at which that half of the penalty is full (default 0.02, a usual PPO target).
    pub kl_ref: f64,
    /// Clip fraction at which that half is full (default 0.2).
    pub clip_ref: f64,
}

impl Default for ScoreScales {
    fn default() -> Self {
        ScoreScales {
            profit_ref: 0.05,
            reward_ref: 0.05,
            kl_ref: 0.02,
            clip_ref: 0.2,
        }
    }
}

/// The score and its normalised terms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompositeScore {
    pub total: f64,
    pub profitability: f64,
    pub reward: f64,
    pub value: f64,
    pub exploration: f64,
    pub instability: f64,
}

fn finite_or(x: f64, worst: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        worst
    }
}

/// The composite score of `x` under `scales` (see the module docs).
pub fn composite_score(x: &CompositeInputs, scales: &ScoreScales) -> CompositeScore {
    let profit = finite_or(x.mean_return * x.win_rate.clamp(0.0, 1.0), -f64::MAX);
    let profitability = (profit / scales.profit_ref).tanh();
    let reward = (finite_or(x.mean_reward, -f64::MAX) / scales.reward_ref).tanh();
    let value = finite_or(x.explained_variance, -1.0).clamp(-1.0, 1.0);
    let exploration = if x.n_actions >= 2 {
        (finite_or(x.entropy, 0.0) / (x.n_actions as f64).ln()).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let instability = (0.5 * finite_or(x.approx_kl, f64::MAX).abs() / scales.kl_ref
        + 0.5 * finite_or(x.clip_fraction, f64::MAX).abs() / scales.clip_ref)
        .clamp(0.0, 1.0);
    let [wp, wr, wv, wx, wi] = WEIGHTS;
    CompositeScore {
        total: 100.0
            * (wp * profitability + wr * reward + wv * value + wx * exploration - wi * instability),
        profitability,
        reward,
        value,
        exploration,
        instability,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> CompositeInputs {
        CompositeInputs {
            mean_return: 0.05,
            win_rate: 1.0,
            mean_reward: 0.05,
            explained_variance: 0.5,
            entropy: 12f64.ln() / 2.0,
            n_actions: 12,
            approx_kl: 0.02,
            clip_fraction: 0.1,
        }
    }

    #[test]
    fn known_value() {
        // Profitability and reward tanh(1) = 0.761594; value 0.5; exploration 0.5;
        // instability ½ · 1 + ½ · 0.5 = 0.75:
        // 100 · (0.4 · 0.761594 + 0.2 · 0.761594 + 0.2 · 0.5 + 0.1 · 0.5 − 0.1 · 0.75) = 53.1956.
        let s = composite_score(&inputs(), &ScoreScales::default());
        assert!((s.profitability - 0.761_594_155_955_764_9).abs() < 1e-12);
        assert_eq!((s.value, s.exploration), (0.5, 0.5));
        assert!((s.instability - 0.75).abs() < 1e-12);
        assert!((s.total - 53.195_649_357_345_9).abs() < 1e-9, "{}", s.total);
    }

    #[test]
    fn bounds_and_broken_runs() {
        let best = CompositeInputs {
            mean_return: 10.0,
            win_rate: 1.0,
            mean_reward: 10.0,
            explained_variance: 3.0,
            entropy: 100.0,
            n_actions: 12,
            approx_kl: 0.0,
            clip_fraction: 0.0,
        };
        let s = composite_score(&best, &ScoreScales::default());
        assert!(s.total > 89.99 && s.total <= 90.0, "{}", s.total);
        let worst = CompositeInputs {
            mean_return: -10.0,
            mean_reward: -10.0,
            explained_variance: -50.0,
            entropy: 0.0,
            approx_kl: 1.0,
            clip_fraction: 1.0,
            ..best
        };
        let s = composite_score(&worst, &ScoreScales::default());
        assert!(s.total < -89.99 && s.total >= -90.0, "{}", s.total);
        let broken = CompositeInputs {
            explained_variance: f64::NAN,
            approx_kl: f64::NAN,
            mean_reward: f64::INFINITY,
            ..inputs()
        };
        let s = composite_score(&broken, &ScoreScales::default());
        // Non-finite inputs score as their term's worst: an infinite reward is a broken run.
        assert_eq!((s.value, s.instability, s.reward), (-1.0, 1.0, -1.0));
        // A losing model loses profitability however often it wins.
        let losing = CompositeInputs {
            mean_return: -0.05,
            ..inputs()
        };
        assert!(composite_score(&losing, &ScoreScales::default()).profitability < -0.7);
    }
}
