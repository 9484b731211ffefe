//! The training job: loads bars and features, trains PPO on the engine, validates on held-out bars
//! every few updates (appending each validation to `validations.jsonl` at once, so a run killed
//! midway can still be gated), and records the outcome. A resumed run (`resume`) continues in its
//! own directory from a training state.

use super::ctx::Ctx;
use super::resume::ResumePoint;
use super::rundir::DataRef;
use super::{CheckpointReason, Event, JobSummary, LogLevel};
use crate::config::GpuSizing;
use crate::data::store::hash_bars;
use crate::engine::ppo::{RestartReason, TrainNote, ValidationReport};
use crate::engine::{self, ppo, DrawnPath, HostPolicy, TrainObserver};
use crate::eval::{Backtester, ValidationMetrics};
use crate::features::{self, FeatureSpec};
use crate::paths::write_atomic;
use crate::sim::decide::shorts_allowed;
use crate::sim::TradingRules;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

pub use super::validations::{read_validations, VALIDATIONS};

/// How a run scores the current policy on its validation bars (`update` is filled in after).
pub(super) type Judge<'a> = Box<dyn FnMut(&HostPolicy) -> Result<ValidationMetrics> + 'a>;

/// The training job's observer, for single-symbol and portfolio runs alike: they differ only in
/// how a validation is judged.
pub(super) struct JobObserver<'a, 'b> {
    ctx: &'a Ctx<'b>,
    judge: Judge<'a>,
    history: Vec<ValidationMetrics>,
    log: std::fs::File,
    log_path: PathBuf,
}

/// Opens `validations.jsonl` for appending: a torn last line (a kill mid-write) is cut off and
/// kept aside first, and said, so the next validation starts a line of its own.
fn open_log(ctx: &Ctx, path: &Path) -> Result<std::fs::File> {
    let (f, repaired) = crate::jsonl::open_append(path)?;
    if let Some(r) = repaired {
        ctx.sink.warn(r.message());
    }
    Ok(f)
}

impl<'a, 'b> JobObserver<'a, 'b> {
    /// Opens the run's `validations.jsonl` (keeping its history on a resume: the `Restart`
    /// event goes first, so the history read after it knows what the resume supersedes).
    pub(super) fn open(
        ctx: &'a Ctx<'b>,
        judge: Judge<'a>,
        resumed: Option<&ResumePoint>,
    ) -> Result<Self> {
        let log_path = ctx.dir().artifact(VALIDATIONS);
        let history = match resumed {
            Some(point) => {
                ctx.sink.emit(Event::Restart {
                    from_update: point.update(),
                    reason: RestartReason::Resume {
                        checkpoint: point.state.display().to_string(),
                    },
                });
                resumed_history(ctx)?
            }
            None => Vec::new(),
        };
        let log = open_log(ctx, &log_path)?;
        add_artifact(ctx, VALIDATIONS)?;
        Ok(JobObserver {
            ctx,
            judge,
            history,
            log,
            log_path,
        })
    }

    /// The validations recorded so far, oldest first.
    pub(super) fn take_history(&mut self) -> Vec<ValidationMetrics> {
        std::mem::take(&mut self.history)
    }

    /// Drops the validations after `update` from the history and from `validations.jsonl`
    /// (rewritten atomically; the dropped ones stay in `events.jsonl`).
    fn forget_after(&mut self, update: usize) -> Result<()> {
        self.history.retain(|v| v.update <= update);
        let mut text = Vec::new();
        for v in &self.history {
            text.extend(serde_json::to_vec(v)?);
            text.push(b'\n');
        }
        write_atomic(&self.log_path, &text)?;
        self.log = open_log(self.ctx, &self.log_path)?;
        Ok(())
    }
}

/// The history a resumed run continues: damage is an error (a resume never continues over a
/// garbled history), and validations the file lost are restored from the events, said, and
/// written back (the damaged file kept beside) so the history the run appends to is whole.
fn resumed_history(ctx: &Ctx) -> Result<Vec<crate::eval::ValidationMetrics>> {
    let h = super::validations::validation_history(ctx.dir())
        .context("cannot resume over a damaged validation history")?;
    for n in &h.notes {
        ctx.sink.warn(n.clone());
    }
    if h.recovered > 0 {
        let aside = super::validations::rewrite(ctx.dir(), &h.validations)?;
        ctx.sink.warn(format!(
            "{VALIDATIONS} rewritten with the recovered validations; the damaged file is kept as {}",
            aside.display()
        ));
    }
    Ok(h.validations)
}

