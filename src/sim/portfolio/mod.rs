//! The portfolio trading rules (issue 10): one policy over a whole universe picks one of 12
//! factor regimes per bar; the account rebalances to the regime's target weights and pays
//! slippage, spread and square-root impact. Plain f64, one step at a time; the tensor env
//! (`engine::portfolio_env`) is their vectorized version and a parity test holds them equal.

mod account;
mod regimes;
mod tape;

pub use account::{Frictions, PortfolioAccount, PortfolioRules, Rebalance, TradeCost};
pub use regimes::{target_weights, Regime, Weights, N_REGIMES, REGIME_NAMES};
pub use tape::{StepOutcome, Tape};

#[cfg(test)]
mod tests;
