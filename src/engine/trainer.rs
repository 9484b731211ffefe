//! The training loop: one `Trainer` holds a run's env, parameters, optimizers and random stream,
//! runs updates (rollout, GAE, PPO epochs, critic-only epochs), validates, checkpoints (a model
//! file for every loader plus a training state for resume), prunes, and applies the drawdown
//! early stop. Everything that decides the next update's numbers is in [`Snapshot`], so a run
//! restored from one continues bit for bit (on the same device and build).

use super::adam::ActorCriticAdam;
use super::amp::Amp;
use super::backward::{Coefs, N_STATS};
use super::checkpoint::ModelMeta;
use super::critic::CriticFit;
use super::drawn::generation;
use super::early_stop::{EarlyStop, Verdict};
use super::net::{Net, StepCtx};
use super::ppo::{
    explained_variance, gae, CheckpointReason, EarlyStopInfo, RestartReason, TrainNote,
    TrainObserver, TrainOutcome, UpdateMetrics, ValidationReport,
};
use super::prune::{checkpoint_path, prune, KeepRule};
use super::rollout::Collector;
use super::samples::Samples;
use super::schedule;
use super::state::{
    load_state, save_state, state_path, NetLayout, Progress, Snapshot, StateContext,
};
use super::train_env::TrainEnv;
use super::train_set::TrainSet;
use crate::config::{Config, Encoder};
use crate::rng::Rng;
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the training loop does after the drawdown early stop judged a validation.
enum Flow {
    Go,
    Retry,
    Stop(EarlyStopInfo),
}

pub struct Trainer<'a> {
    cfg: &'a Config,
    set: TrainSet<'a>,
    device: Device,
    out_dir: PathBuf,
    layout: NetLayout,
    updates: usize,
    env: Box<dyn TrainEnv>,
    net: Net,
    opt: ActorCriticAdam,
    rng: Rng,
    collector: Collector,
    progress: Progress,
    /// The state the drawdown early stop goes back to.
    last_good: Snapshot,
    resumed_from: Option<usize>,
    /// Env-steps this process ran (for its own speed figure).
    steps_run: u64,
    /// The update's matmul precision and f16 loss scaling (restarts at its initial scale on
    /// resume: the scaler settles within a few steps).
    amp: Amp,
    /// Said to the observer when the run starts (a large share of memory).
    memory_note: Option<String>,
    /// Updates between redraws of the training paths (0: never), and the generation of paths
    /// the env is on (`drawn::generation`).
    redraw_every: usize,
    generation: usize,
}

impl<'a> Trainer<'a> {
    pub fn new(
        cfg: &'a Config,
        set: TrainSet<'a>,
        device: &Device,
        out_dir: &Path,
    ) -> Result<Self> {
        let p = &cfg.ppo;
        let memory_note = set.check_memory(cfg, device)?;
        let env = set.env(cfg, device, 0)?;
        let net = match p.encoder {
            Encoder::Mlp => Net::mlp(
                set.obs_dim(),
                &p.hidden_dims,
                set.n_actions(),
                p.seed,
                device,
            )?,
            Encoder::Gru => Net::gru(set.gru_spec(cfg), p.gru_dropout, p.seed, device)?,
        };
        let opt = net.optimizer()?;
        let rng = Rng::derive(p.seed, "ppo");
        let collector = Collector::new(env.as_ref(), p.n_steps, device)?;
        let progress = Progress::start();
        let (actor, critic) = net.groups();
        let last_good = Snapshot {
            progress: progress.clone(),
            actor: actor.clone(),
            critic: critic.clone(),
            opt: opt.clone(),
            rng: rng.clone(),
            env: env.state(),
        };
        Ok(Trainer {
            cfg,
            set,
            device: device.clone(),
            out_dir: out_dir.to_path_buf(),
            layout: set.layout(cfg),
            updates: p.updates(),
            env,
            net,
            opt,
            rng,
            collector,
            progress,
            last_good,
            resumed_from: None,
            steps_run: 0,
            amp: Amp::new(p.precision),
            memory_note,
            redraw_every: set.redraw_every(cfg),
            generation: 0,
        })
    }

