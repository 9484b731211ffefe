//! Paper trading as a crash-safe daemon the screen attaches to (`DESIGN.md`, "Paper trading" and
//! "The paper daemon's shape"). Components that own their fields, talking through typed inputs:
//!
//! ```text
//! feed (replay | Alpaca stream, REST polling whenever the stream is not up) → bar builder
//!   → Input ─ input::run routes one at a time ─┬─ strategy (per-symbol models | one portfolio
//!                                              │   model) proposes
//!                                              ├─ decision (sim::decide / sim::portfolio::decide,
//!                                              │   orders in flight counted as held) → order
//!                                              ├─ exec: journal (fsync) → broker → ledger, in flight
//!                                              ├─ mirror: account, positions, clock, assets, prices
//!                                              └─ latches: pause, flatten, halt, daily loss, stale
//!                                                  feed, symbols stopped on a book mismatch
//! reconcile: a pure function of journal + broker orders + positions (at start, every reconnect)
//! output: a trait `jobs` implements (events, alerts); clock: a trait the tests control
//! ```
//!
//! The simulated broker and Alpaca sit behind the same [`crate::broker::Broker`] trait, so replay
//! and real paper trading share every line of decision and execution code.

pub mod bars;
pub mod clock;
pub mod commands;
pub mod daemon;
mod exec;
pub mod feed;
mod housekeeping;
pub mod ids;
mod input;
pub mod journal;
pub mod latches;
pub mod ledger;
pub mod mirror;
pub mod orders;
pub mod output;
pub mod portfolio;
mod portfolio_record;
mod rebalance;
pub mod reconcile;
mod single;
pub mod slot;
mod snapshot;
pub mod state;
pub mod strategy;
pub mod view;

/// The capital gates live with the other trading rules in `sim` (evaluation applies them too).
pub use crate::sim::gates;

pub use clock::{Clock, SystemClock, TestClock};
pub use daemon::{Daemon, Ended, Settings};
pub use exec::InFlight;
pub use feed::AsyncFeed;
pub use input::Input;
pub use output::{Alert, Level, Output};
pub use portfolio::PortfolioSlot;
pub use rebalance::PORTFOLIO_SYMBOL;
pub use slot::ModelSlot;
pub use snapshot::exit_prices;
pub use strategy::Strategy;

/// The order journal's file name in a paper run's directory.
pub const JOURNAL: &str = "journal.jsonl";
/// The simulated broker's state file in a paper run's directory.
pub const SIM_BROKER: &str = "sim_broker.json";
