//! The actor-critic's parameters as one flat device buffer, for the training loop: every layer is
//! a zero-copy view into it, the gradient comes back as one flat buffer in the same order, and
//! the optimizer (Adam with global-norm clipping) runs a handful of whole-buffer ops per step
//! instead of a dozen per tensor. The model's own `Var`s are refreshed from it when the model is
//! needed (validation, checkpoints).
//!
//! Order: each trunk layer's weight (transposed, `[in, out]`) then bias, then the fused head:
//! the actor's and the critic's weights side by side as one `[hidden, A + 1]` matrix, then their
//! biases (one matmul gives logits and value).

use super::ops::affine;
use super::ActorCritic;
use anyhow::{bail, Result};
use candle_core::Tensor;

/// A dense layer's weight, stored transposed as `[in, out]` (so `x · wt` reads it row-major,
/// which candle's CPU matmul runs markedly faster than a transposed view), and its bias `[out]`.
pub struct LayerView {
    pub wt: Tensor,
    pub b: Tensor,
}

pub struct FlatParams {
    /// All parameters, `[P]`.
    pub theta: Tensor,
    /// (in, out) of each trunk layer, then of the fused head (last hidden, `n_actions + 1`).
    shapes: Vec<(usize, usize)>,
    n_actions: usize,
}

impl FlatParams {
    pub fn from_model(model: &ActorCritic) -> Result<Self> {
        let layers: Vec<(&Tensor, &Tensor)> = model
            .layers()
            .iter()
            .map(|(_, w, b)| (w.as_tensor(), b.as_tensor()))
            .collect();
        Self::from_layers(&layers)
    }

    /// From per-layer `(weight [out, in], bias [out])` in the model's order (trunk, actor,
    /// critic): the model's parameters, or a gradient taken with respect to them.
    pub fn from_layers(layers: &[(&Tensor, &Tensor)]) -> Result<Self> {
        if layers.len() < 2 {
            bail!("an actor-critic has at least an actor and a critic layer");
        }
        let n_trunk = layers.len() - 2;
        let mut parts = Vec::new();
        let mut shapes = Vec::new();
        for (w, b) in &layers[..n_trunk] {
            let (out, inp) = w.dims2()?;
            parts.push(w.t()?.contiguous()?.flatten_all()?);
            parts.push(b.flatten_all()?);
            shapes.push((inp, out));
        }
        let (wa, ba) = layers[n_trunk];
        let (wc, bc) = layers[n_trunk + 1];
        let (a, hidden) = wa.dims2()?;
        let head = Tensor::cat(&[wa, wc], 0)?;
        parts.push(head.t()?.contiguous()?.flatten_all()?);
        parts.push(Tensor::cat(&[ba, bc], 0)?);
        shapes.push((hidden, a + 1));
        // `detach`: a plain tensor, so the ops on it record no autograd graph.
        let theta = Tensor::cat(&parts, 0)?.detach();
        Ok(FlatParams {
            theta,
            shapes,
            n_actions: a,
        })
    }

    /// The same parameters in another dtype (tests check gradients in f64).
    pub fn to_dtype(&self, dtype: candle_core::DType) -> Result<Self> {
        Ok(FlatParams {
            theta: self.theta.to_dtype(dtype)?,
            shapes: self.shapes.clone(),
            n_actions: self.n_actions,
        })
    }

    /// (in, out) of each trunk layer, then of the fused head.
    pub fn shapes(&self) -> &[(usize, usize)] {
        &self.shapes
    }

    pub fn n_actions(&self) -> usize {
        self.n_actions
    }

    /// Trunk layers, then the fused head, as views of `theta`.
    pub fn layers(&self) -> Result<Vec<LayerView>> {
        views(&self.theta, &self.shapes)
    }

    /// The same views over another buffer of the same layout (a gradient, a moment).
    pub fn layers_of(&self, flat: &Tensor) -> Result<Vec<LayerView>> {
        views(flat, &self.shapes)
    }

    /// Copies the parameters back into the model's variables.
    pub fn write_to(&self, model: &ActorCritic) -> Result<()> {
        let layers = model.layers();
        let n_trunk = layers.len() - 2;
        let views = self.layers()?;
        if views.len() != n_trunk + 1 {
            bail!("flat parameters do not match the model's layout");
        }
        for ((_, w, b), v) in layers[..n_trunk].iter().zip(&views) {
            w.set(&v.wt.t()?.contiguous()?)?;
            b.set(&v.b)?;
        }
        let head = &views[n_trunk];
        let w = head.wt.t()?;
        let a = self.n_actions;
        let (_, wa, ba) = &layers[n_trunk];
        let (_, wc, bc) = &layers[n_trunk + 1];
        wa.set(&w.narrow(0, 0, a)?.contiguous()?)?;
        wc.set(&w.narrow(0, a, 1)?.contiguous()?)?;
        ba.set(&head.b.narrow(0, 0, a)?)?;
        bc.set(&head.b.narrow(0, a, 1)?)?;
        Ok(())
    }
}

