//! The seed's v4.1 curriculum reward (seed-system.md §2), one step at a time in f64: eight
//! components, each a function of what the step did, weighted by training progress. The tensor
//! env (`engine::env_reward`) computes the same per env; a parity test holds them equal.
//!
//! Where the seed notes give no formula (NF), the choice made here:
//! - **direction**: ±1 when the position held over the bar is on the right (+) or wrong (−) side
//!   of a move larger than 0.2 % (the v4.1 threshold); 0 when flat or the move is smaller.
//! - **magnitude**: the same sign times the move's size in percent, capped at 1.
//! - **pnl**: clip(100 × step return, ±2) (the seed's formula).
//! - **stop_tp**: +1 when a position is reduced or closed at or beyond take-profit; −1 for each
//!   step a position is held past its stop-loss (measured at the bar's close); 0 otherwise. The
//!   thresholds are the backtest's (`backtest.stop_loss`, `backtest.take_profit`).
//! - **explore**: 0.05 × uncertainty, the policy's normalised entropy H / ln A at that step.
//! - **slippage**: −20 × the step's trading cost as a share of equity, capped at −1.
//! - **drawdown**: −10 × max(0, drawdown − 0.15)² (the seed's formula; fixed threshold).
//! - **dsr**: the differential Sharpe ratio of the step return (η = 0.01), × 5 and clipped ±1
//!   (v4.1); 0 while the running variance is below 1e-12 (returns in percent).
//!
//! The reward horizon is one bar (the seed's "about 5 bars" has no formula); risk_adj is 1.

use serde::{Deserialize, Serialize};

/// The components, in the order of every weight and value array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardComponent {
    Direction,
    Magnitude,
    Pnl,
    StopTp,
    Explore,
    Slippage,
    Drawdown,
    Dsr,
}

pub const N_COMPONENTS: usize = 8;

impl RewardComponent {
    pub const ALL: [RewardComponent; N_COMPONENTS] = [
        RewardComponent::Direction,
        RewardComponent::Magnitude,
        RewardComponent::Pnl,
        RewardComponent::StopTp,
        RewardComponent::Explore,
        RewardComponent::Slippage,
        RewardComponent::Drawdown,
        RewardComponent::Dsr,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RewardComponent::Direction => "direction",
            RewardComponent::Magnitude => "magnitude",
            RewardComponent::Pnl => "pnl",
            RewardComponent::StopTp => "stop_tp",
            RewardComponent::Explore => "explore",
            RewardComponent::Slippage => "slippage",
            RewardComponent::Drawdown => "drawdown",
            RewardComponent::Dsr => "dsr",
        }
    }
}

/// One component's statistics over an update: the mean of its weighted value per env-step, and
/// its share of the total absolute weighted reward (Σ|wᵢ·cᵢ| over components and steps).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RewardPart {
    pub component: RewardComponent,
    pub mean: f64,
    pub share: f64,
}

/// The constants of the components (see the module comment for each).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeedParams {
    pub direction_threshold: f64,
    pub stop_loss: f64,
    pub take_profit: f64,
    pub explore_scale: f64,
    pub slippage_penalty: f64,
    pub drawdown_threshold: f64,
    pub drawdown_penalty: f64,
    pub dsr_eta: f64,
    pub dsr_scale: f64,
}

impl SeedParams {
    /// The seed's values, with stop-loss and take-profit from the backtest rules.
    pub fn new(stop_loss: f64, take_profit: f64) -> Self {
        SeedParams {
            direction_threshold: 0.002,
            stop_loss,
            take_profit,
            explore_scale: 0.05,
            slippage_penalty: 20.0,
            drawdown_threshold: 0.15,
            drawdown_penalty: 10.0,
            dsr_eta: 0.01,
            dsr_scale: 5.0,
        }
    }
}

/// The v4.1 curriculum's weights at progress `p` ∈ [0, 1] (the share of training done),
/// normalised to sum to 1.
pub fn curriculum_weights(p: f64) -> [f64; N_COMPONENTS] {
    let p = p.clamp(0.0, 1.0);
    let w = [
        (0.35 * (1.0 - p)).max(0.10),
        0.05,
        (0.15 + 0.55 * p).min(0.60),
        0.10,
        (0.12 * (1.0 - p)).max(0.02),
        0.06,
        (0.03 + 0.12 * p).min(0.15),
        (0.10 * (1.0 - 0.7 * p)).max(0.03),
    ];
    let sum: f64 = w.iter().sum();
    w.map(|x| x / sum)
}

/// The differential Sharpe ratio's running moments (Moody & Saffell): one per episode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DsrState {
    pub a: f64,
    pub b: f64,
}

/// Below this running variance (returns in percent, squared) the ratio is taken as 0.
pub const DSR_MIN_VARIANCE: f64 = 1e-12;