impl TrainObserver for JobObserver<'_, '_> {
    fn on_update(&mut self, m: &ppo::UpdateMetrics) {
        self.ctx.sink.emit(Event::Update(m.clone()));
    }

    fn validate(&mut self, update: usize, policy: &HostPolicy) -> Result<Option<f64>> {
        Ok(self.validate_report(update, policy)?.score)
    }

    fn validate_report(&mut self, update: usize, policy: &HostPolicy) -> Result<ValidationReport> {
        let mut m = (self.judge)(policy)?;
        m.update = update;
        // Durable before anything else: a kill after this line still leaves it gateable.
        let mut line = serde_json::to_vec(&m)?;
        line.push(b'\n');
        self.log
            .write_all(&line)
            .and_then(|_| self.log.sync_data())
            .context("cannot append to validations.jsonl")?;
        self.ctx.sink.emit(Event::Validation(m.clone()));
        let report = ValidationReport {
            score: (!m.insufficient).then_some(m.fitness),
            max_drawdown: Some(m.max_drawdown),
        };
        self.history.push(m);
        Ok(report)
    }

    fn on_note(&mut self, note: &TrainNote) {
        match note {
            TrainNote::Restart {
                from_update,
                reason,
            } => {
                if let RestartReason::DrawdownRetry {
                    retry,
                    retries,
                    drawdown,
                    threshold,
                    lr_scale,
                    ent_scale,
                } = reason
                {
                    self.ctx.sink.warn(format!(
                        "validation drawdown {:.1} % reached the early-stop threshold {:.0} %: retry {retry}/{retries} from update {from_update} with lr × {lr_scale} and entropy × {ent_scale}",
                        drawdown * 100.0,
                        threshold * 100.0
                    ));
                }
                if let Err(e) = self.forget_after(*from_update) {
                    self.ctx
                        .sink
                        .error(format!("cannot rewrite {VALIDATIONS}: {e:#}"));
                }
                self.ctx.sink.emit(Event::Restart {
                    from_update: *from_update,
                    reason: reason.clone(),
                });
            }
            TrainNote::EarlyStop(info) => {
                // The final model is the last good state's: validations after it go.
                if let Err(e) = self.forget_after(info.model_update) {
                    self.ctx
                        .sink
                        .error(format!("cannot rewrite {VALIDATIONS}: {e:#}"));
                }
                self.ctx.sink.emit(Event::EarlyStop(info.clone()));
            }
            TrainNote::Warning(w) => self.ctx.sink.warn(w.clone()),
            TrainNote::Pruned(paths) => {
                let names: Vec<String> = paths
                    .iter()
                    .filter_map(|p| p.strip_prefix(&self.ctx.dir().path).ok())
                    .map(|p| p.display().to_string())
                    .collect();
                self.ctx.sink.log(
                    LogLevel::Debug,
                    format!(
                        "pruned {} checkpoint file(s): {}",
                        names.len(),
                        names.join(", ")
                    ),
                );
            }
        }
    }

    fn on_checkpoint(&mut self, path: &Path, update: usize, reason: CheckpointReason) {
        self.ctx.sink.emit(Event::Checkpoint {
            path: path.display().to_string(),
            update,
            reason,
        });
    }

    fn should_stop(&self) -> bool {
        self.ctx.cancel.is_cancelled()
    }
}

pub(super) fn train(ctx: &Ctx, symbol: &str) -> Result<String> {
    run(ctx, symbol, None)
}

/// Continues a training run in its directory (prepared by `resume`).
pub(super) fn resume(ctx: &Ctx, point: &ResumePoint) -> Result<String> {
    run(ctx, &point.meta.symbol, Some(point))
}

