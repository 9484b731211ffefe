//! Rollout collection: N envs × S steps with the current parameters, actions drawn by Gumbel-max
//! from seeded host noise (made for the whole rollout at once and uploaded in one copy), the
//! observations written into one buffer allocated once per run. The host sees rewards, values
//! and restarts once per rollout, for GAE.

use super::backward::{forward, split_heads};
use super::flat::FlatParams;
use super::train_env::TrainEnv;
use crate::rng::Rng;
use anyhow::Result;
use candle_core::{DType, Device, Tensor, D};

pub struct Rollout {
    /// `[S·N, obs_dim]`, step-major; reused by the next rollout.
    pub obs: Tensor,
    /// Taken actions, u32 `[S·N]`.
    pub actions: Tensor,
    /// Log-probabilities of the taken actions under the rollout's policy, `[S·N]`.
    pub logp: Tensor,
    pub values: Vec<f32>,
    pub rewards: Vec<f32>,
    pub dones: Vec<bool>,
    /// The critic's value of the observation after the last step, `[N]`.
    pub last_value: Vec<f32>,
}

pub struct Collector {
    steps: usize,
    /// The observation the next step acts on.
    obs: Tensor,
    buf: Tensor,
}

impl Collector {
    pub fn new(env: &dyn TrainEnv, steps: usize, device: &Device) -> Result<Self> {
        Ok(Collector {
            steps,
            obs: env.observe()?,
            buf: Tensor::zeros((steps * env.n(), env.obs_dim()), DType::F32, device)?,
        })
    }

    /// `policy`: the network's logits `[B, A]` and values `[B]` for observations (`n_actions`
    /// wide), MLP or GRU.
    pub fn collect(
        &mut self,
        env: &mut dyn TrainEnv,
        n_actions: usize,
        policy: &dyn Fn(&Tensor) -> Result<(Tensor, Tensor)>,
        rng: &mut Rng,
    ) -> Result<Rollout> {
        let (n, s_len, a) = (env.n(), self.steps, n_actions);
        let noise = Tensor::from_vec(gumbel(rng, s_len * n * a), (s_len, n, a), self.buf.device())?;
        let (mut act, mut logp, mut val, mut rew) = (
            Vec::with_capacity(s_len),
            Vec::with_capacity(s_len),
            Vec::with_capacity(s_len),
            Vec::with_capacity(s_len),
        );
        let mut dones = Vec::with_capacity(s_len * n);
        for s in 0..s_len {
            let (logits, value) = policy(&self.obs)?;
            let actions = (&logits + noise.get(s)?)?.argmax(D::Minus1)?;
            let lsm = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            let lp = lsm.gather(&actions.unsqueeze(1)?, 1)?.squeeze(1)?;
            let (r, d) = if env.wants_uncertainty() {
                // The policy's normalised entropy H / ln A, in [0, 1].
                let h = (lsm.exp()? * &lsm)?
                    .sum(D::Minus1)?
                    .affine(-1.0 / (a as f64).ln().max(1e-12), 0.0)?;
                env.step_with(&actions, Some(&h))?
            } else {
                env.step_with(&actions, None)?
            };
            self.buf.slice_set(&self.obs, 0, s * n)?;
            act.push(actions);
            logp.push(lp);
            val.push(value);
            rew.push(r);
            dones.extend(d);
            self.obs = env.observe()?;
        }
        let (_, last) = policy(&self.obs)?;
        Ok(Rollout {
            obs: self.buf.clone(),
            actions: Tensor::cat(&act, 0)?,
            logp: Tensor::cat(&logp, 0)?,
            values: Tensor::cat(&val, 0)?.to_vec1()?,
            rewards: Tensor::cat(&rew, 0)?.to_vec1()?,
            dones,
            last_value: last.to_vec1()?,
        })
    }
}

/// The MLP's `policy` for [`Collector::collect`] (its layers assembled once per rollout).
pub fn mlp_policy(params: &FlatParams) -> Result<impl Fn(&Tensor) -> Result<(Tensor, Tensor)>> {
    let layers = params.layers()?;
    Ok(move |obs: &Tensor| split_heads(&forward(&layers, obs)?.heads))
}

/// Standard Gumbel noise −ln(−ln u), u uniform in (0, 1).
fn gumbel(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| {
            let u = rng.uniform().clamp(1e-12, 1.0 - 1e-12);
            -(-(u.ln())).ln() as f32
        })
        .collect()
}
