//! Paper trading as a crash-safe daemon the screen attaches to (`DESIGN.md`, "Paper trading").
//!
//! ```text
//! feed (replay | Alpaca stream / REST poll) → bar builder → slot (features → policy → risk rules)
//!   → gates (capital, buying power, cooldown, pause/flatten/halt/daily loss/stale feed)
//!   → orders (broker rules) → journal (fsync) → broker → ledger (fills folded from the broker's orders)
//! ```
//!
//! The simulated broker and Alpaca sit behind the same [`crate::broker::Broker`] trait, so replay
//! and real paper trading share every line of decision and execution code.

pub mod bars;
pub mod commands;
pub mod daemon;
mod exec;
pub mod feed;
pub mod ids;
pub mod journal;
pub mod ledger;
pub mod orders;
pub mod portfolio;
mod rebalance;
mod single;
pub mod slot;
pub mod state;
pub mod view;

/// The capital gates live with the other trading rules in `sim` (evaluation applies them too).
pub use crate::sim::gates;

pub use daemon::{Daemon, Ended, Settings};
pub use portfolio::PortfolioSlot;
pub use slot::ModelSlot;

/// The order journal's file name in a paper run's directory.
pub const JOURNAL: &str = "journal.jsonl";
/// The simulated broker's state file in a paper run's directory.
pub const SIM_BROKER: &str = "sim_broker.json";