    /// Puts the env on the training paths that update `update` trains on (a new generation's
    /// envs start afresh; the same generation keeps the env as it is).
    fn enter_generation(&mut self, update: usize) -> Result<()> {
        let g = generation(update, self.redraw_every);
        if g != self.generation {
            let mut env = self.set.env(self.cfg, &self.device, g)?;
            // The run's episode count goes on (a resume or retry then restores its own).
            let mut state = env.state();
            state.episodes = self.env.episodes();
            env.restore(state)?;
            self.env = env;
            self.collector = Collector::new(self.env.as_ref(), self.cfg.ppo.n_steps, &self.device)?;
            self.generation = g;
        }
        Ok(())
    }

    /// Loads a training state saved by a run of the same configuration, data and layout.
    pub fn restore_from(&mut self, path: &Path) -> Result<()> {
        let (meta, snap) = load_state(path, self.net.groups(), &self.device)?;
        self.layout.ensure_continues(&meta.layout)?;
        if meta.updates != self.updates {
            bail!(
                "{}: the run was planned for {} updates, this configuration for {}: a resumed run keeps its schedule",
                path.display(),
                meta.updates,
                self.updates
            );
        }
        if meta.data_sha256 != self.set.sha256() || meta.symbol != self.set.name() {
            bail!(
                "{}: the run trained on {} bars with hash {}, the bars now are {} with hash {}: the data changed since (refetched, revised or re-imported); train a new run",
                path.display(),
                meta.symbol,
                short(&meta.data_sha256),
                self.set.name(),
                short(self.set.sha256())
            );
        }
        if meta.progress.update >= self.updates {
            bail!(
                "{}: the run already did all {} updates; nothing is left to resume",
                path.display(),
                self.updates
            );
        }
        self.resumed_from = Some(meta.progress.update);
        self.restore(snap, true)
    }

    fn snapshot(&self) -> Snapshot {
        let (actor, critic) = self.net.groups();
        Snapshot {
            progress: self.progress.clone(),
            actor: actor.clone(),
            critic: critic.clone(),
            opt: self.opt.clone(),
            rng: self.rng.clone(),
            env: self.env.state(),
        }
    }

    /// Continues from `s`; `whole` also takes its retry count, scales and elapsed time (a
    /// resume), else those stay (an early-stop retry keeps its new factors and the clock runs on).
    fn restore(&mut self, s: Snapshot, whole: bool) -> Result<()> {
        self.net.set_groups(s.actor.clone(), s.critic.clone());
        self.opt = s.opt.clone();
        self.rng = s.rng.clone();
        // The saved env state is on the paths of the last update it ran.
        self.enter_generation(s.progress.update)?;
        self.env.restore(s.env.clone())?;
        self.collector = Collector::new(self.env.as_ref(), self.cfg.ppo.n_steps, &self.device)?;
        let mut progress = s.progress.clone();
        if !whole {
            progress.retries_used = self.progress.retries_used;
            progress.lr_scale = self.progress.lr_scale;
            progress.ent_scale = self.progress.ent_scale;
            progress.elapsed_s = self.progress.elapsed_s;
        }
        self.progress = progress;
        self.last_good = self.snapshot();
        Ok(())
    }

    fn meta(&self, update: usize) -> ModelMeta {
        ModelMeta {
            update,
            timesteps: self.progress.timesteps,
            ..self.set.meta(self.cfg)
        }
    }

    fn save_model_file(&self, path: &Path) -> Result<()> {
        self.net.save(path, self.meta(self.progress.update))
    }

    fn save_state_file(&self) -> Result<()> {
        let ctx = StateContext {
            layout: &self.layout,
            updates: self.updates,
            symbol: self.set.name(),
            data_sha256: self.set.sha256(),
            config: self.cfg,
        };
        save_state(
            &state_path(&self.out_dir, self.progress.update),
            &self.snapshot(),
            &ctx,
        )
    }

