//! The actor-critic's forward and PPO backward written out by hand over candle's matmul and
//! element-wise ops (so the same code runs on CUDA). For a small MLP this beats the generic
//! autograd: no graph is recorded, no gradient is computed for the observations (the first
//! layer's input gradient alone costs as much as its weight gradient), and no zero-filled
//! accumulators are allocated. `tests` hold it against candle's autograd and against finite
//! differences.
//!
//! Loss (PPO, as the autograd version had it): clipped surrogate + vf_coef × ½·mean((v − R)²)
//! − ent_coef × mean entropy. With p = softmax(z), ℓ = log p, r = exp(ℓₐ − ℓ_old):
//! - ∂(surrogate)/∂zⱼ = −Â·r·[r·Â ≤ clip(r)·Â]·(1[j = a] − pⱼ) / B (the unclipped branch is the
//!   active one exactly when it is the minimum);
//! - ∂(−entropy)/∂zⱼ = pⱼ·(ℓⱼ + H) / B;
//! - ∂(value loss)/∂v = (v − R) / B.

use super::adam::Grads;
use super::amp::Mm;
use super::flat::LayerView;
use super::mlp_kernels::{bias_tanh, tanh_back};
use anyhow::Result;
use candle_core::{Tensor, D};

/// The activations a backward pass needs: each layer's input (the observation, then every tanh
/// output), and the fused head's output `[B, A + 1]` (logits, then the value).
pub struct Cache {
    pub inputs: Vec<Tensor>,
    pub heads: Tensor,
}

/// Trunk (tanh) then the fused head; `layers` as `FlatParams::layers` gives them.
pub fn forward(layers: &[LayerView], obs: &Tensor) -> Result<Cache> {
    forward_mm(layers, obs, Mm::F32)
}

/// [`forward`] with its matmuls in `mm`'s dtype (mixed precision; see `amp`).
pub fn forward_mm(layers: &[LayerView], obs: &Tensor, mm: Mm) -> Result<Cache> {
    let (head, trunk) = layers.split_last().expect("a model has a head");
    let mut inputs = Vec::with_capacity(layers.len());
    let mut x = obs.clone();
    for l in trunk {
        let h = bias_tanh(&mm.matmul(&x, &l.wt)?, &l.b)?;
        inputs.push(x);
        x = h;
    }
    let heads = mm.matmul(&x, &head.wt)?.broadcast_add(&head.b)?;
    inputs.push(x);
    Ok(Cache { inputs, heads })
}

/// Logits `[B, A]` and values `[B]` from the fused head's output.
pub fn split_heads(heads: &Tensor) -> Result<(Tensor, Tensor)> {
    let a = heads.dim(1)? - 1;
    Ok((heads.narrow(1, 0, a)?, heads.narrow(1, a, 1)?.squeeze(1)?))
}

/// One minibatch, already gathered.
pub struct Batch<'a> {
    pub obs: &'a Tensor,
    /// The taken actions one-hot, `[B, A]`, in the parameters' dtype.
    pub onehot: &'a Tensor,
    pub old_logp: &'a Tensor,
    /// Advantages, normalised.
    pub adv: &'a Tensor,
    pub returns: &'a Tensor,
}

#[derive(Debug, Clone, Copy)]
pub struct Coefs {
    pub clip: f64,
    pub vf_coef: f64,
    pub ent_coef: f64,
}

/// Statistics of a minibatch, as one device tensor `[5]` (read once per update):
/// policy loss, value loss, entropy, approximate KL, clip fraction.
pub const N_STATS: usize = 5;

/// The PPO loss's gradient in `FlatParams` layout, and the statistics.
pub fn ppo_grad(layers: &[LayerView], batch: &Batch, c: Coefs) -> Result<(Grads, Tensor)> {
    ppo_grad_mm(layers, batch, c, Mm::F32, 1.0)
}

