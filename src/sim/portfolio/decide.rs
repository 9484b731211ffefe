//! The one decision path of a portfolio model (DESIGN, principle 9), the twin of `sim::decide`:
//! how the policy's regime on a complete bar time becomes per-member orders. In order:
//!
//! 1. the confidence threshold: a regime below `portfolio_confidence_threshold` becomes HOLD
//!    (HOLD trades nothing);
//! 2. the regime's target weights over the members eligible now — a bar at the decided time
//!    (its close is the order's price) and a full factor lookback;
//! 3. the drawdown rules on the session's equity: sizes halve past `drawdown_halve`; past
//!    `drawdown_halt` a sticky halt blocks entries (through the gates' situation);
//! 4. target quantities: the weights divide what the tradable members can take (equity less the
//!    holdings of masked members, which stay), times the size multiplier, over each close;
//! 5. the capital gates over the whole batch (`sim::gates`), with the members' cooldowns;
//! 6. the orders: sells before buys (their proceeds pay for the buys); a change worth less than
//!    a dollar is the rounding left from the last rebalance, not a trade.
//!
//! The paper daemon (`live::rebalance`) and the as-traded evaluation
//! (`eval::portfolio_traded`) both call these, so a simulated replay of an evaluated period
//! trades what the evaluation reported.

use super::{target_weights, Regime, Weights};
use crate::features::portfolio::FactorScores;
use crate::sim::gates::{gate, CapitalRules, GateNote, Situation, Want};
use crate::sim::RiskRules;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

/// A change of position worth less than this (in currency) is not sent.
pub const MIN_CHANGE_VALUE: f64 = 1.0;

/// The policy's choice on one bar time, after the threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct PortfolioDecision {
    pub bar: DateTime<Utc>,
    /// The policy's most probable regime and its probability.
    pub chosen: Regime,
    pub confidence: f32,
    /// The regime after the confidence threshold (below it: HOLD).
    pub regime: Regime,
    /// The regime's target weights over the members eligible now (`None` for HOLD).
    pub targets: Option<Weights>,
    /// Each member's close at the decided bar, `None` where it has no bar (masked: not traded).
    pub prices: Vec<Option<f64>>,
}

impl PortfolioDecision {
    /// Steps 1–2 for the policy's `action` (probability `confidence`) on bar time `bar`, with
    /// `scores` the members' factor scores at the bar and `prices` their closes. An action
    /// outside the 12 regimes is an error.
    pub fn new(
        bar: DateTime<Utc>,
        action: usize,
        confidence: f32,
        threshold: f32,
        scores: &[Option<FactorScores>],
        prices: Vec<Option<f64>>,
    ) -> Result<Self> {
        let chosen = Regime::from_index(action).with_context(|| {
            format!("the policy chose action {action}: not one of the 12 regimes")
        })?;
        let regime = if confidence < threshold {
            Regime::Hold
        } else {
            chosen
        };
        let eligible: Vec<bool> = prices
            .iter()
            .zip(scores)
            .map(|(p, s)| p.is_some() && s.is_some())
            .collect();
        Ok(PortfolioDecision {
            bar,
            chosen,
            confidence,
            regime,
            targets: target_weights(regime, scores, &eligible),
            prices,
        })
    }

    /// The threshold turned the policy's regime into HOLD.
    pub fn held(&self) -> bool {
        self.regime != self.chosen
    }

    /// Why nothing trades under HOLD: `hold`, or `held: MOMENTUM at confidence 0.12 < 0.20`.
    pub fn hold_note(&self, threshold: f32) -> String {
        if self.held() {
            format!(
                "held: {} at confidence {:.2} < {threshold:.2}",
                self.chosen.name(),
                self.confidence
            )
        } else {
            "hold".into()
        }
    }
}

/// Step 3: the size multiplier at drawdown `dd`, latching the sticky halt. Returns the
/// multiplier and whether the halt latched just now.
pub fn drawdown_latch(risk: &RiskRules, dd: f64, halted: &mut bool) -> (f64, bool) {
    let now = dd >= risk.drawdown_halt && !*halted;
    if now {
        *halted = true;
    }
    let size_mult = if dd >= risk.drawdown_halve { 0.5 } else { 1.0 };
    (size_mult, now)
}