fn run(ctx: &Ctx, symbol: &str, resumed: Option<&ResumePoint>) -> Result<String> {
    let cfg = ctx.cfg;
    let sym = ctx.find_symbol(symbol)?;
    let device = engine::device::select(&cfg.ppo.device)?;
    let (bars, source) = ctx.load_bars(&sym)?;
    let sha = hash_bars(&bars);
    record_data(ctx, resumed, || DataRef {
        symbol: sym.name.clone(),
        timeframe: cfg.data.timeframe.to_string(),
        source: source.clone(),
        bars: bars.len(),
        first: bars.first().map(|b| b.ts),
        last: bars.last().map(|b| b.ts),
        sha256: sha.clone(),
    })?;
    let spec = FeatureSpec::current(cfg.features.window, &ctx.events);
    let sized = sized_for(ctx, &device, spec.obs_dim(), crate::sim::N_ACTIONS)?;
    let cfg = &sized;
    announce(ctx, cfg, &sym, &source, bars.len(), &device, &spec);
    let fm = features::compute(&spec, &sym, &bars, &ctx.events);
    let closes: Vec<f64> = bars.iter().map(|b| b.close).collect();
    let (train_range, val) =
        ppo::split(bars.len(), cfg.data.train_split, cfg.data.validation_split);
    let data = ppo::TrainData {
        symbol: sym.clone(),
        timeframe: cfg.data.timeframe,
        source,
        bars,
        sha256: sha,
        spec: spec.clone(),
        fm: fm.clone(),
        train: train_range,
        validation: val.clone(),
    };
    let out_dir = ctx.dir().path.clone();
    let checks = super::train_paths::validation_paths(ctx, cfg, &data)?;
    let judge = as_traded_judge(cfg, &sym, spec, (fm, closes), checks, val);
    let drawn = super::train_paths::training_paths(ctx, cfg, &data, resumed.is_some())?;
    let mut obs = JobObserver::open(ctx, judge, resumed)?;
    let state = resumed.map(|point| point.state.as_path());
    let outcome = ppo::train_on_paths(cfg, &data, &drawn, &device, &out_dir, &mut obs, state)?;
    record_outcome(ctx, &mut obs, sym.name.clone(), &outcome)?;
    Ok(outcome_message(&outcome))
}

/// Lists the run's data in the manifest; a resumed run keeps the entry its first run wrote.
pub(super) fn record_data(
    ctx: &Ctx,
    resumed: Option<&ResumePoint>,
    data: impl FnOnce() -> DataRef,
) -> Result<()> {
    if resumed.is_none() {
        ctx.run.update(|m| m.data.push(data()))?;
    }
    Ok(())
}

/// Says what a single-symbol run is about to train, and with which optimizers.
fn announce(
    ctx: &Ctx,
    cfg: &crate::config::Config,
    sym: &crate::market::Symbol,
    source: &str,
    n_bars: usize,
    device: &candle_core::Device,
    spec: &FeatureSpec,
) {
    let p = &cfg.ppo;
    ctx.sink.info(format!(
        "training {sym} ({source}, {} bars) on {} — {} updates of {} steps, layout {}",
        n_bars,
        engine::device::describe(device),
        p.updates(),
        p.steps_per_update(),
        spec.describe()
    ));
    ctx.sink.log(
        LogLevel::Debug,
        format!(
            "optimizers: actor (trunk + policy head) lr {:e}, critic (value head) lr {:e}; {} PPO epochs + {} critic-only epochs; reward {}",
            p.actor_lr,
            p.critic_lr,
            p.epochs,
            p.critic_epochs,
            cfg.env.reward.as_str()
        ),
    );
}

/// Validation judges checkpoints as paper trading will trade them: the same decision rules,
/// account, sizing and costs as the gate, walk-forward and paper (`sim::decide`), on the stored
/// path's validation range (`stored`: its features and closes) followed by the same range of
/// each drawn validation path (`synthetic.validation_paths`), chained into one history.
fn as_traded_judge<'a>(
    cfg: &crate::config::Config,
    sym: &crate::market::Symbol,
    spec: FeatureSpec,
    stored: (features::FeatureMatrix, Vec<f64>),
    drawn: Vec<DrawnPath>,
    val: std::ops::Range<usize>,
) -> Judge<'a> {
    let trading = TradingRules::from_config(cfg);
    let (class, short) = (sym.class, shorts_allowed(cfg, sym.class));
    let gating = cfg.gating.clone();
    let (fm, closes) = stored;
    Box::new(move |policy: &HostPolicy| {
        let stored = Backtester::as_traded(&spec, &fm, &closes, class, &trading, short);
        let parts: Vec<_> = std::iter::once((stored, val.clone()))
            .chain(
                drawn
                    .iter()
                    .map(|p| (stored.on(&p.fm, &p.closes), val.clone())),
            )
            .collect();
        Ok(crate::eval::validate_on(
            &parts,
            policy,
            gating.consistency_chunks,
            gating.evidence(),
        ))
    })
}

