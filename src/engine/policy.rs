//! Inference for the backtest and the paper trader: the network's weights copied to the host once,
//! then a plain matrix-vector forward per observation (no device round trips on the bar loop).

use super::model::HostLayer;
use super::ActorCritic;
use anyhow::Result;

pub struct HostPolicy {
    layers: Vec<HostLayer>,
    pub obs_dim: usize,
}

impl HostPolicy {
    pub fn from_model(model: &ActorCritic) -> Result<Self> {
        Ok(HostPolicy {
            layers: model.host_layers()?,
            obs_dim: model.obs_dim,
        })
    }

    /// Action probabilities (softmax of the logits) and the state value.
    pub fn evaluate(&self, obs: &[f32]) -> (Vec<f32>, f32) {
        let n_trunk = self.layers.len() - 2;
        let mut x: Vec<f32> = obs.to_vec();
        for (w, b, out, inp) in &self.layers[..n_trunk] {
            x = affine(w, b, *out, *inp, &x);
            x.iter_mut().for_each(|v| *v = v.tanh());
        }
        let (wa, ba, oa, ia) = &self.layers[n_trunk];
        let (wc, bc, oc, ic) = &self.layers[n_trunk + 1];
        let logits = affine(wa, ba, *oa, *ia, &x);
        let value = affine(wc, bc, *oc, *ic, &x)[0];
        let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = exps.iter().sum();
        (exps.iter().map(|e| e / sum).collect(), value)
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

fn affine(w: &[f32], b: &[f32], out: usize, inp: usize, x: &[f32]) -> Vec<f32> {
    (0..out)
        .map(|o| {
            let row = &w[o * inp..(o + 1) * inp];
            b[o] + row.iter().zip(x).map(|(a, c)| a * c).sum::<f32>()
        })
        .collect()
}
