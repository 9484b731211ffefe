//! The portfolio trading rules (issue 10): one policy over a whole universe picks one of 12
//! factor regimes per bar. Training's rules ([`Tape`], [`PortfolioAccount`]): the account
//! rebalances to the regime's target weights and pays random slippage, spread and square-root
//! impact — plain f64, one step at a time; the tensor env (`engine::portfolio_env`) is their
//! vectorized version and a parity test holds them equal. [`decide`] is how a model's regime becomes orders as paper trading places them (threshold,
//! drawdown rules, capital gates, sells before buys): the path the paper daemon and the
//! as-traded evaluation share.

mod account;
pub mod decide;
mod regimes;
mod tape;

pub use account::{Frictions, PortfolioAccount, PortfolioRules, Rebalance, TradeCost};
pub use decide::PortfolioDecision;
pub use regimes::{target_weights, Regime, Weights, N_REGIMES, REGIME_NAMES};
pub use tape::{StepOutcome, Tape};

#[cfg(test)]
mod tests;