/// Lists the trained model files and writes the run's summary; returns the last validation.
pub(super) fn record_outcome(
    ctx: &Ctx,
    obs: &mut JobObserver,
    symbol: String,
    outcome: &ppo::TrainOutcome,
) -> Result<Option<ValidationMetrics>> {
    let history = obs.take_history();
    add_artifact(ctx, "model.safetensors")?;
    if outcome.best_path.is_some() {
        add_artifact(ctx, "best.safetensors")?;
    }
    let last = history.last().cloned();
    ctx.set_summary(JobSummary::Train {
        symbol,
        updates: outcome.updates_done,
        timesteps: outcome.timesteps,
        sps: outcome.sps,
        elapsed_s: outcome.elapsed_s,
        best_update: outcome.best_update,
        last_validation: last.clone(),
        cancelled: outcome.cancelled,
    })?;
    Ok(last)
}

/// How the final message says the model was saved: a cancelled run saved it before stopping.
pub(super) fn saved_note(outcome: &ppo::TrainOutcome) -> &'static str {
    if outcome.cancelled {
        " before stopping"
    } else {
        ""
    }
}

/// The single-symbol run's closing line.
fn outcome_message(outcome: &ppo::TrainOutcome) -> String {
    let resumed_note = outcome
        .resumed_from
        .map(|u| format!(" (resumed from update {u})"))
        .unwrap_or_default();
    let stop_note = outcome
        .early_stop
        .as_ref()
        .map(|e| {
            format!(
                "; stopped early at update {}: validation drawdown {:.1} % ≥ {:.0} % after {} retries, the model is update {}'s",
                e.update,
                e.drawdown * 100.0,
                e.threshold * 100.0,
                e.retries,
                e.model_update
            )
        })
        .unwrap_or_default();
    format!(
        "{} updates{resumed_note}, {} steps at {:.0} steps/s; model saved{}{stop_note}",
        outcome.updates_done,
        outcome.timesteps,
        outcome.sps,
        saved_note(outcome)
    )
}

/// Lists an artifact in the manifest once.
pub(super) fn add_artifact(ctx: &Ctx, name: &str) -> Result<()> {
    ctx.run.update(|m| {
        if !m.artifacts.iter().any(|a| a == name) {
            m.artifacts.push(name.to_string());
        }
    })
}

/// [`sized_config`], saying what it chose (or that a GPU sizing does not apply on a CPU).
pub(super) fn sized_for(
    ctx: &Ctx,
    device: &candle_core::Device,
    obs_dim: usize,
    n_actions: usize,
) -> Result<crate::config::Config> {
    let cfg = ctx.cfg;
    let (sized, sizing) = sized_config(cfg, device, obs_dim, n_actions)?;
    if device.is_cuda() {
        ctx.sink.info(sizing.describe());
    } else if !matches!(cfg.ppo.gpu_sizing, GpuSizing::Auto | GpuSizing::Off) {
        ctx.sink.warn(format!(
            "gpu_sizing = \"{}\" applies on a CUDA device only: this CPU run keeps the config's sizes",
            cfg.ppo.gpu_sizing.as_str()
        ));
    }
    if !device.is_cuda() && cfg.ppo.precision != crate::config::Precision::F32 {
        ctx.sink.warn(format!(
            "precision = \"{}\" on a CPU: the matmuls convert to and from {} (no native fast path here), so this trains slower than f32; it is meant for CUDA",
            cfg.ppo.precision.as_str(),
            cfg.ppo.precision.as_str()
        ));
    }
    Ok(sized)
}

/// The config with the GPU's sizes in place (the config's own on a CPU; see `engine::sizing`).
fn sized_config(
    cfg: &crate::config::Config,
    device: &candle_core::Device,
    obs_dim: usize,
    n_actions: usize,
) -> Result<(crate::config::Config, engine::sizing::Sizing)> {
    let on_cuda = device.is_cuda();
    let gpu = if on_cuda {
        let index = cfg
            .ppo
            .device
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        engine::sizing::probe(index)
    } else {
        None
    };
    let sizing = engine::sizing::plan(&cfg.ppo, on_cuda, gpu, obs_dim, n_actions)?;
    let mut out = cfg.clone();
    sizing.apply(&mut out.ppo);
    crate::config::validate(&out)?;
    Ok((out, sizing))
}
