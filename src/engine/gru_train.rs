//! Training the GRU actor-critic (`ppo.encoder = "gru"`): its flat parameters split into the
//! two optimizer groups the MLP has (see `adam`: the actor's is encoder + GRU + policy head, the
//! critic's the value head — the last tensors of the flat buffer, so the split is one cut), the
//! PPO loss's gradient by the hand-written backward through time of `gru_bptt` (in
//! `ppo.precision`), and the critic-only epochs on the frozen features.
//!
//! The loss is the one `backward` differentiates by hand: clipped surrogate + vf_coef ×
//! ½·mean((v − R)²) − ent_coef × mean entropy, with the same five statistics. [`ppo_loss`] and
//! [`ppo_grad_autograd`] write it in candle ops for candle's autograd: the reference the
//! hand-written gradient is tested against (and the bench's "before").

use super::adam::{ActorCriticAdam, Grads};
use super::amp::Mm;
use super::backward::{Batch, Coefs};
use super::critic::CriticFit;
use super::gru::{GruNet, GruSpec};
use super::gru_bptt;
use super::gru_pool::Workspace;
use crate::rng::Rng;
use anyhow::{anyhow, Result};
use candle_core::{Device, Tensor, Var, D};

/// The GRU's parameters as the optimizers see them.
pub struct GruParams {
    pub net: GruNet,
    /// Encoder, GRU and policy head.
    pub actor: Tensor,
    /// Value head.
    pub critic: Tensor,
    /// The PPO minibatches' reusable buffers (`gru_pool`).
    pub ws: Workspace,
}

impl GruParams {
    pub fn new(spec: GruSpec, seed: u64, device: &Device) -> Result<Self> {
        let net = GruNet::new(spec);
        let theta = net.init_theta(seed, device)?;
        Self::from_theta(net, &theta)
    }

    pub fn from_theta(net: GruNet, theta: &Tensor) -> Result<Self> {
        let n_critic = net.critic_len();
        let n_actor = theta.elem_count().saturating_sub(n_critic);
        Ok(GruParams {
            actor: theta.narrow(0, 0, n_actor)?.detach(),
            critic: theta.narrow(0, n_actor, n_critic)?.detach(),
            net,
            ws: Workspace::default(),
        })
    }

    /// The whole flat buffer (the network's order: actor group, then critic group).
    pub fn theta(&self) -> Result<Tensor> {
        Ok(Tensor::cat(&[&self.actor, &self.critic], 0)?)
    }
}

/// The PPO loss (scalar) and its statistics `[5]` from the network's outputs.
pub fn ppo_loss(logits: &Tensor, v: &Tensor, b: &Batch, c: Coefs) -> Result<(Tensor, Tensor)> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let logp_a = (&logp * b.onehot)?.sum(1)?;
    let log_ratio = (&logp_a - b.old_logp)?;
    let ratio = log_ratio.exp()?;
    let s1 = (&ratio * b.adv)?;
    let s2 = (ratio.clamp(1.0 - c.clip, 1.0 + c.clip)? * b.adv)?;
    let surrogate = s1.minimum(&s2)?.mean_all()?.neg()?;
    let value_loss = ((v - b.returns)?.sqr()?.mean_all()? * 0.5)?;
    let entropy = (logp.exp()? * &logp)?.sum(1)?.neg()?.mean_all()?;
    let loss = ((&surrogate + (&value_loss * c.vf_coef)?)? - (&entropy * c.ent_coef)?)?;
    let stats = Tensor::stack(
        &[
            surrogate,
            value_loss,
            entropy,
            ((&ratio - 1.0)? - &log_ratio)?.mean_all()?,
            (&ratio - 1.0)?
                .abs()?
                .gt(c.clip)?
                .to_dtype(ratio.dtype())?
                .mean_all()?,
        ],
        0,
    )?
    .detach();
    Ok((loss, stats))
}

/// The PPO loss's gradient in the two groups and the statistics, by the hand-written backward
/// (`gru_bptt`) with the matmuls in `mm`'s dtype and the gradient of `scale` × the loss;
/// `dropout` is the minibatch's mask (see [`GruNet::dropout_mask`]).
pub fn ppo_grad(
    p: &GruParams,
    batch: &Batch,
    c: Coefs,
    dropout: Option<&Tensor>,
    mm: Mm,
    scale: f64,
) -> Result<(Grads, Tensor)> {
    let theta = p.theta()?;
    p.ws.with(|| gru_bptt::ppo_grad(&p.net, &theta, batch, c, dropout, mm, scale))
}

