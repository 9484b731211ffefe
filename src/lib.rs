//! quantdeck: a terminal trading workstation for reinforcement-learning trading models.
//!
//! The flow runs one way: `market` → `data` → `features` → `sim` → `engine` → `eval` → `live`,
//! with `broker` beside `live`; `jobs` turns that work into run directories and events; `tui`
//! and `cli` sit on top and nothing depends on them.

pub mod broker;
pub mod cli;
pub mod config;
pub mod data;
pub mod engine;
pub mod eval;
pub mod features;
pub mod jobs;
pub mod jsonl;
pub mod live;
pub mod logging;
pub mod market;
pub mod notify;
pub mod paths;
pub mod rng;
pub mod signals;
pub mod sim;
pub mod tui;
