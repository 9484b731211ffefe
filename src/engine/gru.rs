//! The GRU encoder actor-critic (the sibling trainer's network, seed-system §10): each step of the
//! observation's sequence part goes through Linear → ReLU → LayerNorm twice (dropout after, when
//! training), a multi-layer GRU reads the steps in order, and its last hidden state — with the
//! observation's tail (the account block) beside it — feeds a policy head and a value head of
//! `hidden → head_hidden → out` with a ReLU between.
//!
//! Parameters live in one flat buffer (`theta`) and every tensor is a view of it, as in the MLP's
//! `flat` module: autograd through the views gives the gradient as one flat buffer, so the GRU
//! trains with the same flat optimizer, clipping and checkpoint code as the MLP. Tensors are
//! stored in PyTorch's layout and names (`weight [out, in]`, GRU gates ordered r, z, n), so a
//! checkpoint reads naturally from Python.

use crate::rng::Rng;
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub const LN_EPS: f32 = 1e-5;

/// The shape of a GRU actor-critic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GruSpec {
    /// Steps in the observation's sequence part, and values per step.
    pub seq_len: usize,
    pub step_dim: usize,
    /// Values after the sequence (the account block), given to the heads directly.
    pub tail_dim: usize,
    /// Encoder width and GRU hidden size (the seed: 256).
    pub hidden: usize,
    /// GRU layers (the seed: 2).
    pub layers: usize,
    /// Width of each head's hidden layer (the seed: 128).
    pub head_hidden: usize,
    pub n_actions: usize,
}

impl GruSpec {
    /// The GRU `ppo.encoder = "gru"` trains over an observation of this shape.
    pub fn from_config(
        p: &crate::config::PpoConfig,
        (seq_len, step_dim, tail_dim): (usize, usize, usize),
        n_actions: usize,
    ) -> Self {
        GruSpec {
            seq_len,
            step_dim,
            tail_dim,
            hidden: p.gru_hidden,
            layers: p.gru_layers,
            head_hidden: p.gru_head_hidden,
            n_actions,
        }
    }

    pub fn obs_dim(&self) -> usize {
        self.seq_len * self.step_dim + self.tail_dim
    }

    /// Every tensor's name and shape, in the flat buffer's order.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let (h, hh) = (self.hidden, self.head_hidden);
        let mut v = Vec::new();
        let mut inp = self.step_dim;
        for i in 0..2 {
            v.push((format!("enc.{i}.weight"), vec![h, inp]));
            v.push((format!("enc.{i}.bias"), vec![h]));
            v.push((format!("enc.{i}.ln.weight"), vec![h]));
            v.push((format!("enc.{i}.ln.bias"), vec![h]));
            inp = h;
        }
        for l in 0..self.layers {
            v.push((format!("gru.weight_ih_l{l}"), vec![3 * h, h]));
            v.push((format!("gru.weight_hh_l{l}"), vec![3 * h, h]));
            v.push((format!("gru.bias_ih_l{l}"), vec![3 * h]));
            v.push((format!("gru.bias_hh_l{l}"), vec![3 * h]));
        }
        for (head, out) in [("actor", self.n_actions), ("critic", 1)] {
            v.push((format!("{head}.0.weight"), vec![hh, h + self.tail_dim]));
            v.push((format!("{head}.0.bias"), vec![hh]));
            v.push((format!("{head}.1.weight"), vec![out, hh]));
            v.push((format!("{head}.1.bias"), vec![out]));
        }
        v
    }

    pub fn param_count(&self) -> usize {
        self.tensors()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// One line naming the layout, for errors that compare two of them.
    pub fn describe(&self) -> String {
        format!(
            "gru: {}×{} sequence + {} tail, hidden {} × {} layers, heads {} → {}",
            self.seq_len,
            self.step_dim,
            self.tail_dim,
            self.hidden,
            self.layers,
            self.head_hidden,
            self.n_actions
        )
    }

    /// Seeded initial parameters as one flat vector: linear layers uniform in ±gain·√(3/fan_in)
    /// (the policy head's last layer with gain 0.01, so the first policy is near uniform),
    /// LayerNorm scale 1 and shift 0, GRU weights uniform in ±1/√hidden (PyTorch's rule).
    pub fn init(&self, seed: u64) -> Vec<f32> {
        let mut rng = Rng::derive(seed, "gru-actor-critic-init");
        let mut out = Vec::with_capacity(self.param_count());
        for (name, shape) in self.tensors() {
            let n: usize = shape.iter().product();
            let uniform = |rng: &mut Rng, bound: f64| ((rng.uniform() * 2.0 - 1.0) * bound) as f32;
            if name.ends_with("ln.weight") {
                out.extend(std::iter::repeat_n(1.0, n));
            } else if name.starts_with("gru.") {
                let bound = 1.0 / (self.hidden as f64).sqrt();
                out.extend((0..n).map(|_| uniform(&mut rng, bound)));
            } else if name.ends_with(".weight") {
                let gain = match name.as_str() {
                    "actor.1.weight" => 0.01,
                    "critic.1.weight" => 1.0,
                    _ => 2f64.sqrt(),
                };
                let bound = gain * (3.0 / shape[1] as f64).sqrt();
                out.extend((0..n).map(|_| uniform(&mut rng, bound)));
            } else {
                out.extend(std::iter::repeat_n(0.0, n));
            }
        }
        out
    }
}