/// [`ppo_grad`] (f32) by candle's autograd through [`GruNet::forward_autograd`].
pub fn ppo_grad_autograd(
    p: &GruParams,
    batch: &Batch,
    c: Coefs,
    dropout: Option<&Tensor>,
) -> Result<(Grads, Tensor)> {
    let theta = Var::from_tensor(&p.theta()?)?;
    let (logits, v) = p
        .net
        .forward_autograd(theta.as_tensor(), batch.obs, dropout)?;
    let (loss, stats) = ppo_loss(&logits, &v, batch, c)?;
    let store = loss.backward()?;
    let g = store
        .get(theta.as_tensor())
        .ok_or_else(|| anyhow!("the PPO loss does not depend on the GRU's parameters (a bug)"))?;
    let n_actor = p.actor.elem_count();
    let grads = Grads {
        actor: g.narrow(0, 0, n_actor)?.detach(),
        critic: g.narrow(0, n_actor, p.critic.elem_count())?.detach(),
    };
    Ok((grads, stats))
}

/// Critic-only epochs for the GRU, as `critic::fit` runs them for the MLP: the heads' input is
/// computed once (without dropout: the actor's group is frozen here), then the value head alone
/// is fitted to the returns. Returns the sum of the minibatches' ½·mean((v − R)²) and their
/// count, or None without epochs.
pub fn critic_fit(
    p: &mut GruParams,
    opt: &mut ActorCriticAdam,
    obs: &Tensor,
    returns: &Tensor,
    rng: &mut Rng,
    c: CriticFit,
) -> Result<Option<(Tensor, usize)>> {
    if c.epochs == 0 {
        return Ok(None);
    }
    let theta = p.theta()?;
    let rows = obs.dim(0)?;
    let chunk = c.minibatch.max(1);
    let mut parts = Vec::with_capacity(rows.div_ceil(chunk));
    let mut start = 0;
    while start < rows {
        let len = chunk.min(rows - start);
        parts.push(p.net.features(&theta, &obs.narrow(0, start, len)?, None)?);
        start += len;
    }
    let feats = Tensor::cat(&parts, 0)?.detach();
    let device = feats.device().clone();
    let mut order: Vec<u32> = (0..rows as u32).collect();
    let mut loss_sum = Tensor::zeros(1, feats.dtype(), &device)?;
    let mut n_mb = 0;
    for _ in 0..c.epochs {
        rng.shuffle(&mut order);
        for mb in order.chunks(c.minibatch) {
            if (c.stop)() {
                return Ok(Some((loss_sum, n_mb)));
            }
            if mb.len() < 2 {
                continue;
            }
            let ix = Tensor::from_slice(mb, mb.len(), &device)?;
            let h = feats.index_select(&ix, 0)?;
            let r = returns.index_select(&ix, 0)?;
            let (g, half_mse) = gru_bptt::value_grad(&p.net, &p.critic, &h, &r, c.vf_coef)?;
            opt.step_critic_group(&mut p.critic, &g, c.lr, c.max_grad_norm)?;
            loss_sum = (loss_sum + half_mse)?;
            n_mb += 1;
        }
    }
    Ok(Some((loss_sum, n_mb)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn spec() -> GruSpec {
        GruSpec {
            seq_len: 3,
            step_dim: 2,
            tail_dim: 2,
            hidden: 4,
            layers: 2,
            head_hidden: 3,
            n_actions: 4,
        }
    }

    struct Owned {
        obs: Tensor,
        onehot: Tensor,
        old_logp: Tensor,
        adv: Tensor,
        returns: Tensor,
    }

    fn data(dev: &Device, dtype: DType) -> Owned {
        let b = 5;
        let obs = Tensor::randn(0f32, 1.0, (b, spec().obs_dim()), dev).unwrap();
        let actions = Tensor::new(&[0u32, 3, 1, 2, 3], dev).unwrap();
        let onehot = actions
            .unsqueeze(1)
            .unwrap()
            .broadcast_eq(&Tensor::arange(0u32, 4, dev).unwrap().unsqueeze(0).unwrap())
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        Owned {
            obs: obs.to_dtype(dtype).unwrap(),
            onehot,
            old_logp: Tensor::new(&[-1.2f32, -1.5, -1.3, -1.4, -1.39], dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
            adv: Tensor::new(&[1.0f32, -0.5, 0.7, -1.2, 0.3], dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
            returns: Tensor::new(&[0.4f32, -0.2, 0.1, 0.9, -0.6], dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
        }
    }

    fn batch(o: &Owned) -> Batch<'_> {
        Batch {
            obs: &o.obs,
            onehot: &o.onehot,
            old_logp: &o.old_logp,
            adv: &o.adv,
            returns: &o.returns,
        }
    }

    const C: Coefs = Coefs {
        clip: 0.2,
        vf_coef: 0.5,
        ent_coef: 0.01,
    };

    /// The gradient both groups get matches central finite differences of the loss, in f64,
    /// with a dropout mask in place (the same mask in every evaluation).
    #[test]
    fn ppo_grad_matches_finite_differences() {
        let dev = Device::Cpu;
        let net = GruNet::new(spec());
        // Moved off the init so the policy head's small weights do not hide errors.
        let theta = (net.init_theta(7, &dev).unwrap()
            + Tensor::randn(0f32, 0.3, spec().param_count(), &dev).unwrap())
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
        let p = GruParams::from_theta(net.clone(), &theta).unwrap();
        let o = data(&dev, DType::F64);
        let mask = net
            .dropout_mask(5, 0.25, &mut Rng::new(3), &dev)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        let (g, stats) = ppo_grad_autograd(&p, &batch(&o), C, Some(&mask)).unwrap();
        assert_eq!(stats.dims(), &[5]);
        let got: Vec<f64> = Tensor::cat(&[&g.actor, &g.critic], 0)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(g.critic.elem_count(), net.critic_len());
        let base: Vec<f64> = theta.to_vec1().unwrap();
        let loss_at = |v: &[f64]| -> f64 {
            let t = Tensor::from_slice(v, v.len(), &dev).unwrap();
            let (l, v) = net.forward(&t, &o.obs, Some(&mask)).unwrap();
            let (loss, _) = ppo_loss(&l, &v, &batch(&o), C).unwrap();
            loss.to_scalar().unwrap()
        };
        let eps = 1e-6;
        let mut worst = 0f64;
        for i in 0..base.len() {
            let mut hi = base.clone();
            hi[i] += eps;
            let mut lo = base.clone();
            lo[i] -= eps;
            let fd = (loss_at(&hi) - loss_at(&lo)) / (2.0 * eps);
            worst = worst.max((fd - got[i]).abs() / (1e-6 + fd.abs().max(got[i].abs())));
            assert!(
                (fd - got[i]).abs() < 1e-6 + 1e-4 * fd.abs(),
                "parameter {i}: autograd {} vs finite differences {fd}",
                got[i]
            );
        }
        assert!(got.iter().any(|g| g.abs() > 1e-4), "a zero gradient");
        assert!(worst.is_finite());
    }

    /// The critic-only epochs lower the value loss and leave the actor group untouched.
    #[test]
    fn critic_epochs_fit_the_value_head_only() {
        let dev = Device::Cpu;
        let mut p = GruParams::new(spec(), 5, &dev).unwrap();
        let mut opt = ActorCriticAdam::for_groups(&p.actor, &p.critic).unwrap();
        let obs = Tensor::randn(0f32, 1.0, (64, spec().obs_dim()), &dev).unwrap();
        let returns = obs
            .narrow(1, 6, 1)
            .unwrap()
            .squeeze(1)
            .unwrap()
            .affine(0.5, 1.0)
            .unwrap();
        let loss = |p: &GruParams| -> f32 {
            let (_, v) = p.net.forward(&p.theta().unwrap(), &obs, None).unwrap();
            (v - &returns)
                .unwrap()
                .sqr()
                .unwrap()
                .mean_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        let before = loss(&p);
        let actor: Vec<f32> = p.actor.to_vec1().unwrap();
        let fit = CriticFit {
            epochs: 30,
            minibatch: 16,
            lr: 3e-2,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            stop: &|| false,
        };
        let (_, n) = critic_fit(&mut p, &mut opt, &obs, &returns, &mut Rng::new(1), fit)
            .unwrap()
            .unwrap();
        assert_eq!(n, 30 * 4);
        let after = loss(&p);
        assert!(after < 0.5 * before, "value loss {before} → {after}");
        assert_eq!(p.actor.to_vec1::<f32>().unwrap(), actor, "the actor moved");
        assert_eq!((opt.actor.t, opt.critic.t), (0, 120));
    }
}