impl DsrState {
    /// Takes the step's return `r` (a fraction), returns the unscaled differential Sharpe ratio
    /// (B·ΔA − ½A·ΔB) / (B − A²)^1.5 from the moments before the step, and moves the moments.
    /// Returns are taken in percent: the ratio does not depend on their scale, and f32 tensors
    /// keep more of the variance that way.
    pub fn step(&mut self, r: f64, eta: f64) -> f64 {
        let r = 100.0 * r;
        let (a, b) = (self.a, self.b);
        let (da, db) = (r - a, r * r - b);
        let var = b - a * a;
        let dsr = if var > DSR_MIN_VARIANCE {
            (b * da - 0.5 * a * db) / (var * var.sqrt())
        } else {
            0.0
        };
        self.a = a + eta * da;
        self.b = b + eta * db;
        dsr
    }
}

/// What one env step did: the inputs of the components.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Position level held over the bar (after the action).
    pub level: f64,
    /// The bar's move: next close / close − 1.
    pub price_return: f64,
    /// Equity change as a share of equity before the step.
    pub pnl: f64,
    /// Trading cost of the step (slippage and commission) as a share of equity before it.
    pub cost: f64,
    /// The open position's return at the close where it was reduced, closed or flipped this
    /// step (signed for shorts); None when no position was reduced.
    pub exit_return: Option<f64>,
    /// The open position's return at the next close (0 when flat).
    pub open_return: f64,
    /// Drawdown from the account's peak after the step.
    pub drawdown: f64,
}

/// The eight unweighted component values of one step; `dsr` moves its moments.
pub fn components(
    o: &StepOutcome,
    uncertainty: f64,
    dsr: &mut DsrState,
    prm: &SeedParams,
) -> [f64; N_COMPONENTS] {
    let moved = o.level != 0.0 && o.price_return.abs() > prm.direction_threshold;
    let side = if moved {
        o.level.signum() * o.price_return.signum()
    } else {
        0.0
    };
    let magnitude = side * (100.0 * o.price_return.abs()).min(1.0);
    let pnl = (100.0 * o.pnl).clamp(-2.0, 2.0);
    let took_profit = o.exit_return.is_some_and(|r| r >= prm.take_profit);
    let past_stop = o.level != 0.0 && o.open_return <= -prm.stop_loss;
    let stop_tp = if took_profit {
        1.0
    } else if past_stop {
        -1.0
    } else {
        0.0
    };
    let explore = prm.explore_scale * uncertainty;
    let slippage = -(prm.slippage_penalty * o.cost).min(1.0);
    let excess = (o.drawdown - prm.drawdown_threshold).max(0.0);
    let drawdown = -prm.drawdown_penalty * excess * excess;
    let dsr = (prm.dsr_scale * dsr.step(o.pnl, prm.dsr_eta)).clamp(-1.0, 1.0);
    [
        side, magnitude, pnl, stop_tp, explore, slippage, drawdown, dsr,
    ]
}