/// The network over a flat parameter buffer.
#[derive(Debug, Clone)]
pub struct GruNet {
    pub spec: GruSpec,
    /// (name, shape, offset) per tensor.
    entries: Vec<(String, Vec<usize>, usize)>,
}

pub struct Views {
    t: HashMap<String, Tensor>,
}

impl Views {
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.t
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("GRU parameter {name} missing (a bug)"))
    }
}

impl GruNet {
    pub fn new(spec: GruSpec) -> Self {
        let mut off = 0;
        let entries = spec
            .tensors()
            .into_iter()
            .map(|(n, s)| {
                let e = (n, s.clone(), off);
                off += s.iter().product::<usize>();
                e
            })
            .collect();
        GruNet { spec, entries }
    }

    /// The initial parameters on `device`.
    pub fn init_theta(&self, seed: u64, device: &Device) -> Result<Tensor> {
        let v = self.spec.init(seed);
        let n = v.len();
        Ok(Tensor::from_vec(v, n, device)?)
    }

    pub(crate) fn views(&self, theta: &Tensor) -> Result<Views> {
        if theta.elem_count() != self.spec.param_count() {
            bail!(
                "a flat buffer of {} values does not hold the GRU layout ({} parameters)",
                theta.elem_count(),
                self.spec.param_count()
            );
        }
        let mut t = HashMap::new();
        for (name, shape, off) in &self.entries {
            let n: usize = shape.iter().product();
            t.insert(
                name.clone(),
                theta.narrow(0, *off, n)?.reshape(shape.as_slice())?,
            );
        }
        Ok(Views { t })
    }

    /// Named tensors (for a checkpoint), copies of the flat buffer's views.
    pub fn named_tensors(&self, theta: &Tensor) -> Result<Vec<(String, Tensor)>> {
        let v = self.views(theta)?;
        self.entries
            .iter()
            .map(|(n, _, _)| Ok((n.clone(), v.get(n)?.contiguous()?)))
            .collect()
    }

