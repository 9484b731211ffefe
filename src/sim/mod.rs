//! The trading rules, one bar at a time, in plain f64: the action space, position sizing,
//! frictions, the account, rewards, and — in [`decide`] — the one decision path (confidence
//! threshold, risk rules, capital gates) that evaluation and the paper trader both apply.
//! The training env is a tensor version of [`Account::step_action`]; a parity test holds them equal.

mod account;
mod actions;
pub mod decide;
pub mod gates;
pub mod portfolio;
pub mod reward;
mod risk;

pub use account::{Account, Fill, Rules};
pub use actions::{target_level, Action, ACTION_MEANINGS, N_ACTIONS};
pub use decide::{Latches, TradingRules};
pub use reward::{RewardComponent, SeedParams};
pub use risk::{drawdown_rules, exit_rules, RiskDecision, RiskRules};

#[cfg(test)]
mod tests;
