//! The actor-critic: an MLP trunk (tanh) on the flattened observation, a policy head over the
//! actions and a value head. Weights are initialised from our own seeded generator so a run is
//! repeatable on any device.

use crate::rng::Rng;
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::HashMap;

/// A layer's weights `[out × in]` row-major, bias, `out`, `in`, copied to the host.
pub type HostLayer = (Vec<f32>, Vec<f32>, usize, usize);

pub struct ActorCritic {
    pub obs_dim: usize,
    pub hidden: Vec<usize>,
    pub n_actions: usize,
    /// (name, weight [out, in], bias [out]) in forward order: trunk layers, actor, critic.
    layers: Vec<(String, Var, Var)>,
}

impl ActorCritic {
    pub fn new(
        obs_dim: usize,
        hidden: &[usize],
        n_actions: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let mut rng = Rng::derive(seed, "actor-critic-init");
        let mut layers = Vec::new();
        let mut fan_in = obs_dim;
        let mut dims: Vec<(String, usize, f64)> = hidden
            .iter()
            .enumerate()
            .map(|(i, &h)| (format!("trunk.{i}"), h, 2f64.sqrt()))
            .collect();
        // Small policy-head init keeps the first policy near uniform (standard PPO practice).
        dims.push(("actor".into(), n_actions, 0.01));
        dims.push(("critic".into(), 1, 1.0));
        let last_hidden = *hidden.last().unwrap_or(&obs_dim);
        for (name, out, gain) in dims {
            let inp = if name.starts_with("trunk") {
                fan_in
            } else {
                last_hidden
            };
            let bound = gain * (3.0 / inp as f64).sqrt();
            let w: Vec<f32> = (0..out * inp)
                .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
                .collect();
            let w = Var::from_tensor(&Tensor::from_vec(w, (out, inp), device)?)?;
            let b = Var::from_tensor(&Tensor::zeros(out, DType::F32, device)?)?;
            layers.push((name.clone(), w, b));
            if name.starts_with("trunk") {
                fan_in = out;
            }
        }
        Ok(ActorCritic {
            obs_dim,
            hidden: hidden.to_vec(),
            n_actions,
            layers,
        })
    }

    /// Rebuilds a model from named tensors (a checkpoint), checking every shape.
    pub fn from_tensors(
        obs_dim: usize,
        hidden: &[usize],
        n_actions: usize,
        tensors: &HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        let mut m = ActorCritic::new(obs_dim, hidden, n_actions, 0, device)?;
        for (name, w, b) in &mut m.layers {
            for (suffix, var) in [("weight", &mut *w), ("bias", &mut *b)] {
                let key = format!("{name}.{suffix}");
                let Some(t) = tensors.get(&key) else {
                    bail!("checkpoint lacks tensor {key}");
                };
                if t.dims() != var.dims() {
                    bail!(
                        "checkpoint tensor {key} has shape {:?}, the model expects {:?}",
                        t.dims(),
                        var.dims()
                    );
                }
                *var = Var::from_tensor(&t.to_dtype(DType::F32)?.to_device(device)?)?;
            }
        }
        Ok(m)
    }

    /// (name, weight, bias) in forward order: trunk layers, actor, critic.
    pub(crate) fn layers(&self) -> &[(String, Var, Var)] {
        &self.layers
    }

    pub fn vars(&self) -> Vec<Var> {
        self.layers
            .iter()
            .flat_map(|(_, w, b)| [w.clone(), b.clone()])
            .collect()
    }

    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.layers
            .iter()
            .flat_map(|(n, w, b)| {
                [
                    (format!("{n}.weight"), w.as_tensor().clone()),
                    (format!("{n}.bias"), b.as_tensor().clone()),
                ]
            })
            .collect()
    }

    pub fn param_count(&self) -> usize {
        self.layers
            .iter()
            .map(|(_, w, b)| w.elem_count() + b.elem_count())
            .sum()
    }

    /// Logits [B, A] and values [B] for observations [B, obs_dim].
    pub fn forward(&self, obs: &Tensor) -> Result<(Tensor, Tensor)> {
        let n_trunk = self.layers.len() - 2;
        let mut x = obs.clone();
        for (_, w, b) in &self.layers[..n_trunk] {
            x = x
                .matmul(&w.as_tensor().t()?)?
                .broadcast_add(b.as_tensor())?
                .tanh()?;
        }
        let (_, wa, ba) = &self.layers[n_trunk];
        let (_, wc, bc) = &self.layers[n_trunk + 1];
        let logits = x
            .matmul(&wa.as_tensor().t()?)?
            .broadcast_add(ba.as_tensor())?;
        let value = x
            .matmul(&wc.as_tensor().t()?)?
            .broadcast_add(bc.as_tensor())?
            .squeeze(1)?;
        Ok((logits, value))
    }

    /// Host copies of the layers, for fast single-observation inference.
    pub fn host_layers(&self) -> Result<Vec<HostLayer>> {
        self.layers
            .iter()
            .map(|(_, w, b)| {
                let (out, inp) = w.as_tensor().dims2()?;
                Ok((
                    w.as_tensor().flatten_all()?.to_vec1::<f32>()?,
                    b.as_tensor().to_vec1::<f32>()?,
                    out,
                    inp,
                ))
            })
            .collect()
    }
}
