//! The command line: `quantdeck` alone opens the workstation; subcommands run each stage headless.

mod data_cmd;
mod device;
mod export;
mod features;
mod jobs_cmd;
mod models;
mod paper;
mod progress;
mod runs;
mod sweep;
mod watch;

use crate::config::{self, Config};
use crate::paths::Paths;
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "quantdeck", version, about = "Terminal workstation for RL trading models: fetch, train, gate, walk-forward, paper trade.", long_about = None)]
pub struct Cli {
    /// Training mode applied over the defaults: quick_test, standard, production, extended, or a TOML path.
    #[arg(long, global = true)]
    pub mode: Option<String>,
    /// Your own config file (TOML), applied after the mode.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where data, runs, models and logs live (default: $QUANTDECK_HOME or the platform data dir).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch bars into the store: the built-in synthetic market, or Alpaca (data.source).
    Fetch(jobs_cmd::FetchArgs),
    /// Import OHLCV bars from a CSV or parquet file into the store.
    Import(data_cmd::ImportArgs),
    /// Check stored data quality, or resample a series.
    Data(data_cmd::DataArgs),
    /// Train a PPO policy for one symbol.
    Train(jobs_cmd::TrainArgs),
    /// Classify a training run APPROVED / REVIEW / DROP.
    Gate(jobs_cmd::RunArgs),
    /// Backtest a trained policy on out-of-sample folds and decide LIVE / PAPER / RETRAIN / DROP.
    WalkForward(jobs_cmd::WalkForwardArgs),
    /// Paper-trade trained models (one per symbol) as a crash-safe daemon: on the simulated broker
    /// over unseen bars, or on Alpaca paper; and pause / resume / flatten / stop a running session.
    Paper(paper::PaperArgs),
    /// List or inspect trained models and checkpoints.
    Models(models::ModelsArgs),
    /// List run directories and their state.
    Runs(runs::RunsArgs),
    /// Alert (through `[notify]`) when a paper session's daemon stops beating; in a loop, or
    /// once for cron (`--once`, exit code 3 when one is down).
    Watch(watch::WatchArgs),
    /// Show the feature layout, or write a symbol's (or a CSV's) features to CSV or parquet.
    Features(features::FeaturesArgs),
    /// Many training pipelines at once: symbols × seeds × settings × modes, train → gate →
    /// walk-forward, on local workers or as a Slurm job array; and its status, report, cancel,
    /// resume.
    Sweep(sweep::SweepArgs),
    /// Write TensorBoard event files for training runs (every run writes one as it trains; this
    /// is for older runs, or to write one again from events.jsonl).
    Export(export::ExportArgs),
    /// Check a compute device's arithmetic (a matmul and an MLP forward pass in f32 and bf16)
    /// against a host f64 reference: the first command on a new GPU host.
    Device(device::DeviceArgs),
    /// Run one task of a sweep (what the sweep's workers and Slurm array tasks run).
    #[command(hide = true)]
    SweepTask(sweep::TaskArgs),
    /// Supervise a local sweep's workers (started detached by `sweep`).
    #[command(hide = true)]
    SweepRun(sweep::SuperviseArgs),
}

/// Parses flags, loads config and paths, then runs the subcommand (or the TUI). Returns the
/// process exit code.
pub fn main() -> Result<i32> {
    let cli = Cli::parse();
    if let Some(home) = &cli.home {
        std::env::set_var("QUANTDECK_HOME", home);
    }
    let paths = Paths::discover()?;
    paths.ensure()?;
    let _log = crate::logging::init(&paths.logs);
    let (mut cfg, notes): (Config, _) =
        config::load_with_notes(cli.mode.as_deref(), cli.config.as_deref())?;
    for n in notes {
        tracing::warn!("{n}");
        eprintln!("note: {n}");
    }
    let explicit_config = cli.mode.is_some() || cli.config.is_some();
    match cli.command {
        None => {
            let modes = crate::tui::Modes::from_flags(&cfg, explicit_config, cli.config.as_deref());
            crate::tui::run(&paths, &cfg, modes)?;
            Ok(0)
        }
        Some(Command::Fetch(a)) => jobs_cmd::fetch(&paths, &mut cfg, a),
        Some(Command::Import(a)) => data_cmd::import(&paths, &cfg, a),
        Some(Command::Data(a)) => data_cmd::run(&paths, &cfg, a),
        Some(Command::Train(a)) => jobs_cmd::train(&paths, &mut cfg, a, explicit_config),
        Some(Command::Gate(a)) => jobs_cmd::gate(&paths, &cfg, a),
        Some(Command::WalkForward(a)) => jobs_cmd::walk_forward(&paths, &mut cfg, a),
        Some(Command::Paper(a)) => paper::run(&paths, &mut cfg, a),
        Some(Command::Models(a)) => models::run(&paths, a),
        Some(Command::Runs(a)) => runs::run(&paths, a),
        Some(Command::Watch(a)) => watch::run(&paths, &cfg, a),
        Some(Command::Features(a)) => features::run(&paths, &cfg, a),
        Some(Command::Device(a)) => device::run(a),
        Some(Command::Sweep(a)) => sweep::run(&paths, &cfg, cli.config.as_deref(), a),
        Some(Command::Export(a)) => export::run(&paths, a),
        Some(Command::SweepTask(a)) => sweep::task(&paths, a),
        Some(Command::SweepRun(a)) => sweep::supervise(&paths, a),
    }
}
