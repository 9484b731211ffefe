//! The network a run trains, as the trainer calls it: the MLP actor-critic (hand-written
//! backward, `backward`) or the GRU (`gru_train`, hand-written backward through time,
//! `gru_bptt`). Both keep their parameters as the
//! same two optimizer groups, so snapshots, resume, Adam and clipping are shared.

use super::adam::ActorCriticAdam;
use super::amp::Amp;
use super::backward::{ppo_grad_mm, Batch, Coefs};
use super::checkpoint::{save_gru_model, save_model, ModelMeta};
use super::critic::{self, CriticFit};
use super::flat::FlatParams;
use super::gru::GruSpec;
use super::gru_train::{self, GruParams};
use super::host_gru::HostGru;
use super::rollout::{mlp_policy, Collector, Rollout};
use super::train_env::TrainEnv;
use super::{ActorCritic, HostPolicy};
use crate::rng::Rng;
use anyhow::Result;
use candle_core::{Device, Tensor};
use std::path::Path;

pub enum Net {
    Mlp {
        model: ActorCritic,
        params: FlatParams,
    },
    Gru {
        params: GruParams,
        /// Dropout after the encoder in the PPO epochs (`ppo.gru_dropout`).
        dropout: f64,
    },
}

/// What one PPO minibatch step needs besides the batch.
pub struct StepCtx<'a> {
    pub coefs: Coefs,
    pub lr: f64,
    pub critic_lr: f64,
    pub max_grad_norm: f64,
    pub amp: &'a mut Amp,
    pub rng: &'a mut Rng,
}

impl Net {
    pub fn mlp(
        obs_dim: usize,
        hidden: &[usize],
        n_actions: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let model = ActorCritic::new(obs_dim, hidden, n_actions, seed, device)?;
        let params = FlatParams::from_model(&model)?;
        Ok(Net::Mlp { model, params })
    }

    pub fn gru(spec: GruSpec, dropout: f64, seed: u64, device: &Device) -> Result<Self> {
        Ok(Net::Gru {
            params: GruParams::new(spec, seed, device)?,
            dropout,
        })
    }

    /// The (actor, critic) parameter groups.
    pub fn groups(&self) -> (&Tensor, &Tensor) {
        match self {
            Net::Mlp { params, .. } => (&params.actor, &params.critic),
            Net::Gru { params, .. } => (&params.actor, &params.critic),
        }
    }

    pub fn set_groups(&mut self, actor: Tensor, critic: Tensor) {
        let (a, c) = match self {
            Net::Mlp { params, .. } => (&mut params.actor, &mut params.critic),
            Net::Gru { params, .. } => (&mut params.actor, &mut params.critic),
        };
        *a = actor;
        *c = critic;
    }

    pub fn optimizer(&self) -> Result<ActorCriticAdam> {
        let (a, c) = self.groups();
        ActorCriticAdam::for_groups(a, c)
    }

    pub fn n_actions(&self) -> usize {
        match self {
            Net::Mlp { params, .. } => params.n_actions(),
            Net::Gru { params, .. } => params.net.spec.n_actions,
        }
    }

    pub fn param_count(&self) -> usize {
        match self {
            Net::Mlp { model, .. } => model.param_count(),
            Net::Gru { params, .. } => params.net.spec.param_count(),
        }
    }

    pub fn gru_spec(&self) -> Option<&GruSpec> {
        match self {
            Net::Mlp { .. } => None,
            Net::Gru { params, .. } => Some(&params.net.spec),
        }
    }

    /// A rollout with the current parameters (the GRU without dropout: inference).
    pub fn collect(
        &self,
        collector: &mut Collector,
        env: &mut dyn TrainEnv,
        rng: &mut Rng,
    ) -> Result<Rollout> {
        match self {
            Net::Mlp { params, .. } => {
                let act = mlp_policy(params)?;
                collector.collect(env, params.n_actions(), &act, rng)
            }
            Net::Gru { params, .. } => {
                let theta = params.theta()?;
                let act = |obs: &Tensor| params.net.forward(&theta, obs, None);
                collector.collect(env, params.net.spec.n_actions, &act, rng)
            }
        }
    }

    /// One PPO minibatch: the loss's gradient, the optimizers' step (skipped for an f16
    /// gradient that overflowed); returns the minibatch's statistics. Both networks' updates
    /// run their matmuls in `ppo.precision`'s dtype.
    pub fn ppo_step(
        &mut self,
        opt: &mut ActorCriticAdam,
        batch: &Batch,
        s: StepCtx,
    ) -> Result<Tensor> {
        match self {
            Net::Mlp { params, .. } => {
                let (grad, st) =
                    ppo_grad_mm(&params.layers()?, batch, s.coefs, s.amp.mm, s.amp.scale())?;
                if let Some(grad) = s.amp.unscale(grad)? {
                    opt.step(params, &grad, s.lr, s.critic_lr, s.max_grad_norm)?;
                }
                Ok(st)
            }
            Net::Gru { params, dropout } => {
                let mask = if *dropout > 0.0 {
                    Some(params.net.dropout_mask(
                        batch.obs.dim(0)?,
                        *dropout,
                        s.rng,
                        batch.obs.device(),
                    )?)
                } else {
                    None
                };
                let (grad, st) = gru_train::ppo_grad(
                    params,
                    batch,
                    s.coefs,
                    mask.as_ref(),
                    s.amp.mm,
                    s.amp.scale(),
                )?;
                if let Some(grad) = s.amp.unscale(grad)? {
                    opt.step_groups(
                        &mut params.actor,
                        &mut params.critic,
                        &grad,
                        s.lr,
                        s.critic_lr,
                        s.max_grad_norm,
                    )?;
                }
                Ok(st)
            }
        }
    }

    /// The critic-only epochs (see `critic` and `gru_train::critic_fit`).
    pub fn critic_fit(
        &mut self,
        opt: &mut ActorCriticAdam,
        obs: &Tensor,
        returns: &Tensor,
        rng: &mut Rng,
        fit: CriticFit,
    ) -> Result<Option<(Tensor, usize)>> {
        match self {
            Net::Mlp { params, .. } => critic::fit(params, opt, obs, returns, rng, fit),
            Net::Gru { params, .. } => gru_train::critic_fit(params, opt, obs, returns, rng, fit),
        }
    }

    /// Writes a model file; `meta` gets the network's description here.
    pub fn save(&self, path: &Path, meta: ModelMeta) -> Result<()> {
        let meta = ModelMeta {
            param_count: self.param_count(),
            gru: self.gru_spec().cloned(),
            hidden_dims: match self {
                Net::Mlp { .. } => meta.hidden_dims,
                Net::Gru { .. } => Vec::new(),
            },
            ..meta
        };
        match self {
            Net::Mlp { model, params } => {
                params.write_to(model)?;
                save_model(path, model, &meta)
            }
            Net::Gru { params, .. } => save_gru_model(path, &params.net, &params.theta()?, &meta),
        }
    }

    /// The current policy as host inference (validation).
    pub fn host_policy(&self) -> Result<HostPolicy> {
        match self {
            Net::Mlp { model, params } => {
                params.write_to(model)?;
                HostPolicy::from_model(model)
            }
            Net::Gru { params, .. } => {
                let net = &params.net;
                let host = HostGru::new(net.spec.clone(), net.host_tensors(&params.theta()?)?)?;
                Ok(HostPolicy::Gru(Box::new(host)))
            }
        }
    }
}