    /// The flat buffer from named tensors (a checkpoint), every shape checked.
    pub fn theta_from(&self, tensors: &HashMap<String, Tensor>, device: &Device) -> Result<Tensor> {
        let mut parts = Vec::with_capacity(self.entries.len());
        for (name, shape, _) in &self.entries {
            let Some(t) = tensors.get(name) else {
                bail!("checkpoint lacks tensor {name} ({})", self.spec.describe());
            };
            if t.dims() != shape.as_slice() {
                bail!(
                    "checkpoint tensor {name} has shape {:?}, the model expects {shape:?} ({})",
                    t.dims(),
                    self.spec.describe()
                );
            }
            parts.push(t.to_dtype(DType::F32)?.to_device(device)?.flatten_all()?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// Logits `[B, A]` and values `[B]` for observations `[B, obs_dim]`. `dropout`: a mask
    /// `[B·seq_len, hidden]` of 0 or 1/(1−p) applied after the encoder (training only). Runs the
    /// hand-written forward of `gru_bptt` (fused on the CPU); no autograd graph.
    pub fn forward(
        &self,
        theta: &Tensor,
        obs: &Tensor,
        dropout: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        super::gru_bptt::forward(self, theta, obs, dropout)
    }

    /// The heads' input `[B, hidden + tail_dim]`: the GRU's last hidden state, then the tail.
    pub fn features(
        &self,
        theta: &Tensor,
        obs: &Tensor,
        dropout: Option<&Tensor>,
    ) -> Result<Tensor> {
        super::gru_bptt::features(self, theta, obs, dropout)
    }

    /// [`GruNet::forward`] in plain candle ops, step by step: differentiable by candle's
    /// autograd (the reference the hand-written backward is tested against).
    pub fn forward_autograd(
        &self,
        theta: &Tensor,
        obs: &Tensor,
        dropout: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let v = self.views(theta)?;
        let feat = self.features_of(&v, obs, dropout)?;
        let logits = head(&v, "actor", &feat)?;
        let value = head(&v, "critic", &feat)?.squeeze(D::Minus1)?;
        Ok((logits, value))
    }

    /// Values in the critic group (the value head: the last tensors of the flat buffer).
    pub fn critic_len(&self) -> usize {
        self.entries
            .iter()
            .filter(|(n, _, _)| n.starts_with("critic."))
            .map(|(_, s, _)| s.iter().product::<usize>())
            .sum()
    }

    /// The value head's tensors as views of the critic group alone.
    pub(crate) fn critic_views(&self, critic: &Tensor) -> Result<Views> {
        let base = self.spec.param_count() - self.critic_len();
        let mut t = HashMap::new();
        for (name, shape, off) in self
            .entries
            .iter()
            .filter(|(n, _, _)| n.starts_with("critic."))
        {
            let n: usize = shape.iter().product();
            t.insert(
                name.clone(),
                critic.narrow(0, off - base, n)?.reshape(shape.as_slice())?,
            );
        }
        Ok(Views { t })
    }

    /// Values `[B]` from the heads' input and the critic group alone (critic-only epochs).
    pub fn value_head(&self, critic: &Tensor, feat: &Tensor) -> Result<Tensor> {
        Ok(head(&self.critic_views(critic)?, "critic", feat)?.squeeze(D::Minus1)?)
    }

    fn features_of(&self, v: &Views, obs: &Tensor, dropout: Option<&Tensor>) -> Result<Tensor> {
        let s = &self.spec;
        let (b, obs_dim) = obs.dims2()?;
        if obs_dim != s.obs_dim() {
            bail!(
                "observation of {obs_dim} values, the GRU expects {} ({})",
                s.obs_dim(),
                s.describe()
            );
        }
        let (t_len, h) = (s.seq_len, s.hidden);
        let mut x = obs
            .narrow(1, 0, t_len * s.step_dim)?
            .reshape((b * t_len, s.step_dim))?;
        for i in 0..2 {
            x = linear(
                &x,
                v.get(&format!("enc.{i}.weight"))?,
                v.get(&format!("enc.{i}.bias"))?,
            )?
            .relu()?;
            x = candle_nn::ops::layer_norm_slow(
                &x,
                v.get(&format!("enc.{i}.ln.weight"))?,
                v.get(&format!("enc.{i}.ln.bias"))?,
                LN_EPS,
            )?;
        }
        if let Some(mask) = dropout {
            x = x.mul(mask)?;
        }
        let mut last = Tensor::zeros((b, h), obs.dtype(), obs.device())?;
        for l in 0..s.layers {
            let w_ih = v.get(&format!("gru.weight_ih_l{l}"))?.t()?.contiguous()?;
            let w_hh = v.get(&format!("gru.weight_hh_l{l}"))?.t()?.contiguous()?;
            let b_ih = v.get(&format!("gru.bias_ih_l{l}"))?;
            let b_hh = v.get(&format!("gru.bias_hh_l{l}"))?;
            // Input projections of every step at once; only the recurrence is sequential.
            let gi = x
                .matmul(&w_ih)?
                .broadcast_add(b_ih)?
                .reshape((b, t_len, 3 * h))?;
            let mut hid = Tensor::zeros((b, h), obs.dtype(), obs.device())?;
            let mut outs = Vec::with_capacity(t_len);
            for t in 0..t_len {
                let g = gi.narrow(1, t, 1)?.squeeze(1)?;
                let gh = hid.matmul(&w_hh)?.broadcast_add(b_hh)?;
                let r = candle_nn::ops::sigmoid(&(g.narrow(1, 0, h)? + gh.narrow(1, 0, h)?)?)?;
                let z = candle_nn::ops::sigmoid(&(g.narrow(1, h, h)? + gh.narrow(1, h, h)?)?)?;
                let n = (g.narrow(1, 2 * h, h)? + r.mul(&gh.narrow(1, 2 * h, h)?)?)?.tanh()?;
                // h' = (1 − z)·n + z·h = n + z·(h − n)
                hid = (&n + z.mul(&(hid - &n)?)?)?;
                if l + 1 < s.layers {
                    outs.push(hid.clone());
                }
            }
            if l + 1 < s.layers {
                x = Tensor::stack(&outs, 1)?.reshape((b * t_len, h))?;
            }
            last = hid;
        }
        Ok(if s.tail_dim > 0 {
            Tensor::cat(&[&last, &obs.narrow(1, t_len * s.step_dim, s.tail_dim)?], 1)?
        } else {
            last
        })
    }

    /// A dropout mask for a minibatch of `b` observations: each value 0 with probability `p`,
    /// else 1/(1 − p); drawn from the run's seeded generator so a run repeats exactly.
    pub fn dropout_mask(&self, b: usize, p: f64, rng: &mut Rng, device: &Device) -> Result<Tensor> {
        let n = b * self.spec.seq_len * self.spec.hidden;
        let keep = (1.0 / (1.0 - p)) as f32;
        // Drawn in parallel, the same values as n `uniform` calls in sequence.
        let v = rng.uniforms(n, |u| if u < p { 0.0 } else { keep });
        Ok(Tensor::from_vec(
            v,
            (b * self.spec.seq_len, self.spec.hidden),
            device,
        )?)
    }

    /// Host copies of every tensor, for [`super::host_gru::HostGru`].
    pub fn host_tensors(&self, theta: &Tensor) -> Result<HashMap<String, Vec<f32>>> {
        let all = theta.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        Ok(self
            .entries
            .iter()
            .map(|(n, s, off)| {
                let len: usize = s.iter().product();
                (n.clone(), all[*off..off + len].to_vec())
            })
            .collect())
    }
}

/// A head `hidden + tail → head_hidden → out` with a ReLU between.
fn head(v: &Views, name: &str, feat: &Tensor) -> Result<Tensor> {
    let x = linear(
        feat,
        v.get(&format!("{name}.0.weight"))?,
        v.get(&format!("{name}.0.bias"))?,
    )?
    .relu()?;
    linear(
        &x,
        v.get(&format!("{name}.1.weight"))?,
        v.get(&format!("{name}.1.bias"))?,
    )
}

fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(x.matmul(&w.t()?)?.broadcast_add(b)?)
}
