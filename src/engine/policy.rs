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

    pub fn obs_dim(&self) -> usize {
        match self {
            HostPolicy::Mlp(m) => m.obs_dim,
            HostPolicy::Gru(g) => g.spec.obs_dim(),
        }
    }

    /// Action probabilities (softmax of the logits) and the state value.
    pub fn evaluate(&self, obs: &[f32]) -> (Vec<f32>, f32) {
        let (logits, value) = match self {
            HostPolicy::Mlp(m) => m.forward(obs),
            HostPolicy::Gru(g) => g.forward(obs),
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
