//! The rollout's per-sample training data on the device: observations, and one packed
//! `[S·N, A + 3]` table (taken action one-hot, old log-probability, advantage, return) so that a
//! minibatch is two gathers.

use super::backward::Batch;
use super::rollout::Rollout;
use anyhow::Result;
use candle_core::{DType, Tensor};

pub struct Samples {
    obs: Tensor,
    table: Tensor,
    n_actions: usize,
}

pub struct Gathered {
    obs: Tensor,
    onehot: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    returns: Tensor,
}

fn normalize(x: &Tensor) -> Result<Tensor> {
    let mean = x.mean_all()?;
    let centered = x.broadcast_sub(&mean)?;
    let std = (centered.sqr()?.mean_all()?.sqrt()? + 1e-8)?;
    Ok(centered.broadcast_div(&std)?)
}

impl Samples {
    pub fn new(ro: &Rollout, adv: Vec<f32>, ret: Vec<f32>, n_actions: usize) -> Result<Self> {
        let device = ro.obs.device();
        let batch = adv.len();
        let onehot = ro
            .actions
            .unsqueeze(1)?
            .broadcast_eq(&Tensor::arange(0u32, n_actions as u32, device)?.unsqueeze(0)?)?
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
            n_actions,
        })
    }

    pub fn obs(&self) -> &Tensor {
        &self.obs
    }

    /// The returns, `[S·N]`.
    pub fn returns(&self) -> Result<Tensor> {
        Ok(self
            .table
            .narrow(1, self.n_actions + 2, 1)?
            .squeeze(1)?
            .contiguous()?)
    }

    pub fn gather(&self, ix: &Tensor) -> Result<Gathered> {
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
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            obs: &self.obs,
            onehot: &self.onehot,
            old_logp: &self.old_logp,
            adv: &self.adv,
            returns: &self.returns,
        }
    }
}
