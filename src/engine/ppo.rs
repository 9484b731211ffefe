//! PPO on the vectorized env: rollouts with Gumbel-max sampling from seeded host noise
//! (`rollout`), GAE on the host (a few thousand values per update), then minibatch epochs of the
//! clipped surrogate + value loss + entropy bonus with a hand-written backward (`backward`), the
//! actor's and the critic's Adam over flat parameter buffers with joint global-norm clipping
//! (`flat`, `adam`), and critic-only epochs (`critic`); the statistics stay on the device until
//! the update's end. A metrics record per update. The loop itself is `trainer`; checkpoints carry
//! a training state for exact resume (`state`); old checkpoints are pruned (`prune`).
//! Validation is delegated to the caller (the job wires in `eval`), which keeps the engine free
//! of evaluation policy.

use super::train_set::TrainSet;
use super::trainer::Trainer;
use crate::config::Config;
use crate::features::portfolio::{PortfolioFeatures, PortfolioSpec};
use crate::features::{FeatureMatrix, FeatureSpec};
use crate::market::{Bar, Symbol, Timeframe};
use crate::sim::portfolio::{PortfolioRules, Tape};
use crate::sim::reward::RewardPart;
use anyhow::Result;
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::HostPolicy;

/// Metrics of one PPO update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateMetrics {
    pub update: usize,
    pub updates: usize,
    pub timesteps: u64,
    pub sps: f64,
    pub mean_reward: f64,
    pub policy_loss: f64,
    pub value_loss: f64,
    pub entropy: f64,
    pub approx_kl: f64,
    pub clip_fraction: f64,
    pub explained_variance: f64,
    /// The actor's learning rate.
    pub lr: f64,
    pub ent_coef: f64,
    pub elapsed_s: f64,
    /// The critic's learning rate.
    #[serde(default)]
    pub critic_lr: f64,
    /// Mean value loss of the critic-only epochs (None without them).
    #[serde(default)]
    pub critic_loss: Option<f64>,
    /// Episodes ended so far (all envs).
    #[serde(default)]
    pub episodes: u64,
    /// Per reward component, its mean weighted value and share (empty for the P&L reward).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reward_parts: Vec<RewardPart>,
    /// Share of each action among the rollout's steps, in action-index order (8 for a
    /// single-symbol run, the 12 regimes for a portfolio run; empty in older records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub action_shares: Vec<f64>,
}

/// Why a model file was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointReason {
    /// A periodic checkpoint at a validation.
    Validation,
    /// The best validation so far (`best.safetensors`).
    Best,
    /// The end of training (`model.safetensors`).
    Final,
    /// Saved on the way out of a cancelled run.
    Cancelled,
}

impl CheckpointReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointReason::Validation => "validation",
            CheckpointReason::Best => "best",
            CheckpointReason::Final => "final",
            CheckpointReason::Cancelled => "cancelled",
        }
    }
}

/// Why a run's curves go back to an earlier update: what came after it is superseded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RestartReason {
    /// `train --resume` / `--checkpoint`: continued from this state file.
    Resume { checkpoint: String },
    /// Drawdown early stop: a validation's drawdown reached the threshold; retry `retry` of
    /// `retries` restarts from the last good state with these factors on lr and entropy.
    DrawdownRetry {
        retry: usize,
        retries: usize,
        drawdown: f64,
        threshold: f64,
        lr_scale: f64,
        ent_scale: f64,
    },
}

/// The drawdown early stop ended training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopInfo {
    /// The validation that found the drawdown.
    pub update: usize,
    pub drawdown: f64,
    pub threshold: f64,
    pub retries: usize,
    /// The update of the last good state, which the final model holds.
    pub model_update: usize,
}

/// What training tells its observer besides metrics and checkpoints.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainNote {
    /// Updates after `from_update` are superseded: the run continues from there.
    Restart {
        from_update: usize,
        reason: RestartReason,
    },
    EarlyStop(EarlyStopInfo),
    /// Periodic checkpoints removed by the keep rule (`prune`).
    Pruned(Vec<PathBuf>),
    /// Something the user should know before the run starts (a large share of memory).
    Warning(String),
}