    pub fn run(mut self, observer: &mut dyn TrainObserver) -> Result<TrainOutcome> {
        let cfg = self.cfg;
        let p = &cfg.ppo;
        let started = Instant::now();
        let elapsed_base = self.progress.elapsed_s;
        let early = EarlyStop::from_config(p);
        let best_path = self.out_dir.join("best.safetensors");
        std::fs::create_dir_all(self.out_dir.join("checkpoints"))?;
        let mut cancelled = false;
        let mut stopped: Option<EarlyStopInfo> = None;
        if let Some(w) = self.memory_note.take() {
            observer.on_note(&TrainNote::Warning(w));
        }

        while self.progress.update < self.updates {
            if observer.should_stop() {
                cancelled = true;
                break;
            }
            let update = self.progress.update + 1;
            // A cancel mid-update abandons it: the run goes back to where the update started
            // (tensors are immutable, so the snapshot costs no copy), and a resume redoes it.
            let before = self.snapshot();
            let Some(m) = self.update(update, started, elapsed_base, &|| observer.should_stop())?
            else {
                self.restore(before, true)?;
                cancelled = true;
                break;
            };
            observer.on_update(&m);
            if !update.is_multiple_of(p.validation_interval) && update != self.updates {
                continue;
            }
            let report = observer.validate_report(update, &self.net.host_policy()?)?;
            if let Some(es) = &early {
                match self.judge_early_stop(es, &report, update, observer)? {
                    Flow::Go => {}
                    Flow::Retry => continue,
                    Flow::Stop(info) => {
                        stopped = Some(info);
                        break;
                    }
                }
            }
            self.keep_checkpoints(update, report.score, &best_path, observer)?;
        }

        let model_path = self.out_dir.join("model.safetensors");
        self.save_model_file(&model_path)?;
        self.save_state_file()?;
        let done = self.progress.update;
        observer.on_checkpoint(
            &model_path,
            done,
            if cancelled {
                CheckpointReason::Cancelled
            } else {
                CheckpointReason::Final
            },
        );
        let elapsed = elapsed_base + started.elapsed().as_secs_f64();
        let run_secs = started.elapsed().as_secs_f64().max(1e-9);
        Ok(TrainOutcome {
            model_path,
            best_path: self.progress.best.map(|_| best_path),
            best_update: self.progress.best.map(|(_, u)| u),
            updates_done: done,
            timesteps: self.progress.timesteps,
            cancelled,
            early_stop: stopped,
            resumed_from: self.resumed_from,
            sps: self.steps_run as f64 / run_secs,
            elapsed_s: elapsed,
        })
    }

    /// The drawdown early stop's verdict on a validation: go on, or a retry from the last good
    /// validation (already restored), or the end of training (the model restored to it).
    fn judge_early_stop(
        &mut self,
        es: &EarlyStop,
        report: &ValidationReport,
        update: usize,
        observer: &mut dyn TrainObserver,
    ) -> Result<Flow> {
        match es.judge(report.max_drawdown, &self.progress) {
            Verdict::Fine => Ok(Flow::Go),
            Verdict::Retry {
                retry,
                lr_scale,
                ent_scale,
            } => {
                self.progress.retries_used = retry;
                self.progress.lr_scale = lr_scale;
                self.progress.ent_scale = ent_scale;
                let good = self.last_good.clone();
                let from_update = good.progress.update;
                self.restore(good, false)?;
                observer.on_note(&TrainNote::Restart {
                    from_update,
                    reason: RestartReason::DrawdownRetry {
                        retry,
                        retries: es.retries,
                        drawdown: report.max_drawdown.unwrap_or(f64::NAN),
                        threshold: es.threshold,
                        lr_scale,
                        ent_scale,
                    },
                });
                Ok(Flow::Retry)
            }
            Verdict::Stop => {
                let good = self.last_good.clone();
                let info = EarlyStopInfo {
                    update,
                    drawdown: report.max_drawdown.unwrap_or(f64::NAN),
                    threshold: es.threshold,
                    retries: es.retries,
                    model_update: good.progress.update,
                };
                self.restore(good, false)?;
                observer.on_note(&TrainNote::EarlyStop(info.clone()));
                Ok(Flow::Stop(info))
            }
        }
    }