/// Σ wᵢ·cᵢ.
pub fn weighted_sum(weights: &[f64; N_COMPONENTS], values: &[f64; N_COMPONENTS]) -> f64 {
    weights.iter().zip(values).map(|(w, c)| w * c).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> StepOutcome {
        StepOutcome {
            level: 0.5,
            price_return: 0.004,
            pnl: 0.0002,
            cost: 0.0,
            exit_return: None,
            open_return: 0.01,
            drawdown: 0.0,
        }
    }

    fn prm() -> SeedParams {
        SeedParams::new(0.02, 0.04)
    }

    #[test]
    fn weights_follow_the_v41_curriculum_and_sum_to_one() {
        // p = 0: .35 .05 .15 .10 .12 .06 .03 .10, sum .96.
        let w0 = curriculum_weights(0.0);
        let raw0 = [0.35, 0.05, 0.15, 0.10, 0.12, 0.06, 0.03, 0.10];
        for (w, r) in w0.iter().zip(raw0) {
            assert!((w - r / 0.96).abs() < 1e-12, "{w} vs {}", r / 0.96);
        }
        // p = 1: .10 .05 .60 .10 .02 .06 .15 .03, sum 1.11.
        let w1 = curriculum_weights(1.0);
        let raw1 = [0.10, 0.05, 0.60, 0.10, 0.02, 0.06, 0.15, 0.03];
        for (w, r) in w1.iter().zip(raw1) {
            assert!((w - r / 1.11).abs() < 1e-12);
        }
        // p = 0.5: direction .175, pnl .425, explore .06, drawdown .09, dsr .065.
        let w = curriculum_weights(0.5);
        let raw = [0.175, 0.05, 0.425, 0.10, 0.06, 0.06, 0.09, 0.065];
        let sum: f64 = raw.iter().sum();
        for (x, r) in w.iter().zip(raw) {
            assert!((x - r / sum).abs() < 1e-12);
        }
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn components_against_hand_computed_values() {
        let mut dsr = DsrState::default();
        // Long half size over a +0.4 % bar, 0.02 % step return, no trade, 30 % uncertain.
        let c = components(&outcome(), 0.3, &mut dsr, &prm());
        assert_eq!(c[0], 1.0, "direction: long into a rise past 0.2 %");
        assert!((c[1] - 0.4).abs() < 1e-12, "magnitude: 0.4 % → 0.4");
        assert!((c[2] - 0.02).abs() < 1e-12, "pnl: 100 × 0.0002");
        assert_eq!(c[3], 0.0, "stop_tp: nothing exited, not past the stop");
        assert!((c[4] - 0.015).abs() < 1e-12, "explore: 0.05 × 0.3");
        assert_eq!(c[5], 0.0, "slippage: no trade");
        assert_eq!(c[6], 0.0, "drawdown: none");
        assert_eq!(c[7], 0.0, "dsr: no variance before the first step");
        // The moments moved by η: A = 0.01 × 0.02, B = 0.01 × 0.02².
        assert!((dsr.a - 2e-4).abs() < 1e-15 && (dsr.b - 4e-6).abs() < 1e-15);

        // Short into the same rise, a trade that cost 0.03 %, past the stop, in a 25 % drawdown.
        let o = StepOutcome {
            level: -0.25,
            price_return: 0.004,
            pnl: -0.0004,
            cost: 0.0003,
            exit_return: Some(0.01),
            open_return: -0.03,
            drawdown: 0.25,
        };
        let c = components(&o, 0.0, &mut dsr, &prm());
        assert_eq!(c[0], -1.0);
        assert!((c[1] + 0.4).abs() < 1e-12);
        assert!((c[2] + 0.04).abs() < 1e-12);
        assert_eq!(c[3], -1.0, "held past the 2 % stop");
        assert!((c[5] + 0.006).abs() < 1e-12, "−20 × 0.0003");
        assert!((c[6] + 0.1).abs() < 1e-12, "−10 × (0.25 − 0.15)²");
        // DSR by hand: A = 2e-4, B = 4e-6, R = −0.04 (percent):
        // ΔA = −0.0402, ΔB = 0.0016 − 4e-6 = 0.001596, var = 4e-6 − 4e-8 = 3.96e-6,
        // (B·ΔA − ½A·ΔB) / var^1.5 = (−1.608e-7 − 1.596e-7) / 7.8804e-9 ≈ −40.7 → ×5, clipped −1.
        assert_eq!(c[7], -1.0);

        // Not enough of a move: direction and magnitude stay 0; flat: no stop.
        let flat = StepOutcome {
            level: 0.0,
            price_return: 0.01,
            pnl: 0.0,
            cost: 0.0,
            exit_return: Some(0.05),
            open_return: 0.0,
            drawdown: 0.1,
        };
        let c = components(&flat, 1.0, &mut DsrState::default(), &prm());
        assert_eq!((c[0], c[1]), (0.0, 0.0));
        assert_eq!(c[3], 1.0, "closed at +5 % ≥ the 4 % take-profit");
        assert!((c[4] - 0.05).abs() < 1e-12);
        assert_eq!(c[6], 0.0, "10 % drawdown is under the 15 % threshold");
        let small = StepOutcome {
            price_return: 0.0015,
            ..outcome()
        };
        let c = components(&small, 0.0, &mut DsrState::default(), &prm());
        assert_eq!((c[0], c[1]), (0.0, 0.0));
    }

    #[test]
    fn differential_sharpe_by_hand_and_its_clip() {
        let mut s = DsrState { a: 0.1, b: 0.05 };
        // R = 0.3 %: ΔA = 0.2, ΔB = 0.09 − 0.05 = 0.04, var = 0.05 − 0.01 = 0.04,
        // (0.05·0.2 − 0.5·0.1·0.04) / 0.04^1.5 = (0.01 − 0.002) / 0.008 = 1.0.
        let d = s.step(0.003, 0.01);
        assert!((d - 1.0).abs() < 1e-12, "{d}");
        assert!((s.a - 0.102).abs() < 1e-12 && (s.b - 0.0504).abs() < 1e-12);
        // Scaled ×5 and clipped to ±1 in the component.
        let mut s = DsrState { a: 0.1, b: 0.05 };
        let o = StepOutcome {
            pnl: 0.003,
            ..outcome()
        };
        assert_eq!(components(&o, 0.0, &mut s, &prm())[7], 1.0);
        let mut s = DsrState { a: 0.1, b: 0.05 };
        // R = 0.1 %: ΔA = 0, ΔB = 0.01 − 0.05 = −0.04: (0 + 0.002) / 0.008 = 0.25 → ×5 = 1.25 → 1.
        assert!((s.step(0.001, 0.01) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn weighted_sum_is_the_dot_product() {
        let w = curriculum_weights(0.0);
        let c = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert!((weighted_sum(&w, &c) - 0.35 / 0.96).abs() < 1e-12);
    }
}