/// A validation's outcome as training uses it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidationReport {
    /// Higher is a better checkpoint; None: too little evidence to be scored.
    pub score: Option<f64>,
    /// The validation's maximum drawdown (for the drawdown early stop).
    pub max_drawdown: Option<f64>,
}

/// A series to train on, its features, the split, and its provenance for the model's metadata.
pub struct TrainData {
    pub symbol: Symbol,
    pub timeframe: Timeframe,
    pub source: String,
    pub bars: Vec<Bar>,
    pub sha256: String,
    pub spec: FeatureSpec,
    pub fm: FeatureMatrix,
    /// Bar index ranges: the policy trains on `train`; checkpoints are chosen on `validation`,
    /// which follows it. Both are recorded in every model file.
    pub train: Range<usize>,
    pub validation: Range<usize>,
}

/// A universe to train one portfolio policy on: the aligned panel's step features, the tape the
/// `sim` portfolio rules trade on, the split over panel rows, and provenance for the model files.
pub struct PortfolioTrainData {
    /// What the model files call the portfolio (`symbol` in their metadata).
    pub name: String,
    pub source: String,
    /// The panel's hash (`Panel::sha256`).
    pub sha256: String,
    pub spec: PortfolioSpec,
    pub features: PortfolioFeatures,
    pub tape: Tape,
    pub rules: PortfolioRules,
    /// Panel row ranges, as [`TrainData`]'s: the rows after `validation` are out of sample.
    pub train: Range<usize>,
    pub validation: Range<usize>,
}

/// The job's side of training: progress, validation, checkpoints and cancellation.
pub trait TrainObserver {
    fn on_update(&mut self, m: &UpdateMetrics);
    /// Scores the current policy on held-out bars; a higher score is a better checkpoint.
    /// `None`: the evaluation had too little evidence to be scored (too few trades or days).
    fn validate(&mut self, update: usize, policy: &HostPolicy) -> Result<Option<f64>>;
    /// [`TrainObserver::validate`] with the validation's drawdown, which the drawdown early
    /// stop needs; by default without it (the early stop then never fires).
    fn validate_report(&mut self, update: usize, policy: &HostPolicy) -> Result<ValidationReport> {
        Ok(ValidationReport {
            score: self.validate(update, policy)?,
            max_drawdown: None,
        })
    }
    fn on_checkpoint(&mut self, path: &Path, update: usize, reason: CheckpointReason);
    fn on_note(&mut self, _note: &TrainNote) {}
    fn should_stop(&self) -> bool;
}

#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The final (or, when cancelled, the last) model.
    pub model_path: PathBuf,
    /// The checkpoint with the best validation score.
    pub best_path: Option<PathBuf>,
    pub best_update: Option<usize>,
    pub updates_done: usize,
    pub timesteps: u64,
    pub cancelled: bool,
    /// The drawdown early stop ended training.
    pub early_stop: Option<EarlyStopInfo>,
    /// The update this run continued from, when it was resumed.
    pub resumed_from: Option<usize>,
    pub sps: f64,
    pub elapsed_s: f64,
}

/// Bar index ranges of the chronological split: train, then validation. The bars after them
/// are out of sample; evaluation finds them from the dates the model records, not from here.
pub fn split(n: usize, train_split: f64, validation_split: f64) -> (Range<usize>, Range<usize>) {
    let a = (n as f64 * train_split) as usize;
    let b = ((n as f64 * (train_split + validation_split)) as usize).max(a);
    (0..a, a..b)
}

/// Trains from scratch into `out_dir`.
pub fn train(
    cfg: &Config,
    data: &TrainData,
    device: &Device,
    out_dir: &Path,
    observer: &mut dyn TrainObserver,
) -> Result<TrainOutcome> {
    let none = super::drawn::TrainPaths::default();
    train_on_paths(cfg, data, &none, device, out_dir, observer, None)
}