    /// After a validation: the periodic checkpoint, the best one if this scored higher, the
    /// state file, the last good snapshot, and the pruning of checkpoints no rule keeps.
    fn keep_checkpoints(
        &mut self,
        update: usize,
        score: Option<f64>,
        best_path: &Path,
        observer: &mut dyn TrainObserver,
    ) -> Result<()> {
        let p = &self.cfg.ppo;
        let path = checkpoint_path(&self.out_dir, update);
        self.save_model_file(&path)?;
        observer.on_checkpoint(&path, update, CheckpointReason::Validation);
        // An unscored validation (too little evidence) never becomes the best checkpoint.
        let best_so_far = self.progress.best;
        if let Some(score) = score.filter(|s| best_so_far.is_none_or(|(b, _)| *s > b)) {
            self.progress.best = Some((score, update));
            self.save_model_file(best_path)?;
            observer.on_checkpoint(best_path, update, CheckpointReason::Best);
        }
        self.save_state_file()?;
        self.last_good = self.snapshot();
        let rule = KeepRule {
            validation_interval: p.validation_interval,
            keep_every: p.keep_every,
            newest: update,
            best: self.progress.best.map(|(_, u)| u),
        };
        let removed = prune(&self.out_dir, &rule)?;
        if !removed.is_empty() {
            observer.on_note(&TrainNote::Pruned(removed));
        }
        Ok(())
    }

