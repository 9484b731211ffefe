//! PPO on the vectorized env: rollouts with Gumbel-max sampling from seeded host noise
//! (`rollout`), GAE on the host (a few thousand values per update), then minibatch epochs of the
//! clipped surrogate + value loss + entropy bonus with a hand-written backward (`backward`) and
//! Adam with global-norm clipping over flat parameter buffers (`flat`); the statistics stay on
//! the device until the update's end. A metrics record per update. Validation is delegated to the caller (the job
//! wires in `eval`), which keeps the engine free of evaluation policy.

use super::backward::{ppo_grad, Batch, Coefs, N_STATS};
use super::checkpoint::{save_model, ModelMeta, FORMAT};
use super::env::VecEnv;
use super::flat::{FlatAdam, FlatParams};
use super::rollout::{Collector, Rollout};
use super::{schedule, ActorCritic, HostPolicy};
use crate::config::Config;
use crate::features::{FeatureMatrix, FeatureSpec};
use crate::market::{Bar, Symbol, Timeframe};
use crate::rng::Rng;
use crate::sim::{Rules, ACTION_MEANINGS, N_ACTIONS};
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    pub lr: f64,
    pub ent_coef: f64,
    pub elapsed_s: f64,
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

/// The job's side of training: progress, validation, checkpoints and cancellation.
pub trait TrainObserver {
    fn on_update(&mut self, m: &UpdateMetrics);
    /// Scores the current policy on held-out bars; a higher score is a better checkpoint.
    /// `None`: the evaluation had too little evidence to be scored (too few trades or days).
    fn validate(&mut self, update: usize, policy: &HostPolicy) -> Result<Option<f64>>;
    fn on_checkpoint(&mut self, path: &Path, update: usize, reason: CheckpointReason);
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

pub fn train(
    cfg: &Config,
    data: &TrainData,
    device: &Device,
    out_dir: &Path,
    observer: &mut dyn TrainObserver,
) -> Result<TrainOutcome> {
    let p = &cfg.ppo;
    let (spec, fm) = (&data.spec, &data.fm);
    let closes: Vec<f64> = data.bars.iter().map(|b| b.close).collect();
    let train_range = data.train.clone();
    if train_range.is_empty() || data.validation.is_empty() {
        bail!(
            "{} bars are too few to split into training and validation ranges",
            data.bars.len()
        );
    }
    let rules = Rules::training(&cfg.env, data.symbol.class);
    let mut env = VecEnv::new(
        spec,
        fm,
        &closes,
        train_range.clone(),
        rules,
        cfg.env.episode_len,
        cfg.env.reward_scale,
        p.n_envs,
        p.seed,
        device,
    )?;
    let model = ActorCritic::new(spec.obs_dim(), &p.hidden_dims, N_ACTIONS, p.seed, device)?;
    let mut params = FlatParams::from_model(&model)?;
    let mut opt = FlatAdam::new(&params)?;
    let updates = p.updates();
    let (n, s_len) = (p.n_envs, p.n_steps);
    let batch = n * s_len;
    let mut rng = Rng::derive(p.seed, "ppo");
    std::fs::create_dir_all(out_dir.join("checkpoints"))?;

    let meta_for = |update: usize, timesteps: u64| ModelMeta {
        format: FORMAT.to_string(),
        quantdeck_version: env!("CARGO_PKG_VERSION").to_string(),
        symbol: data.symbol.name.clone(),
        class: data.symbol.class,
        timeframe: data.timeframe,
        source: data.source.clone(),
        feature_spec: spec.clone(),
        action_meanings: ACTION_MEANINGS.iter().map(|s| s.to_string()).collect(),
        obs_dim: spec.obs_dim(),
        hidden_dims: p.hidden_dims.clone(),
        n_actions: N_ACTIONS,
        param_count: model.param_count(),
        train_first: data.bars[train_range.start].ts,
        train_last: data.bars[train_range.end.saturating_sub(1)].ts,
        val_first: Some(data.bars[data.validation.start].ts),
        val_last: Some(data.bars[data.validation.end - 1].ts),
        data_first: data.bars[0].ts,
        data_last: data.bars[data.bars.len() - 1].ts,
        data_sha256: data.sha256.clone(),
        update,
        timesteps,
        created: chrono::Utc::now(),
        config: cfg.clone(),
        portfolio: None,
    };

    let started = Instant::now();
    let mut collector = Collector::new(&env, s_len, device)?;
    let mut timesteps = 0u64;
    let mut best: Option<(f64, usize)> = None;
    let best_path = out_dir.join("best.safetensors");
    let mut done_updates = 0;
    let mut cancelled = false;

    for update in 1..=updates {
        if observer.should_stop() {
            cancelled = true;
            break;
        }
        let t0 = Instant::now();
        let lr = schedule::learning_rate(p.lr, update - 1, updates);
        let ent_coef =
            schedule::entropy_coef(p.ent_coef_start, p.ent_coef_end, update - 1, updates);

        let ro = collector.collect(&mut env, &params, &mut rng)?;
        let (adv, ret) = gae(
            &ro.rewards,
            &ro.values,
            &ro.dones,
            &ro.last_value,
            n,
            p.gamma as f32,
            p.gae_lambda as f32,
        );
        let ev = explained_variance(&ro.values, &ret);
        let samples = Samples::new(&ro, adv, ret)?;
        let coefs = Coefs {
            clip: p.clip,
            vf_coef: p.vf_coef,
            ent_coef,
        };
        let mut stats_acc = Tensor::zeros(N_STATS, DType::F32, device)?;
        let mut n_mb = 0usize;
        let mut order: Vec<u32> = (0..batch as u32).collect();
        for _ in 0..p.epochs {
            rng.shuffle(&mut order);
            for mb in order.chunks(p.minibatch) {
                if mb.len() < 2 {
                    continue;
                }
                let ix = Tensor::from_slice(mb, mb.len(), device)?;
                let gathered = samples.gather(&ix)?;
                let (grad, st) = ppo_grad(&params.layers()?, &gathered.batch(), coefs)?;
                opt.step(&mut params, &grad, lr, p.max_grad_norm)?;
                stats_acc = (stats_acc + st)?;
                n_mb += 1;
            }
        }
        // The one read of the update's statistics.
        let stats: Vec<f64> = stats_acc
            .to_vec1::<f32>()?
            .into_iter()
            .map(f64::from)
            .collect();
        let rewards = ro.rewards;
        if stats.iter().any(|s| !s.is_finite()) {
            bail!("training diverged at update {update} (non-finite loss): lower ppo.lr or check the data");
        }
        timesteps += batch as u64;
        done_updates = update;
        let k = n_mb.max(1) as f64;
        let m = UpdateMetrics {
            update,
            updates,
            timesteps,
            sps: batch as f64 / t0.elapsed().as_secs_f64().max(1e-9),
            mean_reward: rewards.iter().map(|r| *r as f64).sum::<f64>()
                / rewards.len().max(1) as f64,
            policy_loss: stats[0] / k,
            value_loss: stats[1] / k,
            entropy: stats[2] / k,
            approx_kl: stats[3] / k,
            clip_fraction: stats[4] / k,
            explained_variance: ev,
            lr,
            ent_coef,
            elapsed_s: started.elapsed().as_secs_f64(),
        };
        observer.on_update(&m);

        if update % p.validation_interval == 0 || update == updates {
            params.write_to(&model)?;
            let score = observer.validate(update, &HostPolicy::from_model(&model)?)?;
            let path = out_dir
                .join("checkpoints")
                .join(format!("update_{update:05}.safetensors"));
            save_model(&path, &model, &meta_for(update, timesteps))?;
            observer.on_checkpoint(&path, update, CheckpointReason::Validation);
            // An unscored validation (too little evidence) never becomes the best checkpoint.
            if let Some(score) = score.filter(|s| best.is_none_or(|(b, _)| *s > b)) {
                best = Some((score, update));
                save_model(&best_path, &model, &meta_for(update, timesteps))?;
                observer.on_checkpoint(&best_path, update, CheckpointReason::Best);
            }
        }
    }

    params.write_to(&model)?;
    let model_path = out_dir.join("model.safetensors");
    save_model(&model_path, &model, &meta_for(done_updates, timesteps))?;
    observer.on_checkpoint(
        &model_path,
        done_updates,
        if cancelled {
            CheckpointReason::Cancelled
        } else {
            CheckpointReason::Final
        },
    );
    let elapsed = started.elapsed().as_secs_f64();
    Ok(TrainOutcome {
        model_path,
        best_path: best.map(|_| best_path),
        best_update: best.map(|(_, u)| u),
        updates_done: done_updates,
        timesteps,
        cancelled,
        sps: timesteps as f64 / elapsed.max(1e-9),
        elapsed_s: elapsed,
    })
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

fn normalize(x: &Tensor) -> Result<Tensor> {
    let mean = x.mean_all()?;
    let centered = x.broadcast_sub(&mean)?;
    let std = (centered.sqr()?.mean_all()?.sqrt()? + 1e-8)?;
    Ok(centered.broadcast_div(&std)?)
}

/// The rollout's per-sample training data on the device: observations, and one packed
/// `[S·N, A + 3]` table (taken action one-hot, old log-probability, advantage, return) so that a
/// minibatch is two gathers.
struct Samples {
    obs: Tensor,
    table: Tensor,
    n_actions: usize,
}

struct Gathered {
    obs: Tensor,
    onehot: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    returns: Tensor,
}

impl Samples {
    fn new(ro: &Rollout, adv: Vec<f32>, ret: Vec<f32>) -> Result<Self> {
        let device = ro.obs.device();
        let batch = adv.len();
        let onehot = ro
            .actions
            .unsqueeze(1)?
            .broadcast_eq(&Tensor::arange(0u32, N_ACTIONS as u32, device)?.unsqueeze(0)?)?
            .to_dtype(DType::F32)?;
        let table = Tensor::cat(
            &[
                onehot,
                ro.logp.unsqueeze(1)?,
                Tensor::from_vec(adv, (batch, 1), device)?,
                Tensor::from_vec(ret, (batch, 1), device)?,
            ],
            1,
        )?;
        Ok(Samples {
            obs: ro.obs.clone(),
            table,
            n_actions: N_ACTIONS,
        })
    }

    fn gather(&self, ix: &Tensor) -> Result<Gathered> {
        let t = self.table.index_select(ix, 0)?;
        let a = self.n_actions;
        let col = |k: usize| -> Result<Tensor> { Ok(t.narrow(1, k, 1)?.squeeze(1)?) };
        Ok(Gathered {
            obs: self.obs.index_select(ix, 0)?,
            onehot: t.narrow(1, 0, a)?,
            old_logp: col(a)?,
            adv: normalize(&col(a + 1)?)?,
            returns: col(a + 2)?,
        })
    }
}

impl Gathered {
    fn batch(&self) -> Batch<'_> {
        Batch {
            obs: &self.obs,
            onehot: &self.onehot,
            old_logp: &self.old_logp,
            adv: &self.adv,
            returns: &self.returns,
        }
    }
}
