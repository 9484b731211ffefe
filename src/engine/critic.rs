//! Critic-only epochs (seed 002: four after the PPO epochs). The trunk belongs to the actor's
//! optimizer and stays frozen here (see `adam`), so every sample's last hidden features are
//! computed once, in minibatch-sized chunks; each epoch then fits the value head to the returns
//! with minibatch steps of the critic's own optimizer. The epochs cost one trunk forward over the
//! rollout plus a few small matmuls per minibatch, and leave the policy exactly as PPO left it.

use super::adam::ActorCriticAdam;
use super::flat::FlatParams;
use super::mlp_kernels::bias_tanh;
use crate::rng::Rng;
use anyhow::Result;
use candle_core::Tensor;

/// How the critic-only epochs run.
#[derive(Clone, Copy)]
pub struct CriticFit<'a> {
    pub epochs: usize,
    pub minibatch: usize,
    pub lr: f64,
    pub vf_coef: f64,
    pub max_grad_norm: f64,
    /// Asked between minibatches: true stops the epochs (a cancelled run must not wait for
    /// thousands of them).
    pub stop: &'a dyn Fn() -> bool,
}

/// The trunk's output (the heads' input) for every row of `obs`, `[B, hidden]`.
pub fn features(params: &FlatParams, obs: &Tensor, chunk: usize) -> Result<Tensor> {
    let trunk = params.trunk()?;
    let rows = obs.dim(0)?;
    let mut parts = Vec::with_capacity(rows.div_ceil(chunk.max(1)));
    let mut start = 0;
    while start < rows {
        let len = chunk.max(1).min(rows - start);
        let mut x = obs.narrow(0, start, len)?;
        for l in &trunk {
            x = bias_tanh(&x.matmul(&l.wt)?, &l.b)?;
        }
        parts.push(x);
        start += len;
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Runs the epochs; returns the sum of the minibatches' value losses (½·mean((v − R)²), on the
/// device) and their count, or None when there were no epochs.
pub fn fit(
    params: &mut FlatParams,
    opt: &mut ActorCriticAdam,
    obs: &Tensor,
    returns: &Tensor,
    rng: &mut Rng,
    c: CriticFit,
) -> Result<Option<(Tensor, usize)>> {
    if c.epochs == 0 {
        return Ok(None);
    }
    let feats = features(params, obs, c.minibatch)?;
    let batch = feats.dim(0)?;
    let device = feats.device().clone();
    let mut order: Vec<u32> = (0..batch as u32).collect();
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
            let r = returns.index_select(&ix, 0)?.unsqueeze(1)?;
            let head = params.value_head()?;
            let err = (h.matmul(&head.wt)?.broadcast_add(&head.b)? - r)?; // [mb, 1]
            let n = mb.len() as f64;
            let g_v = err.affine(c.vf_coef / n, 0.0)?;
            let ones = Tensor::ones((1, mb.len()), g_v.dtype(), &device)?;
            let grad = Tensor::cat(
                &[
                    h.t()?.matmul(&g_v)?.flatten_all()?,
                    ones.matmul(&g_v)?.flatten_all()?,
                ],
                0,
            )?;
            opt.step_critic(params, &grad, c.lr, c.max_grad_norm)?;
            loss_sum = (loss_sum + (err.sqr()?.mean_all()? * 0.5)?.reshape(1)?)?;
            n_mb += 1;
        }
    }
    Ok(Some((loss_sum, n_mb)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::backward::{forward, split_heads};
    use crate::engine::ActorCritic;
    use candle_core::{DType, Device};

    fn value_loss(params: &FlatParams, obs: &Tensor, returns: &Tensor) -> f32 {
        let (_, v) = split_heads(&forward(&params.layers().unwrap(), obs).unwrap().heads).unwrap();
        (v - returns)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn features_are_the_forward_pass_hidden_output() {
        let dev = Device::Cpu;
        let model = ActorCritic::new(9, &[7, 5], 8, 3, &dev).unwrap();
        let params = FlatParams::from_model(&model).unwrap();
        let obs = Tensor::randn(0f32, 1.0, (11, 9), &dev).unwrap();
        let cache = forward(&params.layers().unwrap(), &obs).unwrap();
        let want: Vec<Vec<f32>> = cache.inputs.last().unwrap().to_vec2().unwrap();
        // Chunks of 4 rows: 4 + 4 + 3.
        let got: Vec<Vec<f32>> = features(&params, &obs, 4).unwrap().to_vec2().unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn critic_epochs_fit_the_value_and_leave_the_policy_alone() {
        let dev = Device::Cpu;
        let model = ActorCritic::new(6, &[8], 8, 5, &dev).unwrap();
        let mut params = FlatParams::from_model(&model).unwrap();
        let mut opt = ActorCriticAdam::new(&params).unwrap();
        let obs = Tensor::randn(0f32, 1.0, (256, 6), &dev).unwrap();
        // Returns the head can learn: a linear function of the observation, shifted.
        let returns = (obs.narrow(1, 0, 1).unwrap().squeeze(1).unwrap() * 0.5)
            .unwrap()
            .affine(1.0, 2.0)
            .unwrap();
        let before = value_loss(&params, &obs, &returns);
        let actor: Vec<f32> = params.actor.to_vec1().unwrap();
        let fit_cfg = CriticFit {
            epochs: 20,
            minibatch: 64,
            lr: 3e-2,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            stop: &|| false,
        };
        let (loss, n) = fit(
            &mut params,
            &mut opt,
            &obs,
            &returns,
            &mut Rng::new(1),
            fit_cfg,
        )
        .unwrap()
        .unwrap();
        assert_eq!(n, 20 * 4);
        assert_eq!(loss.dtype(), DType::F32);
        let after = value_loss(&params, &obs, &returns);
        assert!(after < 0.25 * before, "value loss {before} → {after}");
        assert_eq!(
            params.actor.to_vec1::<f32>().unwrap(),
            actor,
            "the actor moved"
        );
        assert_eq!(opt.actor.t, 0);
        assert_eq!(opt.critic.t, 80);
        let none = CriticFit {
            epochs: 0,
            ..fit_cfg
        };
        assert!(fit(
            &mut params,
            &mut opt,
            &obs,
            &returns,
            &mut Rng::new(1),
            none
        )
        .unwrap()
        .is_none());
    }
}