/// [`ppo_grad`] with the matmuls in `mm`'s dtype and the gradient of `scale` × the loss (loss
/// scaling for f16: the caller divides it back, see `amp::Amp::unscale`).
pub fn ppo_grad_mm(
    layers: &[LayerView],
    batch: &Batch,
    c: Coefs,
    mm: Mm,
    scale: f64,
) -> Result<(Grads, Tensor)> {
    let cache = forward_mm(layers, batch.obs, mm)?;
    let (logits, v) = split_heads(&cache.heads)?;
    let (g_logits, g_v, stats) = loss_grad(&logits, &v, batch, c)?;
    let mut g_heads = Tensor::cat(&[&g_logits, &g_v], 1)?;
    if scale != 1.0 {
        g_heads = g_heads.affine(scale, 0.0)?;
    }
    let grad = backward_mm(layers, &cache, g_heads, mm)?;
    Ok((grad, stats))
}

/// The PPO loss's gradient with respect to the logits `[B, A]` and the values (as `[B, 1]`),
/// and the minibatch's statistics `[N_STATS]`; shared by the MLP and the GRU.
pub fn loss_grad(
    logits: &Tensor,
    v: &Tensor,
    batch: &Batch,
    c: Coefs,
) -> Result<(Tensor, Tensor, Tensor)> {
    let n = logits.dim(0)? as f64;
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let p = logp.exp()?;
    let logp_a = (&logp * batch.onehot)?.sum(1)?;
    let log_ratio = (&logp_a - batch.old_logp)?;
    let ratio = log_ratio.exp()?;
    let s1 = (&ratio * batch.adv)?;
    let s2 = (ratio.clamp(1.0 - c.clip, 1.0 + c.clip)? * batch.adv)?;
    let unclipped = s1.le(&s2)?.to_dtype(ratio.dtype())?;
    let entropy = (&p * &logp)?.sum_keepdim(1)?.neg()?; // [B, 1]
    let v_err = (v - batch.returns)?;

    // ∂loss/∂logits and ∂loss/∂value, per sample.
    let coef = (&s1 * &unclipped)?.affine(-1.0 / n, 0.0)?.unsqueeze(1)?; // −Â·r·active / B
    let g_pg = (batch.onehot - &p)?.broadcast_mul(&coef)?;
    let g_ent = (&p * logp.broadcast_add(&entropy)?)?.affine(c.ent_coef / n, 0.0)?;
    let g_logits = (g_pg + g_ent)?;
    let g_v = v_err.affine(c.vf_coef / n, 0.0)?.unsqueeze(1)?;

    let stats = Tensor::stack(
        &[
            s1.minimum(&s2)?.mean_all()?.neg()?,
            (v_err.sqr()?.mean_all()? * 0.5)?,
            entropy.mean_all()?,
            ((&ratio - 1.0)? - &log_ratio)?.mean_all()?,
            (&ratio - 1.0)?
                .abs()?
                .gt(c.clip)?
                .to_dtype(ratio.dtype())?
                .mean_all()?,
        ],
        0,
    )?;
    Ok((g_logits, g_v, stats))
}

/// Back-propagates `g_heads` (∂loss/∂ the fused head's output) to every parameter; returns the
/// gradient in `FlatParams` layout. The observation's gradient is never formed.
pub fn backward(layers: &[LayerView], cache: &Cache, g_heads: Tensor) -> Result<Grads> {
    backward_mm(layers, cache, g_heads, Mm::F32)
}

