//! The job subcommands: parse flags into config overrides and a job request, run the job on this
//! thread with a progress display, and map its outcome to an exit code.

use super::progress::{Display, Verbosity};
use crate::config::{Config, GpuSizing, Precision, RewardKind, TrainDuration};
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
    /// Also print debug lines, and a full line per training update (reward components,
    /// critic-only epochs).
    #[arg(long, short = 'v', conflicts_with = "quiet")]
    pub verbose: bool,
    /// Print only warnings, errors and the outcome (no progress bar).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl Common {
    fn verbosity(&self) -> Verbosity {
        if self.quiet {
            Verbosity::Quiet
        } else if self.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        }
    }
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Symbols to fetch (default: the configured universe).
    pub symbols: Vec<String>,
    /// Fetch the portfolio universe instead (`[portfolio]`: its symbols, timeframe and period;
    /// on the synthetic market, the correlated universe is regenerated).
    #[arg(long, conflicts_with_all = ["symbols", "timeframe", "start", "end"])]
    pub portfolio: bool,
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
    /// Symbol to train on (one model per symbol and timeframe). Not with --resume or
    /// --checkpoint, which continue a run's own symbol.
    #[arg(required_unless_present_any = ["resume", "checkpoint", "portfolio"])]
    pub symbol: Option<String>,
    /// Train one portfolio policy over the configured universe (`[portfolio]`: 12 regime
    /// actions, equal-weight buy-and-hold beside every validation) instead of one symbol.
    #[arg(long, conflicts_with_all = ["symbol", "resume", "checkpoint", "reward"])]
    pub portfolio: bool,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Train for N env-steps in all (overrides ppo.total_timesteps; rounded to whole updates).
    /// Priority over --episodes and --iterations.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub timesteps: Option<u64>,
    /// Train for N episodes of env.episode_len steps (N × episode_len env-steps, rounded up to
    /// whole updates). Priority over --iterations.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub episodes: Option<u64>,
    /// Train for N PPO updates (N × n_envs × n_steps env-steps).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub iterations: Option<u64>,
    /// Override ppo.seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train N seeds of this configuration (ppo.seed, +1, …) as one group, one after another;
    /// `gate` grades the group on its median and its worst seed.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100), conflicts_with = "portfolio")]
    pub seeds: Option<u64>,
    /// Bar timeframe to train on (overrides data.timeframe): e.g. 15Min, 1Hour, 1Day.
    #[arg(long, value_parser = parse_timeframe)]
    pub timeframe: Option<crate::market::Timeframe>,
    /// Critic-only epochs after the PPO epochs (overrides ppo.critic_epochs; 0 = none).
    #[arg(long, value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub critic_epochs: Option<u16>,
    /// Pooled training: these symbols' bars up to the trained symbol's last training bar train
    /// the same policy too, comma-separated (overrides env.pool_symbols).
    #[arg(
        long,
        value_name = "SYMBOLS",
        value_delimiter = ',',
        conflicts_with = "portfolio"
    )]
    pub pool: Option<Vec<String>>,
    /// The network: mlp or gru (overrides ppo.encoder).
    #[arg(long, value_parser = ["mlp", "gru"])]
    pub encoder: Option<String>,
    /// The training reward: pnl or seed (overrides env.reward).
    #[arg(long, value_parser = ["pnl", "seed"])]
    pub reward: Option<String>,
    /// Turn the drawdown early stop on (ppo.early_stop): a validation drawdown at the threshold
    /// restarts from the last good validation with lr × 0.5 and entropy × 1.5, 3 times at most.
    #[arg(long)]
    pub early_stop: bool,
    /// The early stop's validation drawdown threshold, in (0, 1] (ppo.early_stop_drawdown;
    /// turns the early stop on).
    #[arg(long, value_name = "SHARE")]
    pub early_stop_drawdown: Option<f64>,
    /// Keep every Nth periodic checkpoint (ppo.keep_every; best, newest and final always stay).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_every: Option<u32>,
    /// Continue a training run in its directory from its newest training state: a run id,
    /// a unique prefix, or `latest` (the default). The run's own configuration continues.
    #[arg(long, value_name = "RUN", num_args = 0..=1, default_missing_value = "latest",
          conflicts_with_all = ["symbol", "checkpoint", "timesteps", "episodes", "iterations", "seed",
                                "critic_epochs", "pool", "reward", "encoder", "early_stop", "early_stop_drawdown", "keep_every",
                                "high_vram", "low_vram", "gpu_sizing", "precision", "amp"])]
    pub resume: Option<String>,
    /// Continue a training run from this checkpoint: a file under runs/<id>/state/, or one of
    /// the run's model files (its update's state). Later checkpoints move aside.
    #[arg(long, value_name = "FILE",
          conflicts_with_all = ["symbol", "timesteps", "episodes", "iterations", "seed",
                                "critic_epochs", "pool", "reward", "encoder", "early_stop", "early_stop_drawdown", "keep_every",
                                "high_vram", "low_vram", "gpu_sizing", "precision", "amp"])]
    pub checkpoint: Option<std::path::PathBuf>,
    /// On a GPU: size envs/steps/minibatch from its memory, capped at 45 GiB (ppo.gpu_sizing).
    #[arg(long, conflicts_with_all = ["low_vram", "gpu_sizing"])]
    pub high_vram: bool,
    /// On a GPU: size from its memory, capped at 20 GiB, with the smaller batches.
    #[arg(long, conflicts_with = "gpu_sizing")]
    pub low_vram: bool,
    /// The update's matmul precision: f32, bf16, or f16 with loss scaling (ppo.precision).
    #[arg(long, value_parser = ["f32", "bf16", "f16"], conflicts_with = "amp")]
    pub precision: Option<String>,
    /// Mixed precision as the seed's --amp: bf16 matmuls over f32 weights (= --precision bf16).
    #[arg(long)]
    pub amp: bool,
    /// On a GPU: auto (detect the tier), off (the config's sizes), high-vram, low-vram, or a
    /// tier: h100, a100-80, a100-40, rtx4090, rtx3090, generic.
    #[arg(long, value_parser = parse_gpu_sizing)]
    pub gpu_sizing: Option<GpuSizing>,
    #[command(flatten)]
    pub common: Common,
}

