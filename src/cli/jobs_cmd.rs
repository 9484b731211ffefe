//! The job subcommands: parse flags into config overrides and a job request, run the job on this
//! thread with a progress display, and map its outcome to an exit code.

use super::progress::Display;
use crate::config::{Config, GpuSizing};
use crate::jobs::{self, CancelToken, EvalPeriod, JobRequest};
use crate::paths::Paths;
use anyhow::Result;
use chrono::NaiveDate;
use clap::Args;

#[derive(Debug, Args)]
pub struct Common {
    /// Print events as JSON lines on stdout (for scripts) instead of a progress display.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Symbols to fetch (default: the configured universe).
    pub symbols: Vec<String>,
    /// Where from: synthetic or alpaca (overrides data.source).
    #[arg(long)]
    pub source: Option<String>,
    /// Timeframe, e.g. 15Min, 1Hour, 1Day (overrides data.timeframe).
    #[arg(long)]
    pub timeframe: Option<String>,
    /// First day, YYYY-MM-DD (overrides data.start).
    #[arg(long)]
    pub start: Option<String>,
    /// Last day, YYYY-MM-DD (overrides data.end).
    #[arg(long)]
    pub end: Option<String>,
    /// Alpaca stock feed: iex or sip (overrides data.feed).
    #[arg(long)]
    pub feed: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Symbol to train on (one model per symbol and timeframe).
    pub symbol: String,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Override ppo.total_timesteps (at least 1; rounded up to whole updates).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub timesteps: Option<u64>,
    /// Override ppo.seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// On a GPU: size envs/steps/minibatch from its memory, capped at 45 GiB (ppo.gpu_sizing).
    #[arg(long, conflicts_with_all = ["low_vram", "gpu_sizing"])]
    pub high_vram: bool,
    /// On a GPU: size from its memory, capped at 20 GiB, with the smaller batches.
    #[arg(long, conflicts_with = "gpu_sizing")]
    pub low_vram: bool,
    /// On a GPU: auto (detect the tier), off (the config's sizes), high-vram, low-vram, or a
    /// tier: h100, a100-80, a100-40, rtx4090, rtx3090, generic.
    #[arg(long, value_parser = parse_gpu_sizing)]
    pub gpu_sizing: Option<GpuSizing>,
    #[command(flatten)]
    pub common: Common,
}

fn parse_gpu_sizing(s: &str) -> Result<GpuSizing, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        "use auto, off, high-vram, low-vram, h100, a100-80, a100-40, rtx4090, rtx3090 or generic"
            .to_string()
    })
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Training run id (or unique prefix); default: the newest finished training run.
    #[arg(default_value = "latest")]
    pub run: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct WalkForwardArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Number of consecutive out-of-sample folds, 1–100 (overrides walk_forward.folds).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub folds: Option<u16>,
    /// Evaluate the last N calendar days (up to --to, or the newest bar).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36500), conflicts_with = "from")]
    pub days: Option<u32>,
    /// First day to evaluate, YYYY-MM-DD (must be after the bars the model saw).
    #[arg(long, value_parser = parse_date)]
    pub from: Option<NaiveDate>,
    /// Last day to evaluate, YYYY-MM-DD (default: the newest stored bar; later days are fetched
    /// first when the source is Alpaca).
    #[arg(long, value_parser = parse_date)]
    pub to: Option<NaiveDate>,
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{s:?} is not a YYYY-MM-DD date"))
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a speed: give bars per second ≥ 0 (0 = as fast as possible)"
        )),
    }
}

pub(super) fn parse_speed_arg(s: &str) -> Result<f64, String> {
    parse_speed(s)
}

fn execute(paths: &Paths, cfg: &Config, req: JobRequest, common: &Common) -> Result<i32> {
    execute_with(paths, cfg, req, common, false)
}