/// [`backward`] with its matmuls in `mm`'s dtype.
pub fn backward_mm(layers: &[LayerView], cache: &Cache, g_heads: Tensor, mm: Mm) -> Result<Grads> {
    let rows = g_heads.dim(0)?;
    let a = g_heads.dim(1)? - 1;
    // Bias gradients as `1ᵀ · g`: a matmul, where candle's CPU sum over rows is slow.
    let ones = Tensor::ones((1, rows), g_heads.dtype(), g_heads.device())?;
    let mut parts: Vec<Tensor> = Vec::with_capacity(2 * layers.len());
    let mut critic = Vec::with_capacity(2);
    let mut g_out = g_heads;
    for (i, l) in layers.iter().enumerate().rev() {
        let x = &cache.inputs[i];
        // Pushed in reverse (bias, then weight); the list is reversed at the end.
        let gb = mm.matmul(&ones, &g_out)?;
        let gw = mm.matmul(&x.t()?, &g_out)?;
        if i + 1 == layers.len() {
            // The fused head: its last column is the critic's.
            let cols = |t: &Tensor, from, n| -> Result<Tensor> {
                Ok(t.narrow(1, from, n)?.contiguous()?.flatten_all()?)
            };
            parts.push(cols(&gb, 0, a)?);
            parts.push(cols(&gw, 0, a)?);
            critic.push(cols(&gw, a, 1)?);
            critic.push(cols(&gb, a, 1)?);
        } else {
            parts.push(gb.flatten_all()?);
            parts.push(gw.flatten_all()?);
        }
        if i > 0 {
            // x = tanh(z) of the layer below: ∂/∂z = ∂/∂x · (1 − x²) = g − g·x·x.
            let g_x = mm.matmul(&g_out, &l.wt.t()?)?;
            g_out = tanh_back(&g_x, x)?;
        }
    }
    parts.reverse();
    Ok(Grads {
        actor: Tensor::cat(&parts, 0)?,
        critic: Tensor::cat(&critic, 0)?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engine::flat::{views, FlatParams};
    use crate::engine::ActorCritic;
    use crate::rng::Rng;
    use candle_core::{DType, Device, Var};

    const COEFS: Coefs = Coefs {
        clip: 0.2,
        vf_coef: 0.5,
        ent_coef: 0.05,
    };

    /// The forward in plain candle ops, which autograd can differentiate (the fused CPU kernels
    /// make fresh tensors that end its graph).
    fn reference_heads(layers: &[LayerView], obs: &Tensor) -> Tensor {
        let (head, trunk) = layers.split_last().unwrap();
        let mut x = obs.clone();
        for l in trunk {
            x = crate::engine::ops::tanh(&x.matmul(&l.wt).unwrap().broadcast_add(&l.b).unwrap())
                .unwrap();
        }
        x.matmul(&head.wt).unwrap().broadcast_add(&head.b).unwrap()
    }

    /// The PPO loss as the autograd trainer wrote it: the reference the hand gradient must match.
    fn reference_loss(layers: &[LayerView], b: &Batch, c: Coefs) -> Tensor {
        let (logits, v) = split_heads(&reference_heads(layers, b.obs)).unwrap();
        let logp_full = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
        let logp = (&logp_full * b.onehot).unwrap().sum(1).unwrap();
        let ratio = (&logp - b.old_logp).unwrap().exp().unwrap();
        let s1 = (&ratio * b.adv).unwrap();
        let s2 = (ratio.clamp(1.0 - c.clip, 1.0 + c.clip).unwrap() * b.adv).unwrap();
        let pg = s1.minimum(&s2).unwrap().mean_all().unwrap().neg().unwrap();
        let vl = ((&v - b.returns).unwrap().sqr().unwrap().mean_all().unwrap() * 0.5).unwrap();
        let ent = (logp_full.exp().unwrap() * &logp_full)
            .unwrap()
            .sum(D::Minus1)
            .unwrap()
            .mean_all()
            .unwrap()
            .neg()
            .unwrap();
        ((&pg + (&vl * c.vf_coef).unwrap()).unwrap() - (&ent * c.ent_coef).unwrap()).unwrap()
    }

    struct Case {
        params: FlatParams,
        obs: Tensor,
        onehot: Tensor,
        old_logp: Tensor,
        adv: Tensor,
        returns: Tensor,
    }

    impl Case {
        /// A small net and a batch whose old log-probabilities are spread around the current
        /// ones, so that some ratios fall outside the clip range on each side.
        fn new(obs_dim: usize, hidden: &[usize], rows: usize, dtype: DType, seed: u64) -> Case {
            let dev = Device::Cpu;
            let model = ActorCritic::new(obs_dim, hidden, 8, seed, &dev).unwrap();
            let mut params = FlatParams::from_model(&model)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let mut rng = Rng::new(seed);
            let mut normal = |k: usize, s: f64| -> Tensor {
                let v: Vec<f64> = (0..k).map(|_| rng.normal() * s).collect();
                Tensor::from_vec(v, k, &dev)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap()
            };
            // A larger head than the init's keeps the policy away from uniform.
            params.actor = (&params.actor + normal(params.actor.elem_count(), 0.3)).unwrap();
            params.critic = (&params.critic + normal(params.critic.elem_count(), 0.3)).unwrap();
            let obs = normal(rows * obs_dim, 1.0)
                .reshape((rows, obs_dim))
                .unwrap();
            let mut rng = Rng::new(seed + 1);
            let actions: Vec<u32> = (0..rows).map(|_| rng.below(8) as u32).collect();
            let onehot = Tensor::new(actions.as_slice(), &dev)
                .unwrap()
                .unsqueeze(1)
                .unwrap()
                .broadcast_eq(&Tensor::arange(0u32, 8, &dev).unwrap().unsqueeze(0).unwrap())
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let (logits, _) =
                split_heads(&forward(&params.layers().unwrap(), &obs).unwrap().heads).unwrap();
            let logp = (candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap() * &onehot)
                .unwrap()
                .sum(1)
                .unwrap();
            let old_logp = (logp + normal(rows, 0.4)).unwrap();
            Case {
                params,
                obs,
                onehot,
                old_logp,
                adv: normal(rows, 1.0),
                returns: normal(rows, 1.0),
            }
        }

        fn batch(&self) -> Batch<'_> {
            Batch {
                obs: &self.obs,
                onehot: &self.onehot,
                old_logp: &self.old_logp,
                adv: &self.adv,
                returns: &self.returns,
            }
        }

        fn clipped_share(&self) -> f64 {
            let (logits, _) = split_heads(
                &forward(&self.params.layers().unwrap(), &self.obs)
                    .unwrap()
                    .heads,
            )
            .unwrap();
            let logp = (candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap() * &self.onehot)
                .unwrap()
                .sum(1)
                .unwrap();
            let r = (logp - &self.old_logp).unwrap().exp().unwrap();
            let out = (r - 1.0).unwrap().abs().unwrap().gt(0.2).unwrap();
            out.to_dtype(DType::F64)
                .unwrap()
                .mean_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        }
    }

    fn to_f64(t: &Tensor) -> Vec<f64> {
        t.to_dtype(DType::F64).unwrap().to_vec1().unwrap()
    }

    /// The hand gradient, actor's then critic's.
    fn hand_grad(g: &Grads) -> Vec<f64> {
        let mut v = to_f64(&g.actor);
        v.extend(to_f64(&g.critic));
        v
    }

    fn autograd_grad(case: &Case) -> Vec<f64> {
        let actor = Var::from_tensor(&case.params.actor).unwrap();
        let critic = Var::from_tensor(&case.params.critic).unwrap();
        let layers = case
            .params
            .layers_of(actor.as_tensor(), critic.as_tensor())
            .unwrap();
        let loss = reference_loss(&layers, &case.batch(), COEFS);
        let grads = loss.backward().unwrap();
        let mut v = to_f64(grads.get(actor.as_tensor()).unwrap());
        v.extend(to_f64(grads.get(critic.as_tensor()).unwrap()));
        v
    }

    /// The one gradient comparison of the engine's tests, shared with the GRU's.
    pub(crate) fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(0f64, |m, g| m.max(g.abs()));
        assert!(scale > 1e-6, "a vanishing reference gradient tests nothing");
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= tol * scale,
                "{what}: parameter {i}: {a:e} vs {b:e} (scale {scale:e})"
            );
        }
    }

    #[test]
    fn hand_gradient_matches_candle_autograd() {
        for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 2e-5)] {
            let case = Case::new(23, &[16, 12, 7], 64, dtype, 3);
            let clipped = case.clipped_share();
            assert!(
                clipped > 0.1 && clipped < 0.9,
                "the batch should mix clipped and unclipped samples: {clipped}"
            );
            let (hand, stats) =
                ppo_grad(&case.params.layers().unwrap(), &case.batch(), COEFS).unwrap();
            assert_close(&hand_grad(&hand), &autograd_grad(&case), tol, "autograd");
            // The statistics' losses are those the reference loss is made of.
            let s = to_f64(&stats);
            let loss = reference_loss(&case.params.layers().unwrap(), &case.batch(), COEFS);
            let total = s[0] + COEFS.vf_coef * s[1] - COEFS.ent_coef * s[2];
            let want = loss
                .to_dtype(DType::F64)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert!((total - want).abs() < tol.max(1e-6) * want.abs().max(1.0));
        }
    }

    #[test]
    fn mixed_precision_gradient_is_close_to_f32_and_loss_scaling_cancels() {
        use crate::engine::amp::{Amp, Mm};
        let case = Case::new(23, &[16, 12, 7], 64, DType::F32, 3);
        let layers = case.params.layers().unwrap();
        let (exact, _) = ppo_grad(&layers, &case.batch(), COEFS).unwrap();
        let exact = hand_grad(&exact);
        // bf16 keeps 8 bits of mantissa, f16 11: each within its rounding of the f32 gradient.
        for (mm, scale, tol) in [
            (Mm(DType::BF16), 1.0, 3e-2),
            (Mm(DType::F16), 1.0, 5e-3),
            (Mm(DType::F16), 1024.0, 5e-3),
        ] {
            let (g, _) = ppo_grad_mm(&layers, &case.batch(), COEFS, mm, scale).unwrap();
            let g = Grads {
                actor: g.actor.affine(1.0 / scale, 0.0).unwrap(),
                critic: g.critic.affine(1.0 / scale, 0.0).unwrap(),
            };
            let got = hand_grad(&g);
            assert_close(&got, &exact, tol, "exact");
            assert!(
                got != exact,
                "{mm:?}: the matmuls really ran in reduced precision"
            );
        }
        // The f16 scaler's path: scaled backward, then unscale.
        let mut amp = Amp::new(crate::config::Precision::F16);
        let (g, _) = ppo_grad_mm(&layers, &case.batch(), COEFS, amp.mm, amp.scale()).unwrap();
        let g = amp
            .unscale(g)
            .unwrap()
            .expect("no overflow at the initial scale");
        assert_close(&hand_grad(&g), &exact, 5e-3, "exact");
    }

    #[test]
    fn flat_forward_matches_the_model_forward() {
        let dev = Device::Cpu;
        let model = ActorCritic::new(19, &[13, 6], 8, 7, &dev).unwrap();
        let params = FlatParams::from_model(&model).unwrap();
        let obs = Tensor::randn(0f32, 1.0, (9, 19), &dev).unwrap();
        let (logits, values) = model.forward(&obs).unwrap();
        let (l2, v2) =
            split_heads(&forward(&params.layers().unwrap(), &obs).unwrap().heads).unwrap();
        let diff = |a: &Tensor, b: &Tensor| {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(diff(&logits, &l2) < 1e-5 && diff(&values, &v2) < 1e-5);
    }

    #[test]
    fn hand_gradient_matches_finite_differences() {
        let case = Case::new(5, &[4, 3], 12, DType::F64, 11);
        let (hand, _) = ppo_grad(&case.params.layers().unwrap(), &case.batch(), COEFS).unwrap();
        let hand = hand_grad(&hand);
        let mut theta = to_f64(&case.params.actor);
        let n_actor = theta.len();
        theta.extend(to_f64(&case.params.critic));
        let shapes = case.params.shapes();
        let loss_at = |t: &[f64]| -> f64 {
            let actor = Tensor::new(&t[..n_actor], &Device::Cpu).unwrap();
            let critic = Tensor::new(&t[n_actor..], &Device::Cpu).unwrap();
            let layers = views(&actor, &critic, shapes).unwrap();
            reference_loss(&layers, &case.batch(), COEFS)
                .to_scalar::<f64>()
                .unwrap()
        };
        let h = 1e-6;
        let numeric: Vec<f64> = (0..theta.len())
            .map(|i| {
                let (mut up, mut down) = (theta.clone(), theta.clone());
                up[i] += h;
                down[i] -= h;
                (loss_at(&up) - loss_at(&down)) / (2.0 * h)
            })
            .collect();
        assert_close(&hand, &numeric, 1e-6, "finite differences");
    }
}