/// Gross value of the masked members' holdings at their last prices (`marks`): they cannot
/// trade at this bar, so they stay, and the weights divide the rest.
pub fn frozen_value(prices: &[Option<f64>], qty: &[f64], marks: &[f64]) -> f64 {
    prices
        .iter()
        .zip(qty.iter().zip(marks))
        .filter(|(p, _)| p.is_none())
        .map(|(_, (q, m))| (q * m).abs())
        .sum()
}

/// Step 4: shares of each member to hold for `targets`: the weights divide `deployable` (equity
/// less the masked members' holdings), times `size_mult`. Masked members keep `current`.
pub fn target_quantities(
    targets: &Weights,
    prices: &[Option<f64>],
    current: &[f64],
    deployable: f64,
    size_mult: f64,
) -> Vec<f64> {
    prices
        .iter()
        .enumerate()
        .map(|(i, p)| match p {
            Some(p) if *p > 0.0 => {
                targets.symbols.get(i).copied().unwrap_or(0.0) * deployable.max(0.0) * size_mult / p
            }
            _ => current.get(i).copied().unwrap_or(0.0),
        })
        .collect()
}

/// The capital gates a model's rebalance passes (a plain rule — a baseline — passes none).
#[derive(Debug, Clone, Copy)]
pub struct Gates<'a> {
    pub rules: &'a CapitalRules,
    /// The session's situation, with the masked members' holdings as the other exposure.
    pub situation: &'a Situation,
    /// Per member: within its cooldown after its last trade.
    pub cooling: &'a [bool],
    pub flip_in_one_order: bool,
}

/// One member's order: from `current` to `target` units at `price` (the decided bar's close).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemberOrder {
    pub member: usize,
    pub current: f64,
    pub target: f64,
    pub price: f64,
}

/// What a rebalance sends, in sending order (sells first), and the word on each member.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub orders: Vec<MemberOrder>,
    /// (member, note): masked, blocked by an open order, or the gates' word.
    pub notes: Vec<(usize, String)>,
}

/// Steps 4–6 for a decision with targets (HOLD plans nothing). `busy[i]`: member `i` has an
/// order of an earlier bar still working (its fills would be counted twice), so it sits out.
pub fn rebalance(
    d: &PortfolioDecision,
    current: &[f64],
    deployable: f64,
    size_mult: f64,
    busy: &[bool],
    gates: Option<Gates<'_>>,
) -> Plan {
    let mut plan = Plan::default();
    let Some(targets) = &d.targets else {
        return plan;
    };
    let want_qty = target_quantities(targets, &d.prices, current, deployable, size_mult);
    let mut wants: Vec<(usize, Want)> = Vec::new();
    for (i, p) in d.prices.iter().enumerate() {
        let Some(price) = *p else {
            plan.notes.push((i, "masked: no bar at this time".into()));
            continue;
        };
        if busy.get(i).copied().unwrap_or(false) {
            plan.notes
                .push((i, "blocked: an earlier order is still open".into()));
            continue;
        }
        wants.push((
            i,
            Want {
                symbol: String::new(),
                price,
                current: current[i],
                target: want_qty[i],
                cooling: gates.is_some_and(|g| g.cooling.get(i).copied().unwrap_or(false)),
            },
        ));
    }
    let only: Vec<Want> = wants.iter().map(|(_, w)| w.clone()).collect();
    let sized = match gates {
        Some(g) => gate(&only, g.situation, g.rules, g.flip_in_one_order),
        None => only.iter().map(|w| (w.target, GateNote::Ok)).collect(),
    };
    // Sells first: their proceeds pay for the buys.
    let mut order: Vec<usize> = (0..only.len()).collect();
    order.sort_by_key(|&k| sized[k].0 >= only[k].current);
    for k in order {
        let (i, w) = &wants[k];
        let (target, note) = &sized[k];
        plan.notes.push((*i, note.text()));
        if matches!(note, GateNote::Blocked(_)) && *target == w.current {
            continue;
        }
        if ((target - w.current) * w.price).abs() < MIN_CHANGE_VALUE {
            continue;
        }
        plan.orders.push(MemberOrder {
            member: *i,
            current: w.current,
            target: *target,
            price: w.price,
        });
    }
    plan
}

#[cfg(test)]
mod tests;
