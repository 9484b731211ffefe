//! quantdeck's integration tests, as one test binary: a separate crate per file would link candle
//! and polars again for each of them.

mod common;

mod alpaca;
mod alpaca_streams;
mod alpaca_trading;
mod cli;
mod config_files;
mod data_safety;
mod features_calendar;
mod features_cli;
mod features_parity;
mod features_roundtrip;
mod features_talib;
mod hostile_files;
mod hostile_inputs;
mod learning;
mod paper_alerts;
mod paper_daemon;
mod paper_faults;
mod paper_portfolio;
mod paper_session;
mod parity;
mod pipeline;
mod portfolio;
mod portfolio_e2e;
mod portfolio_parity;
mod portfolio_replay;
mod portfolio_train;
mod replay;
mod seeds;
mod store_concurrency;
mod sweep;
mod sweep_slurm;
mod tensorboard;
mod train_cli;
mod train_resume;
mod trust;
mod tui_keymap;
mod tui_keys;
mod tui_msgs;
mod tui_snapshots;
mod tui_sweep;
mod tui_tmux;
mod tui_verdict_panes;
mod verdicts;
