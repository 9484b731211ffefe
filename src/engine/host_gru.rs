//! The GRU actor-critic's forward pass in plain Rust for one observation: what the backtest and
//! the paper trader run per bar, with no device round trip. Held equal to the candle forward by
//! a test (and both to PyTorch's by a recorded fixture).

use super::gru::{GruSpec, LN_EPS};
use super::policy::dot;
use anyhow::{anyhow, Result};
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct HostGru {
    pub spec: GruSpec,
    t: HashMap<String, Vec<f32>>,
}

impl HostGru {
    pub fn new(spec: GruSpec, tensors: HashMap<String, Vec<f32>>) -> Result<Self> {
        for (name, shape) in spec.tensors() {
            let n: usize = shape.iter().product();
            match tensors.get(&name) {
                Some(v) if v.len() == n => {}
                Some(v) => {
                    return Err(anyhow!(
                        "GRU tensor {name} holds {} values, not {n}",
                        v.len()
                    ))
                }
                None => return Err(anyhow!("GRU tensor {name} missing")),
            }
        }
        Ok(HostGru { spec, t: tensors })
    }

    fn w(&self, name: &str) -> &[f32] {
        // Every name was checked in `new`.
        &self.t[name]
    }

    /// Logits and the state value. The sequence's input-side products (the encoder's two
    /// layers, each GRU layer's `x·W_ihᵀ`) run as one matrix product over all steps; only
    /// `h·W_hhᵀ` is per step — a decision over a 10-symbol portfolio took ~10 ms as 32 matrix-
    /// vector products per layer.
    pub fn forward(&self, obs: &[f32]) -> (Vec<f32>, f32) {
        let s = &self.spec;
        let (h, t_len) = (s.hidden, s.seq_len);
        let mut x = obs[..t_len * s.step_dim].to_vec();
        let mut width = s.step_dim;
        for i in 0..2 {
            let w = self.w(&format!("enc.{i}.weight"));
            let b = self.w(&format!("enc.{i}.bias"));
            let (g, beta) = (
                self.w(&format!("enc.{i}.ln.weight")),
                self.w(&format!("enc.{i}.ln.bias")),
            );
            let mut y = rows_times_wt(&x, w, b, (t_len, width, h));
            for row in y.chunks_exact_mut(h) {
                row.iter_mut().for_each(|v| *v = v.max(0.0));
                layer_norm(row, g, beta);
            }
            x = y;
            width = h;
        }
        let mut hid = vec![0f32; h];
        for l in 0..s.layers {
            let w_ih = self.w(&format!("gru.weight_ih_l{l}"));
            let w_hh = self.w(&format!("gru.weight_hh_l{l}"));
            let (b_ih, b_hh) = (
                self.w(&format!("gru.bias_ih_l{l}")),
                self.w(&format!("gru.bias_hh_l{l}")),
            );
            let gi_all = rows_times_wt(&x, w_ih, b_ih, (t_len, h, 3 * h));
            hid = vec![0f32; h];
            for (gi, out) in gi_all.chunks_exact(3 * h).zip(x.chunks_exact_mut(h)) {
                let gh = rows_times_wt(&hid, w_hh, b_hh, (1, h, 3 * h));
                for k in 0..h {
                    let r = sigmoid(gi[k] + gh[k]);
                    let z = sigmoid(gi[h + k] + gh[h + k]);
                    let n = (gi[2 * h + k] + r * gh[2 * h + k]).tanh();
                    hid[k] = n + z * (hid[k] - n);
                }
                out.copy_from_slice(&hid);
            }
        }
        let mut feat = hid;
        feat.extend_from_slice(&obs[s.seq_len * s.step_dim..s.obs_dim()]);
        let head = |name: &str, out: usize| {
            let mut x = affine(
                self.w(&format!("{name}.0.weight")),
                self.w(&format!("{name}.0.bias")),
                s.head_hidden,
                feat.len(),
                &feat,
            );
            x.iter_mut().for_each(|v| *v = v.max(0.0));
            affine(
                self.w(&format!("{name}.1.weight")),
                self.w(&format!("{name}.1.bias")),
                out,
                s.head_hidden,
                &x,
            )
        };
        (head("actor", s.n_actions), head("critic", 1)[0])
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `x [m, k] · wᵀ + b` for a row-major `w [n, k]`: `[m, n]`, on the calling thread.
fn rows_times_wt(x: &[f32], w: &[f32], b: &[f32], (m, k, n): (usize, usize, usize)) -> Vec<f32> {
    assert!(x.len() >= m * k && w.len() >= n * k && b.len() >= n);
    let mut out: Vec<f32> = b.iter().copied().cycle().take(m * n).collect();
    // SAFETY: `x` is m×k row-major, `w` n×k row-major read as its k×n transpose (row stride 1,
    // column stride k), `out` m×n row-major: all within the lengths asserted above.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
    out
}

fn affine(w: &[f32], b: &[f32], out: usize, inp: usize, x: &[f32]) -> Vec<f32> {
    (0..out)
        .map(|o| b[o] + dot(&w[o * inp..(o + 1) * inp], x))
        .collect()
}

fn layer_norm(x: &mut [f32], g: &[f32], b: &[f32]) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + LN_EPS).sqrt();
    for ((v, g), b) in x.iter_mut().zip(g).zip(b) {
        *v = (*v - mean) * inv * g + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gru::GruNet;
    use crate::rng::Rng;
    use candle_core::{DType, Device, Tensor, Var};

    fn spec() -> GruSpec {
        GruSpec {
            seq_len: 5,
            step_dim: 3,
            tail_dim: 2,
            hidden: 12,
            layers: 2,
            head_hidden: 6,
            n_actions: 4,
        }
    }

    /// Random (not initial) parameters, so that every weight matters to the outputs.
    fn theta(net: &GruNet, seed: u64, dtype: DType) -> Tensor {
        let mut rng = Rng::new(seed);
        let v: Vec<f32> = (0..net.spec.param_count())
            .map(|_| (rng.normal() * 0.4) as f32)
            .collect();
        let n = v.len();
        Tensor::from_vec(v, n, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }

    fn observations(b: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..b * dim).map(|_| rng.normal() as f32).collect()
    }

    #[test]
    fn host_forward_matches_the_candle_forward() {
        let net = GruNet::new(spec());
        let th = theta(&net, 3, DType::F32);
        let dim = net.spec.obs_dim();
        let obs = observations(4, dim, 9);
        let t = Tensor::from_vec(obs.clone(), (4, dim), &Device::Cpu).unwrap();
        let (logits, values) = net.forward(&th, &t, None).unwrap();
        let (logits, values) = (
            logits.to_vec2::<f32>().unwrap(),
            values.to_vec1::<f32>().unwrap(),
        );
        let host = HostGru::new(net.spec.clone(), net.host_tensors(&th).unwrap()).unwrap();
        for i in 0..4 {
            let (l, v) = host.forward(&obs[i * dim..(i + 1) * dim]);
            assert!((v - values[i]).abs() < 1e-5, "value {v} vs {}", values[i]);
            for (a, b) in l.iter().zip(&logits[i]) {
                assert!((a - b).abs() < 1e-5, "logit {a} vs {b}");
            }
        }
    }

    #[test]
    fn every_input_step_and_the_tail_reach_the_outputs() {
        // A GRU that read only its last step, or dropped the tail, would pass a parity test
        // against an equally wrong host version: perturb each part and watch the value move.
        let net = GruNet::new(spec());
        let th = theta(&net, 4, DType::F32);
        let host = HostGru::new(net.spec.clone(), net.host_tensors(&th).unwrap()).unwrap();
        let obs = observations(1, net.spec.obs_dim(), 2);
        let (_, v0) = host.forward(&obs);
        for k in [0, 4, 14, 15, 16] {
            let mut o = obs.clone();
            o[k] += 1.0;
            let (_, v) = host.forward(&o);
            assert!((v - v0).abs() > 1e-6, "input {k} has no effect");
        }
    }

    #[test]
    fn autograd_through_the_flat_buffer_matches_finite_differences() {
        let net = GruNet::new(spec());
        let th = Var::from_tensor(&theta(&net, 5, DType::F64)).unwrap();
        let dim = net.spec.obs_dim();
        let obs = Tensor::from_vec(observations(3, dim, 1), (3, dim), &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        let loss = |theta: &Tensor| -> Tensor {
            let (l, v) = net.forward_autograd(theta, &obs, None).unwrap();
            (l.sqr().unwrap().sum_all().unwrap() + v.sum_all().unwrap()).unwrap()
        };
        let grads = loss(th.as_tensor()).backward().unwrap();
        let g = grads.get(th.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
        let base = th.as_tensor().to_vec1::<f64>().unwrap();
        // One parameter from every tensor.
        let mut off = 0;
        for (name, shape) in net.spec.tensors() {
            let k = off + shape.iter().product::<usize>() / 2;
            off += shape.iter().product::<usize>();
            let at = |d: f64| {
                let mut p = base.clone();
                p[k] += d;
                let t = Tensor::from_vec(p, base.len(), &Device::Cpu).unwrap();
                loss(&t).to_scalar::<f64>().unwrap()
            };
            let fd = (at(1e-6) - at(-1e-6)) / 2e-6;
            assert!(
                (fd - g[k]).abs() < 1e-5 * (1.0 + fd.abs()),
                "{name}: autograd {} vs finite difference {fd}",
                g[k]
            );
        }
    }

    #[test]
    fn checkpoint_tensors_round_trip_and_a_wrong_shape_is_named() {
        let net = GruNet::new(spec());
        let th = theta(&net, 6, DType::F32);
        let named: HashMap<String, Tensor> = net.named_tensors(&th).unwrap().into_iter().collect();
        let back = net.theta_from(&named, &Device::Cpu).unwrap();
        assert_eq!(back.to_vec1::<f32>().unwrap(), th.to_vec1::<f32>().unwrap());
        let wider = GruNet::new(GruSpec {
            hidden: 16,
            ..spec()
        });
        let e = wider
            .theta_from(&named, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("enc.0.weight") && e.contains("hidden 16"), "{e}");
    }

    #[test]
    fn the_seeds_shape_has_the_seeds_parameter_count() {
        // Seed 002: encoder 2×Linear(→256), 2-layer GRU of 256, heads 256→128→16 / 1: 941k.
        let s = GruSpec {
            seq_len: 32,
            step_dim: 64,
            tail_dim: 0,
            hidden: 256,
            layers: 2,
            head_hidden: 128,
            n_actions: 16,
        };
        let p = s.param_count();
        assert!((930_000..950_000).contains(&p), "{p}");
        assert_eq!(s.init(1).len(), p);
    }

    #[test]
    fn candle_and_host_match_pytorchs_recorded_output() {
        // tests/fixtures/gru_torch_reference.py builds the same network from nn.Linear,
        // nn.LayerNorm and nn.GRU, and records its weights, inputs and outputs.
        #[derive(serde::Deserialize)]
        struct Fixture {
            spec: GruSpec,
            theta: Vec<f32>,
            obs: Vec<f32>,
            logits: Vec<f32>,
            values: Vec<f32>,
        }
        let f: Fixture =
            serde_json::from_str(include_str!("../../tests/fixtures/gru_torch.json")).unwrap();
        let net = GruNet::new(f.spec.clone());
        let n = f.theta.len();
        let th = Tensor::from_vec(f.theta, n, &Device::Cpu).unwrap();
        let (b, dim) = (f.values.len(), net.spec.obs_dim());
        let obs = Tensor::from_vec(f.obs.clone(), (b, dim), &Device::Cpu).unwrap();
        let (logits, values) = net.forward(&th, &obs, None).unwrap();
        let logits = logits.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let values = values.to_vec1::<f32>().unwrap();
        let host = HostGru::new(f.spec.clone(), net.host_tensors(&th).unwrap()).unwrap();
        let a = f.spec.n_actions;
        for i in 0..b {
            let (hl, hv) = host.forward(&f.obs[i * dim..(i + 1) * dim]);
            for (got, name) in [(values[i], "candle"), (hv, "host")] {
                assert!(
                    (got - f.values[i]).abs() < 1e-4,
                    "{name} value {got} vs torch {}",
                    f.values[i]
                );
            }
            for k in 0..a {
                let want = f.logits[i * a + k];
                assert!(
                    (logits[i * a + k] - want).abs() < 1e-4,
                    "candle logit vs torch {want}"
                );
                assert!(
                    (hl[k] - want).abs() < 1e-4,
                    "host logit {} vs torch {want}",
                    hl[k]
                );
            }
        }
    }
}