fn parse_timeframe(s: &str) -> Result<crate::market::Timeframe, String> {
    s.parse::<crate::market::Timeframe>()
        .map_err(|e| format!("{e:#}"))
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
    let kind = req.kind();
    let cancel = CancelToken::new();
    let handler_token = cancel.clone();
    let signals = crate::signals::listen()?;
    std::thread::spawn(move || {
        for sig in signals {
            if sig == crate::signals::StopSignal::Hangup {
                // The job's last lines must not panic on a terminal that is gone.
                crate::signals::detach_terminal(true);
            }
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
    let display = Display::new(common.json, common.verbosity());
    let observer = display.observer();
    let result = jobs::run_job(paths, cfg, &req, &cancel, Some(observer));
    display.finish();
    match result {
        Ok(id) if cancel.is_cancelled() => {
            eprintln!(
                "run {id} cancelled; its state is saved in {}",
                paths.runs.join(&id).display()
            );
            if kind == crate::jobs::JobKind::Train {
                eprintln!("continue it with: quantdeck train --resume {id}");
            }
            Ok(130)
        }
        Ok(id) => {
            if !common.json && !common.quiet {
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
    let req = if a.portfolio {
        JobRequest::FetchPortfolio
    } else {
        JobRequest::Fetch { symbols: a.symbols }
    };
    execute(paths, cfg, req, &a.common)
}

/// `explicit_config`: the user named a mode or a config file, whose network a resumed run must
/// match.
pub fn train(
    paths: &Paths,
    cfg: &mut Config,
    mut a: TrainArgs,
    explicit_config: bool,
) -> Result<i32> {
    if a.resume.is_some() || a.checkpoint.is_some() {
        return resume_train(paths, cfg, a, explicit_config);
    }
    let req = match a.symbol.take() {
        _ if a.portfolio => JobRequest::TrainPortfolio,
        Some(symbol) => JobRequest::Train {
            symbol,
            group: None,
        },
        None => anyhow::bail!("name the symbol to train (or --portfolio, or --resume RUN)"),
    };
    if let Some(d) = a.device.take() {
        cfg.ppo.device = d;
    }
    apply_duration(cfg, &a);
    apply_train_flags(cfg, &a);
    crate::config::validate(cfg)?;
    match (a.seeds, req) {
        (Some(n), JobRequest::Train { symbol, .. }) if n > 1 => {
            train_seeds(paths, cfg, &symbol, n as usize, &a.common)
        }
        (_, req) => execute(paths, cfg, req, &a.common),
    }
}

/// `train --resume RUN` / `--checkpoint FILE`: continue a run, on another device if asked.
fn resume_train(paths: &Paths, cfg: &Config, a: TrainArgs, explicit_config: bool) -> Result<i32> {
    // A bad flag is a usage error (exit 2) found before the run is touched.
    if let Some(d) = &a.device {
        let mut probe = cfg.clone();
        probe.ppo.device = d.clone();
        crate::config::validate(&probe)?;
    }
    let req = JobRequest::ResumeTrain {
        run: a.resume,
        checkpoint: a.checkpoint,
        device: a.device,
        expect: explicit_config.then(|| Box::new(cfg.clone())),
    };
    execute(paths, cfg, req, &a.common)
}

/// --timesteps / --episodes / --iterations into the update count, saying what it came to.
fn apply_duration(cfg: &mut Config, a: &TrainArgs) {
    let duration = TrainDuration {
        timesteps: a.timesteps,
        episodes: a.episodes,
        iterations: a.iterations,
    };
    let episode_len = if a.portfolio {
        cfg.portfolio.episode_len
    } else {
        cfg.env.episode_len
    };
    if let Some(r) = duration.apply(&mut cfg.ppo, episode_len) {
        if !a.common.quiet && !a.common.json {
            for n in &r.notes {
                eprintln!("note: {n}");
            }
            eprintln!(
                "duration from --{}: {} update(s) of {} env-steps",
                r.by,
                r.updates,
                cfg.ppo.steps_per_update()
            );
        }
    }
}

/// The remaining training flags as config overrides (validated by the caller).
fn apply_train_flags(cfg: &mut Config, a: &TrainArgs) {
    if let Some(s) = a.seed {
        cfg.ppo.seed = s;
    }
    if let Some(tf) = a.timeframe {
        cfg.data.timeframe = tf;
    }
    if let Some(e) = a.encoder.as_deref() {
        cfg.ppo.encoder = if e == "gru" {
            crate::config::Encoder::Gru
        } else {
            crate::config::Encoder::Mlp
        };
    }
    if let Some(c) = a.critic_epochs {
        cfg.ppo.critic_epochs = c as usize;
    }
    if let Some(p) = &a.pool {
        cfg.env.pool_symbols = p.clone();
    }
    if let Some(r) = a.reward.as_deref() {
        cfg.env.reward = if r == "seed" {
            RewardKind::Seed
        } else {
            RewardKind::Pnl
        };
    }
    if a.early_stop {
        cfg.ppo.early_stop = true;
    }
    if let Some(d) = a.early_stop_drawdown {
        cfg.ppo.early_stop = true;
        cfg.ppo.early_stop_drawdown = d;
    }
    if let Some(k) = a.keep_every {
        cfg.ppo.keep_every = k as usize;
    }
    if let Some(p) = a.precision.as_deref() {
        cfg.ppo.precision = match p {
            "bf16" => Precision::Bf16,
            "f16" => Precision::F16,
            _ => Precision::F32,
        };
    } else if a.amp {
        cfg.ppo.precision = Precision::Bf16;
    }
    if let Some(g) = a.gpu_sizing {
        cfg.ppo.gpu_sizing = g;
    } else if a.high_vram {
        cfg.ppo.gpu_sizing = GpuSizing::HighVram;
    } else if a.low_vram {
        cfg.ppo.gpu_sizing = GpuSizing::LowVram;
    }
}

/// `train SYMBOL --seeds N`: N runs of one configuration, seeds ppo.seed … ppo.seed + N − 1,
/// one after another, recorded as one group. Stops at the first seed that fails or is cancelled.
fn train_seeds(
    paths: &Paths,
    cfg: &Config,
    symbol: &str,
    n: usize,
    common: &Common,
) -> Result<i32> {
    let base = cfg.ppo.seed;
    let id = format!(
        "seeds-{}-{}",
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        symbol
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    for index in 0..n {
        let mut c = cfg.clone();
        c.ppo.seed = base + index as u64;
        if !common.quiet && !common.json {
            eprintln!(
                "seed {}/{n} (ppo.seed = {}) of group {id}",
                index + 1,
                c.ppo.seed
            );
        }
        let group = crate::jobs::rundir::SeedGroup {
            id: id.clone(),
            index,
            size: n,
            seed: c.ppo.seed,
        };
        let req = JobRequest::Train {
            symbol: symbol.to_string(),
            group: Some(group),
        };
        let code = execute(paths, &c, req, common)?;
        if code != 0 {
            return Ok(code);
        }
    }
    if !common.quiet && !common.json {
        println!("group {id}: {n} seeds trained; grade them together with `quantdeck gate`");
    }
    Ok(0)
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