pub(crate) fn views(flat: &Tensor, shapes: &[(usize, usize)]) -> Result<Vec<LayerView>> {
    let mut off = 0;
    let mut out = Vec::with_capacity(shapes.len());
    for &(i, o) in shapes {
        let wt = flat.narrow(0, off, i * o)?.reshape((i, o))?;
        off += i * o;
        let b = flat.narrow(0, off, o)?;
        off += o;
        out.push(LayerView { wt, b });
    }
    if off != flat.elem_count() {
        bail!(
            "a flat buffer of {} values does not hold a layout of {off}",
            flat.elem_count()
        );
    }
    Ok(out)
}

/// Adam (the update candle-nn's `AdamW` makes with zero weight decay) over flat buffers, after
/// scaling the gradient to a global norm of at most `max_norm` — computed on the device, with
/// no host round trip, as `min(1, max_norm / (norm + 1e-6))` (PyTorch's `clip_grad_norm_`).
pub struct FlatAdam {
    m: Tensor,
    v: Tensor,
    t: i32,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl FlatAdam {
    pub fn new(params: &FlatParams) -> Result<Self> {
        Ok(FlatAdam {
            m: params.theta.zeros_like()?,
            v: params.theta.zeros_like()?,
            t: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        })
    }

    /// One step on `params` with gradient `grad` (flat, same layout).
    pub fn step(
        &mut self,
        params: &mut FlatParams,
        grad: &Tensor,
        lr: f64,
        max_norm: f64,
    ) -> Result<()> {
        // The clipping factor s is folded into the moments' coefficients, and the bias
        // corrections into the step's: fewer passes over the buffers, the same update:
        // m ← β₁m + (1−β₁)·s·g, v ← β₂v + (1−β₂)·(s·g)²,
        // θ ← θ − lr·m̂/(√v̂ + ε) = θ − (lr·c₁/√c₂)·m / (√v + ε/√c₂), c = 1/(1 − βᵗ).
        let s = clip_factor(grad, max_norm)?;
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let g1 = grad.broadcast_mul(&s.affine(1.0 - b1, 0.0)?)?;
        self.m = (affine(&self.m, b1, 0.0)? + g1)?;
        let g2 = grad
            .broadcast_mul(&s.affine((1.0 - b2).sqrt(), 0.0)?)?
            .sqr()?;
        self.v = (affine(&self.v, b2, 0.0)? + g2)?;
        let c1 = 1.0 / (1.0 - b1.powi(self.t));
        let sqrt_c2 = (1.0 / (1.0 - b2.powi(self.t))).sqrt();
        let denom = affine(&self.v.sqrt()?, 1.0, self.eps / sqrt_c2)?;
        let step = (affine(&self.m, lr * c1 / sqrt_c2, 0.0)? / denom)?;
        params.theta = (&params.theta - step)?;
        Ok(())
    }
}

/// `min(1, max_norm / (‖grad‖ + 1e-6))` as a one-element device tensor (PyTorch's
/// `clip_grad_norm_` factor): no host round trip.
pub fn clip_factor(grad: &Tensor, max_norm: f64) -> Result<Tensor> {
    let norm = grad.sqr()?.sum_all()?.sqrt()?;
    Ok(norm
        .affine(1.0, 1e-6)?
        .recip()?
        .affine(max_norm, 0.0)?
        .minimum(1.0)?
        .reshape(1)?)
}

/// The gradient scaled by its clipping factor.
pub fn clip_global_norm(grad: &Tensor, max_norm: f64) -> Result<Tensor> {
    Ok(grad.broadcast_mul(&clip_factor(grad, max_norm)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};

    fn flat_of(model: &ActorCritic) -> Vec<f32> {
        FlatParams::from_model(model)
            .unwrap()
            .theta
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn views_and_write_back_keep_every_named_tensor() {
        let dev = Device::Cpu;
        let model = ActorCritic::new(7, &[5, 4], 8, 1, &dev).unwrap();
        let mut flat = FlatParams::from_model(&model).unwrap();
        assert_eq!(flat.theta.elem_count(), model.param_count());
        // The fused head's columns: the actor's 8, then the critic's.
        let head = &flat.layers().unwrap()[2];
        let head_w = head.wt.t().unwrap();
        let named: std::collections::HashMap<_, _> = model.named_tensors().into_iter().collect();
        let same = |a: &Tensor, b: &Tensor| {
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                == b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        assert!(same(
            &head_w.narrow(0, 0, 8).unwrap(),
            &named["actor.weight"]
        ));
        assert!(same(
            &head_w.narrow(0, 8, 1).unwrap(),
            &named["critic.weight"]
        ));
        let w0 = &flat.layers().unwrap()[0].wt;
        assert!(same(&w0.t().unwrap(), &named["trunk.0.weight"]));
        assert!(same(
            &head.b.narrow(0, 8, 1).unwrap(),
            &named["critic.bias"]
        ));

        // Change every parameter, write back, read the model again.
        flat.theta = flat.theta.affine(2.0, 0.5).unwrap();
        let want: Vec<f32> = flat.theta.to_vec1().unwrap();
        flat.write_to(&model).unwrap();
        assert_eq!(flat_of(&model), want);
        let after: std::collections::HashMap<_, _> = model.named_tensors().into_iter().collect();
        let w0 = after["trunk.0.weight"].t().unwrap().flatten_all().unwrap();
        assert_eq!(w0.to_vec1::<f32>().unwrap()[..35], want[..35]);
    }

    #[test]
    fn flat_adam_matches_candle_adamw_without_decay() {
        let dev = Device::Cpu;
        let model = ActorCritic::new(6, &[5], 8, 2, &dev).unwrap();
        let reference = ActorCritic::new(6, &[5], 8, 2, &dev).unwrap();
        let mut flat = FlatParams::from_model(&model).unwrap();
        let mut adam = FlatAdam::new(&flat).unwrap();
        let mut adamw = AdamW::new(
            reference.vars(),
            ParamsAdamW {
                lr: 1e-2,
                weight_decay: 0.0,
                ..Default::default()
            },
        )
        .unwrap();
        let obs = Tensor::arange(0f32, 18.0, &dev)
            .unwrap()
            .reshape((3, 6))
            .unwrap()
            .affine(0.1, -0.5)
            .unwrap();
        for _ in 0..3 {
            // Any differentiable function will do; the optimisers must agree on its gradient.
            let (logits, v) = reference.forward(&obs).unwrap();
            let loss = (logits.sqr().unwrap().sum_all().unwrap() + v.sum_all().unwrap()).unwrap();
            let grads = loss.backward().unwrap();
            // The gradient in flat order, taken from the reference's variables.
            let g: Vec<(&Tensor, &Tensor)> = reference
                .layers()
                .iter()
                .map(|(_, w, b)| (grads.get(w).unwrap(), grads.get(b).unwrap()))
                .collect();
            let flat_grad = FlatParams::from_layers(&g).unwrap().theta;
            adamw.step(&grads).unwrap();
            // A norm limit far above the gradient's: clipping stays out of the comparison.
            adam.step(&mut flat, &flat_grad, 1e-2, 1e9).unwrap();
        }
        let (a, b) = (flat.theta.to_vec1::<f32>().unwrap(), flat_of(&reference));
        assert!(a != flat_of(&model), "three steps must move the parameters");
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-6, "{x} vs {y}");
        }
    }

    #[test]
    fn adam_clips_the_gradient_before_its_update() {
        let dev = Device::Cpu;
        let model = ActorCritic::new(6, &[5], 8, 3, &dev).unwrap();
        let (mut a, mut b) = (
            FlatParams::from_model(&model).unwrap(),
            FlatParams::from_model(&model).unwrap(),
        );
        let (mut opt_a, mut opt_b) = (FlatAdam::new(&a).unwrap(), FlatAdam::new(&b).unwrap());
        for i in 0..3 {
            let g = Tensor::randn(0f32, 1.0, a.theta.elem_count(), &dev)
                .unwrap()
                .affine(1.0 + i as f64, 0.0)
                .unwrap();
            opt_a.step(&mut a, &g, 1e-2, 0.5).unwrap();
            let clipped = clip_global_norm(&g, 0.5).unwrap();
            opt_b.step(&mut b, &clipped, 1e-2, 1e9).unwrap();
        }
        let (x, y) = (
            a.theta.to_vec1::<f32>().unwrap(),
            b.theta.to_vec1::<f32>().unwrap(),
        );
        for (p, q) in x.iter().zip(&y) {
            assert!((p - q).abs() < 1e-6, "{p} vs {q}");
        }
    }

    #[test]
    fn clipping_scales_to_the_norm_limit_and_only_above_it() {
        let g = Tensor::new(&[3f32, 4.0], &Device::Cpu).unwrap();
        let clipped: Vec<f32> = clip_global_norm(&g, 0.5).unwrap().to_vec1().unwrap();
        let norm = (clipped[0].powi(2) + clipped[1].powi(2)).sqrt();
        assert!((norm - 0.5).abs() < 1e-5, "{norm}");
        assert!((clipped[0] / clipped[1] - 0.75).abs() < 1e-6);
        let kept: Vec<f32> = clip_global_norm(&g, 10.0).unwrap().to_vec1().unwrap();
        assert_eq!(kept, vec![3.0, 4.0]);
    }
}
