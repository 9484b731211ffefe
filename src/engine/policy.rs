//! Inference for the backtest and the paper trader: the network's weights copied to the host once,
//! then a plain forward per observation (no device round trips on the bar loop). One type for
//! every encoder, so each evaluator (backtest, walk-forward, paper, validation) takes any model.

use super::host_gru::HostGru;
use super::model::HostLayer;
use super::ActorCritic;
use anyhow::Result;

/// A policy on the host: the MLP actor-critic or the GRU encoder's.
#[derive(Clone)]
pub enum HostPolicy {
    Mlp(HostMlp),
    Gru(Box<HostGru>),
    /// Several policies of one layout deciding together: the mean of their action
    /// probabilities and of their values.
    Ensemble(Vec<HostPolicy>),
}

/// The MLP actor-critic's layers: tanh trunk, then the policy and value heads.
#[derive(Clone)]
pub struct HostMlp {
    layers: Vec<HostLayer>,
    obs_dim: usize,
}

impl HostPolicy {
    pub fn from_model(model: &ActorCritic) -> Result<Self> {
        Ok(HostPolicy::Mlp(HostMlp {
            layers: model.host_layers()?,
            obs_dim: model.obs_dim,
        }))
    }

    /// An ensemble of `members`, refused when they are none or read different observations.
    pub fn ensemble(members: Vec<HostPolicy>) -> Result<Self> {
        let Some(first) = members.first() else {
            anyhow::bail!("an ensemble needs at least one member");
        };
        let dim = first.obs_dim();
        if let Some(m) = members.iter().find(|m| m.obs_dim() != dim) {
            anyhow::bail!(
                "ensemble members read different observations ({dim} and {} values)",
                m.obs_dim()
            );
        }
        Ok(HostPolicy::Ensemble(members))
    }

    pub fn obs_dim(&self) -> usize {
        match self {
            HostPolicy::Mlp(m) => m.obs_dim,
            HostPolicy::Gru(g) => g.spec.obs_dim(),
            HostPolicy::Ensemble(ms) => ms.first().map_or(0, HostPolicy::obs_dim),
        }
    }

    /// Action probabilities (softmax of the logits) and the state value.
    pub fn evaluate(&self, obs: &[f32]) -> (Vec<f32>, f32) {
        let (logits, value) = match self {
            HostPolicy::Mlp(m) => m.forward(obs),
            HostPolicy::Gru(g) => g.forward(obs),
            HostPolicy::Ensemble(ms) => return mean_of(ms, obs),
        };
        (softmax(&logits), value)
    }

    /// The most probable action and its probability (the policy's confidence).
    pub fn act(&self, obs: &[f32]) -> (usize, f32) {
        let (p, _) = self.evaluate(obs);
        let (i, best) =
            p.iter().enumerate().fold(
                (0, f32::NEG_INFINITY),
                |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
            );
        (i, best)
    }
}

impl HostMlp {
    /// Logits and value.
    fn forward(&self, obs: &[f32]) -> (Vec<f32>, f32) {
        let n_trunk = self.layers.len() - 2;
        let mut x: Vec<f32> = obs.to_vec();
        for (w, b, out, inp) in &self.layers[..n_trunk] {
            x = affine(w, b, *out, *inp, &x);
            super::host_kernels::tanh_in_place(&mut x);
        }
        let (wa, ba, oa, ia) = &self.layers[n_trunk];
        let (wc, bc, oc, ic) = &self.layers[n_trunk + 1];
        let logits = affine(wa, ba, *oa, *ia, &x);
        let value = affine(wc, bc, *oc, *ic, &x)[0];
        (logits, value)
    }
}

/// The members' mean probabilities and value (the members' own softmax first: averaging logits
/// would let one confident member outvote the rest).
fn mean_of(members: &[HostPolicy], obs: &[f32]) -> (Vec<f32>, f32) {
    let mut probs: Vec<f32> = Vec::new();
    let mut value = 0f32;
    for m in members {
        let (p, v) = m.evaluate(obs);
        if probs.is_empty() {
            probs = vec![0.0; p.len()];
        }
        for (a, b) in probs.iter_mut().zip(&p) {
            *a += b;
        }
        value += v;
    }
    let n = members.len().max(1) as f32;
    probs.iter_mut().for_each(|p| *p /= n);
    (probs, value / n)
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

fn affine(w: &[f32], b: &[f32], out: usize, inp: usize, x: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; out];
    super::host_kernels::affine(w, b, out, inp, x, &mut y);
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use candle_core::{Device, Tensor};

    #[test]
    fn an_ensemble_decides_by_its_members_mean_probabilities() {
        let dev = Device::Cpu;
        let a = HostPolicy::from_model(&ActorCritic::new(9, &[6], 8, 1, &dev).unwrap()).unwrap();
        let b = HostPolicy::from_model(&ActorCritic::new(9, &[6], 8, 2, &dev).unwrap()).unwrap();
        let obs: Vec<f32> = (0..9).map(|i| i as f32 / 4.0 - 1.0).collect();
        let ((pa, va), (pb, vb)) = (a.evaluate(&obs), b.evaluate(&obs));
        assert_ne!(pa, pb, "two seeds, two policies");
        let both = HostPolicy::ensemble(vec![a.clone(), b]).unwrap();
        let (p, v) = both.evaluate(&obs);
        for i in 0..8 {
            assert!((p[i] - (pa[i] + pb[i]) / 2.0).abs() < 1e-6);
        }
        assert!((v - (va + vb) / 2.0).abs() < 1e-6);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        // One member decides as itself; none, or another layout, is refused.
        assert_eq!(
            HostPolicy::ensemble(vec![a.clone()]).unwrap().act(&obs),
            a.act(&obs)
        );
        assert!(HostPolicy::ensemble(vec![]).is_err());
        let c = HostPolicy::from_model(&ActorCritic::new(7, &[6], 8, 3, &dev).unwrap()).unwrap();
        let e = HostPolicy::ensemble(vec![a, c]).err().unwrap().to_string();
        assert!(e.contains("9 and 7"), "{e}");
    }

    #[test]
    fn host_inference_matches_the_candle_forward_pass() {
        // 37 inputs: exercises both the 8-lane body and the remainder of the dot product.
        let model = ActorCritic::new(37, &[19, 11], 8, 4, &Device::Cpu).unwrap();
        let host = HostPolicy::from_model(&model).unwrap();
        let mut rng = Rng::new(5);
        let obs: Vec<f32> = (0..3 * 37).map(|_| rng.normal() as f32).collect();
        let t = Tensor::from_vec(obs.clone(), (3, 37), &Device::Cpu).unwrap();
        let (logits, values) = model.forward(&t).unwrap();
        let probs = candle_nn::ops::softmax_last_dim(&logits)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let values = values.to_vec1::<f32>().unwrap();
        for i in 0..3 {
            let (p, v) = host.evaluate(&obs[i * 37..(i + 1) * 37]);
            assert!((v - values[i]).abs() < 1e-5, "value {v} vs {}", values[i]);
            for (a, b) in p.iter().zip(&probs[i]) {
                assert!((a - b).abs() < 1e-6, "{a} vs {b}");
            }
        }
    }
}