    /// One PPO update: rollout, GAE, the PPO epochs, the critic-only epochs, metrics. `None`
    /// when `stop` said so between two minibatches (the update is then incomplete).
    fn update(
        &mut self,
        update: usize,
        started: Instant,
        elapsed_base: f64,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<UpdateMetrics>> {
        let cfg = self.cfg;
        let p = &cfg.ppo;
        let t0 = Instant::now();
        let (n, batch) = (p.n_envs, p.n_envs * p.n_steps);
        let at = update - 1;
        let lr = schedule::learning_rate(p.actor_lr, at, self.updates) * self.progress.lr_scale;
        let critic_lr =
            schedule::learning_rate(p.critic_lr, at, self.updates) * self.progress.lr_scale;
        let ent_coef = schedule::entropy_coef(p.ent_coef_start, p.ent_coef_end, at, self.updates)
            * self.progress.ent_scale;
        self.enter_generation(update)?;
        self.env
            .set_progress(at as f64 / self.updates.max(1) as f64)?;

        let ro = self
            .net
            .collect(&mut self.collector, self.env.as_mut(), &mut self.rng)?;
        let action_shares = shares(&ro.actions.to_vec1::<u32>()?, self.set.n_actions());
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
        let samples = Samples::new(&ro, adv, ret, self.net.n_actions())?;
        let coefs = Coefs {
            clip: p.clip,
            vf_coef: p.vf_coef,
            ent_coef,
        };
        let Some((mut stats_acc, n_mb)) = self.ppo_epochs(&samples, coefs, lr, critic_lr, stop)?
        else {
            return Ok(None);
        };
        let critic_fit = self.critic_epochs(&samples, critic_lr, stop)?;
        if stop() {
            return Ok(None);
        }
        let critic_n = critic_fit.as_ref().map_or(0, |(_, k)| *k);
        if let Some((loss, _)) = critic_fit {
            stats_acc = Tensor::cat(&[&stats_acc, &loss], 0)?;
        }
        let stats = finite_stats(&stats_acc, update, cfg)?;
        let reward_parts = self.env.take_reward_parts()?;
        self.progress.update = update;
        self.progress.timesteps += batch as u64;
        self.steps_run += batch as u64;
        self.progress.elapsed_s = elapsed_base + started.elapsed().as_secs_f64();
        let k = n_mb.max(1) as f64;
        Ok(Some(UpdateMetrics {
            update,
            updates: self.updates,
            timesteps: self.progress.timesteps,
            sps: batch as f64 / t0.elapsed().as_secs_f64().max(1e-9),
            mean_reward: ro.rewards.iter().map(|r| *r as f64).sum::<f64>()
                / ro.rewards.len().max(1) as f64,
            policy_loss: stats[0] / k,
            value_loss: stats[1] / k,
            entropy: stats[2] / k,
            approx_kl: stats[3] / k,
            clip_fraction: stats[4] / k,
            explained_variance: ev,
            lr,
            ent_coef,
            elapsed_s: self.progress.elapsed_s,
            critic_lr,
            critic_loss: stats.get(N_STATS).map(|s| s / critic_n.max(1) as f64),
            episodes: self.env.episodes(),
            reward_parts,
            action_shares,
        }))
    }

    /// The critic-only epochs on the update's samples (see `critic`).
    fn critic_epochs(
        &mut self,
        samples: &Samples,
        critic_lr: f64,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<(Tensor, usize)>> {
        let p = &self.cfg.ppo;
        let fit = CriticFit {
            epochs: p.critic_epochs,
            minibatch: p.minibatch,
            lr: critic_lr,
            vf_coef: p.vf_coef,
            max_grad_norm: p.max_grad_norm,
            stop,
        };
        self.net.critic_fit(
            &mut self.opt,
            samples.obs(),
            &samples.returns()?,
            &mut self.rng,
            fit,
        )
    }

    /// The PPO epochs over shuffled minibatches; the summed statistics and the minibatch count,
    /// or `None` when `stop` said so between two minibatches.
    fn ppo_epochs(
        &mut self,
        samples: &Samples,
        coefs: Coefs,
        lr: f64,
        critic_lr: f64,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<(Tensor, usize)>> {
        let p = &self.cfg.ppo;
        let batch = p.n_envs * p.n_steps;
        let mut stats_acc = Tensor::zeros(N_STATS, DType::F32, &self.device)?;
        let mut n_mb = 0usize;
        let mut order: Vec<u32> = (0..batch as u32).collect();
        for _ in 0..p.epochs {
            self.rng.shuffle(&mut order);
            for mb in order.chunks(p.minibatch) {
                if stop() {
                    return Ok(None);
                }
                if mb.len() < 2 {
                    continue;
                }
                let ix = Tensor::from_slice(mb, mb.len(), &self.device)?;
                let gathered = samples.gather(&ix)?;
                let ctx = StepCtx {
                    coefs,
                    lr,
                    critic_lr,
                    max_grad_norm: p.max_grad_norm,
                    amp: &mut self.amp,
                    rng: &mut self.rng,
                };
                let st = self.net.ppo_step(&mut self.opt, &gathered.batch(), ctx)?;
                stats_acc = (stats_acc + st)?;
                n_mb += 1;
            }
        }
        Ok(Some((stats_acc, n_mb)))
    }
}

/// The one read of an update's statistics from the device; a non-finite one is a diverged run,
/// reported with the settings that scale the loss.
fn finite_stats(stats_acc: &Tensor, update: usize, cfg: &Config) -> Result<Vec<f64>> {
    let p = &cfg.ppo;
    let stats: Vec<f64> = stats_acc
        .to_vec1::<f32>()?
        .into_iter()
        .map(f64::from)
        .collect();
    if stats.iter().any(|s| !s.is_finite()) {
        bail!(
            "training diverged at update {update} (a non-finite loss): the settings that scale it are ppo.actor_lr = {}, ppo.critic_lr = {}, env.reward_scale = {}, ppo.vf_coef = {}, ppo.ent_coef_start = {}, ppo.max_grad_norm = {}; lower the one out of line, or check the bars (`quantdeck data check`)",
            p.actor_lr,
            p.critic_lr,
            cfg.env.reward_scale,
            p.vf_coef,
            p.ent_coef_start,
            p.max_grad_norm
        );
    }
    Ok(stats)
}

/// Each action's share of `actions` (indices below `n`).
fn shares(actions: &[u32], n: usize) -> Vec<f64> {
    let mut counts = vec![0usize; n];
    for &a in actions {
        if let Some(c) = counts.get_mut(a as usize) {
            *c += 1;
        }
    }
    let total = actions.len().max(1) as f64;
    counts.into_iter().map(|c| c as f64 / total).collect()
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}
