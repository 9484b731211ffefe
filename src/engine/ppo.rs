//! PPO on the vectorized env: rollouts with Gumbel-max sampling from seeded host noise, GAE,
//! clipped surrogate + value loss + entropy bonus, Adam with global-norm gradient clipping,
//! minibatches, and a metrics record per update. Validation is delegated to the caller (the job
//! wires in `eval`), which keeps the engine free of evaluation policy.

use super::checkpoint::{save_model, ModelMeta, FORMAT};
use super::env::VecEnv;
use super::{schedule, ActorCritic, HostPolicy};
use crate::config::Config;
use crate::features::{FeatureMatrix, FeatureSpec};
use crate::market::{Bar, Symbol, Timeframe};
use crate::rng::Rng;
use crate::sim::{Rules, ACTION_MEANINGS, N_ACTIONS};
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
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
    let mut opt = AdamW::new(
        model.vars(),
        ParamsAdamW {
            lr: p.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
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
    };

    let started = Instant::now();
    let mut obs = env.observe()?;
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
        opt.set_learning_rate(lr);

        // Rollout.
        let (mut obs_buf, mut act_buf, mut logp_buf, mut val_buf) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut rewards = Vec::with_capacity(batch);
        let mut dones = Vec::with_capacity(batch);
        for _ in 0..s_len {
            let (logits, value) = model.forward(&obs)?;
            let logits = logits.detach();
            let noise: Vec<f32> = (0..n * N_ACTIONS)
                .map(|_| {
                    let u = rng.uniform().clamp(1e-12, 1.0 - 1e-12);
                    -(-(u.ln())).ln() as f32
                })
                .collect();
            let gumbel = Tensor::from_vec(noise, (n, N_ACTIONS), device)?;
            let actions = (&logits + gumbel)?.argmax(D::Minus1)?;
            let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?
                .gather(&actions.unsqueeze(1)?, 1)?
                .squeeze(1)?;
            let (r, d) = env.step(&actions)?;
            obs_buf.push(obs.detach());
            act_buf.push(actions);
            logp_buf.push(logp);
            val_buf.push(value.detach());
            rewards.extend(r.to_vec1::<f32>()?);
            dones.extend(d);
            obs = env.observe()?;
        }
        let (_, last_value) = model.forward(&obs)?;
        let last_value = last_value.to_vec1::<f32>()?;
        let values: Vec<f32> = Tensor::cat(&val_buf, 0)?.to_vec1()?;
        let (adv, ret) = gae(
            &rewards,
            &values,
            &dones,
            &last_value,
            n,
            p.gamma as f32,
            p.gae_lambda as f32,
        );
        let ev = explained_variance(&values, &ret);

        let obs_all = Tensor::cat(&obs_buf, 0)?;
        let act_all = Tensor::cat(&act_buf, 0)?;
        let logp_all = Tensor::cat(&logp_buf, 0)?;
        let adv_all = Tensor::from_vec(adv, batch, device)?;
        let ret_all = Tensor::from_vec(ret, batch, device)?;

        // Optimisation.
        let mut stats = [0f64; 5]; // policy loss, value loss, entropy, kl, clip fraction
        let mut n_mb = 0usize;
        let mut order: Vec<u32> = (0..batch as u32).collect();
        for _ in 0..p.epochs {
            rng.shuffle(&mut order);
            for mb in order.chunks(p.minibatch) {
                if mb.len() < 2 {
                    continue;
                }
                let ix = Tensor::from_slice(mb, mb.len(), device)?;
                let o = obs_all.index_select(&ix, 0)?;
                let a = act_all.index_select(&ix, 0)?;
                let old = logp_all.index_select(&ix, 0)?;
                let adv = normalize(&adv_all.index_select(&ix, 0)?)?;
                let ret = ret_all.index_select(&ix, 0)?;
                let (logits, v) = model.forward(&o)?;
                let logp_full = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
                let logp = logp_full.gather(&a.unsqueeze(1)?, 1)?.squeeze(1)?;
                let log_ratio = (&logp - &old)?;
                let ratio = log_ratio.exp()?;
                let s1 = (&ratio * &adv)?;
                let s2 = (ratio.clamp(1.0 - p.clip, 1.0 + p.clip)? * &adv)?;
                let pg = s1.minimum(&s2)?.mean_all()?.neg()?;
                let vl = ((&v - &ret)?.sqr()?.mean_all()? * 0.5)?;
                let ent = (logp_full.exp()? * &logp_full)?
                    .sum(D::Minus1)?
                    .mean_all()?
                    .neg()?;
                let loss = ((&pg + (&vl * p.vf_coef)?)? - (&ent * ent_coef)?)?;
                let mut grads = loss.backward()?;
                clip_grad_norm(&model, &mut grads, p.max_grad_norm)?;
                opt.step(&grads)?;

                let kl = ((&ratio - 1.0)? - &log_ratio)?.mean_all()?;
                let clipped = (&ratio - 1.0)?
                    .abs()?
                    .gt(p.clip)?
                    .to_dtype(DType::F32)?
                    .mean_all()?;
                for (slot, t) in stats.iter_mut().zip([&pg, &vl, &ent, &kl, &clipped]) {
                    *slot += t.to_scalar::<f32>()? as f64;
                }
                n_mb += 1;
            }
        }
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

fn clip_grad_norm(
    model: &ActorCritic,
    grads: &mut candle_core::backprop::GradStore,
    max_norm: f64,
) -> Result<()> {
    let vars = model.vars();
    let mut total = 0f64;
    for v in &vars {
        if let Some(g) = grads.get(v) {
            total += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = total.sqrt();
    if norm > max_norm && norm.is_finite() {
        let scale = max_norm / (norm + 1e-6);
        for v in &vars {
            if let Some(g) = grads.remove(v) {
                grads.insert(v, (g * scale)?);
            }
        }
    }
    Ok(())
}