/// [`train`] (or, given a training `state`, [`resume`]) with episodes drawn from `paths` instead
/// of `data`'s training range (`engine::drawn`); none: `data`'s training range. `data` still
/// gives the validation bars and the provenance.
pub fn train_on_paths(
    cfg: &Config,
    data: &TrainData,
    paths: &super::drawn::TrainPaths,
    device: &Device,
    out_dir: &Path,
    observer: &mut dyn TrainObserver,
    state: Option<&Path>,
) -> Result<TrainOutcome> {
    let mut t = Trainer::new(cfg, TrainSet::Series(data, paths), device, out_dir)?;
    if let Some(state) = state {
        t.restore_from(state)?;
    }
    t.run(observer)
}

/// Trains one portfolio policy over a universe (12 regime actions) from scratch into `out_dir`:
/// the same PPO, optimizers, critic epochs, checkpoints and early stop as [`train`].
pub fn train_portfolio(
    cfg: &Config,
    data: &PortfolioTrainData,
    device: &Device,
    out_dir: &Path,
    observer: &mut dyn TrainObserver,
) -> Result<TrainOutcome> {
    Trainer::new(cfg, TrainSet::Portfolio(data), device, out_dir)?.run(observer)
}

/// [`resume`] for a portfolio run.
pub fn resume_portfolio(
    cfg: &Config,
    data: &PortfolioTrainData,
    device: &Device,
    out_dir: &Path,
    observer: &mut dyn TrainObserver,
    state: &Path,
) -> Result<TrainOutcome> {
    let mut t = Trainer::new(cfg, TrainSet::Portfolio(data), device, out_dir)?;
    t.restore_from(state)?;
    t.run(observer)
}

/// Continues the run whose training state is `state` (a file under `out_dir/state/`): the same
/// schedules, random streams and env, so the curves continue where they stopped. `cfg` must be
/// the run's configuration (the state records it); a different network layout, another horizon
/// or other bars are refused.
pub fn resume(
    cfg: &Config,
    data: &TrainData,
    device: &Device,
    out_dir: &Path,
    observer: &mut dyn TrainObserver,
    state: &Path,
) -> Result<TrainOutcome> {
    let none = super::drawn::TrainPaths::default();
    train_on_paths(cfg, data, &none, device, out_dir, observer, Some(state))
}

/// Generalised advantage estimation over a rollout laid out step-major ([S][N] flattened).
/// A restart ends the episode: no bootstrapping across it.
pub fn gae(
    rewards: &[f32],
    values: &[f32],
    dones: &[bool],
    last_value: &[f32],
    n: usize,
    gamma: f32,
    lambda: f32,
) -> (Vec<f32>, Vec<f32>) {
    let steps = rewards.len() / n;
    let mut adv = vec![0f32; rewards.len()];
    let mut next_adv = vec![0f32; n];
    let mut next_val = last_value.to_vec();
    for s in (0..steps).rev() {
        for i in 0..n {
            let k = s * n + i;
            let live = if dones[k] { 0.0 } else { 1.0 };
            let delta = rewards[k] + gamma * next_val[i] * live - values[k];
            next_adv[i] = delta + gamma * lambda * live * next_adv[i];
            adv[k] = next_adv[i];
            next_val[i] = values[k];
        }
    }
    let ret = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, ret)
}

/// 1 − Var(returns − values) / Var(returns): how much of the return the critic explains.
pub fn explained_variance(values: &[f32], returns: &[f32]) -> f64 {
    let var = |xs: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = xs.collect();
        let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len().max(1) as f64
    };
    let vr = var(&mut returns.iter().map(|&r| r as f64));
    if vr <= 1e-12 {
        return 0.0;
    }
    1.0 - var(&mut returns.iter().zip(values).map(|(r, v)| (*r - *v) as f64)) / vr
}