/// Runs a job on this thread. The first SIGINT, SIGTERM or SIGHUP asks it to stop (training saves
/// its model and validations first); a second one exits at once. With `keep_on_hangup` (the paper
/// daemon) SIGHUP is ignored: a dropped SSH session never stops trading.
pub(super) fn execute_with(
    paths: &Paths,
    cfg: &Config,
    req: JobRequest,
    common: &Common,
    keep_on_hangup: bool,
) -> Result<i32> {
    let cancel = CancelToken::new();
    let handler_token = cancel.clone();
    let signals = crate::signals::listen()?;
    std::thread::spawn(move || {
        for sig in signals {
            if keep_on_hangup && sig == crate::signals::StopSignal::Hangup {
                tracing::warn!("SIGHUP ignored: the paper daemon keeps trading; stop it with `quantdeck paper stop`");
                continue;
            }
            if handler_token.is_cancelled() {
                std::process::exit(130);
            }
            handler_token.cancel();
            eprintln!("\n{}: stopping… (again to exit at once)", sig.name());
        }
    });
    let display = Display::new(common.json);
    let observer = display.observer();
    let result = jobs::run_job(paths, cfg, &req, &cancel, Some(observer));
    display.finish();
    match result {
        Ok(id) if cancel.is_cancelled() => {
            eprintln!(
                "run {id} cancelled; its state is saved in {}",
                paths.runs.join(&id).display()
            );
            Ok(130)
        }
        Ok(id) => {
            if !common.json {
                println!("run {id} finished: {}", paths.runs.join(&id).display());
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(1)
        }
    }
}

pub fn fetch(paths: &Paths, cfg: &mut Config, a: FetchArgs) -> Result<i32> {
    if let Some(s) = a.source {
        cfg.data.source = match s.as_str() {
            "synthetic" => crate::config::DataSource::Synthetic,
            "alpaca" => crate::config::DataSource::Alpaca,
            other => anyhow::bail!("unknown --source {other:?}: use synthetic or alpaca"),
        };
    }
    if let Some(t) = a.timeframe {
        cfg.data.timeframe = t.parse()?;
    }
    if let Some(s) = a.start {
        cfg.data.start = s;
    }
    if let Some(e) = a.end {
        cfg.data.end = e;
    }
    if let Some(f) = a.feed {
        cfg.data.feed = f;
    }
    crate::config::validate(cfg)?;
    execute(
        paths,
        cfg,
        JobRequest::Fetch { symbols: a.symbols },
        &a.common,
    )
}

pub fn train(paths: &Paths, cfg: &mut Config, a: TrainArgs) -> Result<i32> {
    if let Some(d) = a.device {
        cfg.ppo.device = d;
    }
    if let Some(t) = a.timesteps {
        cfg.ppo.total_timesteps = t;
        let step = cfg.ppo.steps_per_update();
        if t % step != 0 {
            eprintln!(
                "note: --timesteps {t} rounds to {} update(s) of {step} steps (n_envs × n_steps)",
                cfg.ppo.updates()
            );
        }
    }
    if let Some(s) = a.seed {
        cfg.ppo.seed = s;
    }
    if let Some(g) = a.gpu_sizing {
        cfg.ppo.gpu_sizing = g;
    } else if a.high_vram {
        cfg.ppo.gpu_sizing = GpuSizing::HighVram;
    } else if a.low_vram {
        cfg.ppo.gpu_sizing = GpuSizing::LowVram;
    }
    crate::config::validate(cfg)?;
    execute(
        paths,
        cfg,
        JobRequest::Train { symbol: a.symbol },
        &a.common,
    )
}

pub fn gate(paths: &Paths, cfg: &Config, a: RunArgs) -> Result<i32> {
    execute(paths, cfg, JobRequest::Gate { train_run: a.run }, &a.common)
}

pub fn walk_forward(paths: &Paths, cfg: &mut Config, a: WalkForwardArgs) -> Result<i32> {
    if let Some(f) = a.folds {
        cfg.walk_forward.folds = f as usize;
    }
    crate::config::validate(cfg)?;
    execute(
        paths,
        cfg,
        JobRequest::WalkForward {
            train_run: a.run.run,
            period: EvalPeriod {
                from: a.from,
                to: a.to,
                days: a.days,
            },
        },
        &a.run.common,
    )
}
