//! The trading rules, one bar at a time, in plain f64: the action space, position sizing,
//! frictions, the account, rewards, and the risk gates the backtest and paper trader add on top.
//! The training env is a tensor version of [`Account::step_action`]; a parity test holds them equal.

mod account;
mod actions;
pub mod portfolio;
pub mod reward;
mod risk;

pub use account::{Account, Fill, Rules};
pub use actions::{target_level, Action, ACTION_MEANINGS, N_ACTIONS};
pub use reward::{RewardComponent, SeedParams};
pub use risk::{drawdown_rules, exit_rules, RiskDecision, RiskGate, RiskRules};

#[cfg(test)]
mod tests;
