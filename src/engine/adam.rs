//! The optimizers: Adam over one flat buffer (`FlatAdam`, the update candle-nn's `AdamW` makes
//! with zero weight decay), a handful of whole-buffer ops per step, and the actor-critic's pair of
//! them (`ActorCriticAdam`), one per parameter group with its own learning rate and step count.
//!
//! Who owns what (seed 002: "actor optimizer: encoder + GRU + policy head; critic optimizer: value
//! head"): the actor's optimizer owns the shared trunk and the policy head, the critic's the value
//! head. The trunk stays with the actor because it is the policy's input: stepping it at the
//! critic's 3× rate, or in critic-only epochs, would move the policy after PPO's clipped update
//! had bounded how far it may move. In the PPO epochs the gradient of the whole loss (surrogate +
//! value + entropy) is clipped by its joint norm, as before the split; each group then steps at
//! its own rate. The critic-only epochs (`critic`) step the value head alone.
//!
//! Measured on quick_test (README, "Separate optimizers"): see the explained-variance table there.

use super::flat::FlatParams;
use super::ops::affine;
use anyhow::Result;
use candle_core::Tensor;

/// Adam's state over one flat buffer.
#[derive(Clone)]
pub struct FlatAdam {
    pub m: Tensor,
    pub v: Tensor,
    /// Steps taken (bias correction).
    pub t: i32,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl FlatAdam {
    /// Fresh moments for a buffer shaped like `theta`.
    pub fn new(theta: &Tensor) -> Result<Self> {
        Ok(FlatAdam {
            m: theta.zeros_like()?,
            v: theta.zeros_like()?,
            t: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        })
    }

    /// One step on `theta` with gradient `grad` scaled by `s` (a one-element device tensor: the
    /// clipping factor; no host round trip).
    pub fn step(&mut self, theta: &mut Tensor, grad: &Tensor, s: &Tensor, lr: f64) -> Result<()> {
        // The clipping factor s is folded into the moments' coefficients, and the bias
        // corrections into the step's: fewer passes over the buffers, the same update:
        // m ← β₁m + (1−β₁)·s·g, v ← β₂v + (1−β₂)·(s·g)²,
        // θ ← θ − lr·m̂/(√v̂ + ε) = θ − (lr·c₁/√c₂)·m / (√v + ε/√c₂), c = 1/(1 − βᵗ).
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
        *theta = (&*theta - step)?;
        Ok(())
    }
}

/// The squared L2 norm of a buffer, as a one-element device tensor.
pub fn norm_sq(g: &Tensor) -> Result<Tensor> {
    Ok(g.sqr()?.sum_all()?.reshape(1)?)
}

/// `min(1, max_norm / (‖g‖ + 1e-6))` from ‖g‖² (PyTorch's `clip_grad_norm_` factor), on the
/// device.
pub fn clip_factor(norm_sq: &Tensor, max_norm: f64) -> Result<Tensor> {
    Ok(norm_sq
        .sqrt()?
        .affine(1.0, 1e-6)?
        .recip()?
        .affine(max_norm, 0.0)?
        .minimum(1.0)?
        .reshape(1)?)
}

/// The gradient scaled by its clipping factor.
pub fn clip_global_norm(grad: &Tensor, max_norm: f64) -> Result<Tensor> {
    Ok(grad.broadcast_mul(&clip_factor(&norm_sq(grad)?, max_norm)?)?)
}

/// The actor's and the critic's optimizers (see the module comment for what each owns).
#[derive(Clone)]
pub struct ActorCriticAdam {
    pub actor: FlatAdam,
    pub critic: FlatAdam,
}

/// A gradient in `FlatParams` layout: the actor group's and the critic group's.
pub struct Grads {
    pub actor: Tensor,
    pub critic: Tensor,
}

impl ActorCriticAdam {
    pub fn new(p: &FlatParams) -> Result<Self> {
        Ok(ActorCriticAdam {
            actor: FlatAdam::new(&p.actor)?,
            critic: FlatAdam::new(&p.critic)?,
        })
    }

    /// A PPO step: the whole gradient clipped by its joint norm, then each group at its rate.
    pub fn step(
        &mut self,
        p: &mut FlatParams,
        g: &Grads,
        lr_actor: f64,
        lr_critic: f64,
        max_norm: f64,
    ) -> Result<()> {
        self.step_groups(
            &mut p.actor,
            &mut p.critic,
            g,
            lr_actor,
            lr_critic,
            max_norm,
        )
    }

    /// [`ActorCriticAdam::step`] on any network's two groups (the MLP's or the GRU's).
    pub fn step_groups(
        &mut self,
        actor: &mut Tensor,
        critic: &mut Tensor,
        g: &Grads,
        lr_actor: f64,
        lr_critic: f64,
        max_norm: f64,
    ) -> Result<()> {
        let s = clip_factor(&(norm_sq(&g.actor)? + norm_sq(&g.critic)?)?, max_norm)?;
        self.actor.step(actor, &g.actor, &s, lr_actor)?;
        self.critic.step(critic, &g.critic, &s, lr_critic)
    }

    /// A critic-only step: the value head's gradient clipped by its own norm.
    pub fn step_critic(
        &mut self,
        p: &mut FlatParams,
        g_critic: &Tensor,
        lr: f64,
        max_norm: f64,
    ) -> Result<()> {
        self.step_critic_group(&mut p.critic, g_critic, lr, max_norm)
    }

    /// [`ActorCriticAdam::step_critic`] on any network's critic group.
    pub fn step_critic_group(
        &mut self,
        critic: &mut Tensor,
        g_critic: &Tensor,
        lr: f64,
        max_norm: f64,
    ) -> Result<()> {
        let s = clip_factor(&norm_sq(g_critic)?, max_norm)?;
        self.critic.step(critic, g_critic, &s, lr)
    }

    /// Fresh optimizers for two parameter groups.
    pub fn for_groups(actor: &Tensor, critic: &Tensor) -> Result<Self> {
        Ok(ActorCriticAdam {
            actor: FlatAdam::new(actor)?,
            critic: FlatAdam::new(critic)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ActorCritic;
    use candle_core::{Device, Var};
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};

    fn vec(t: &Tensor) -> Vec<f32> {
        t.to_vec1().unwrap()
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{x} vs {y}");
        }
    }

    /// Any differentiable function of the model will do: the optimisers must agree on its
    /// gradient. Returns it in `FlatParams` layout, and candle's gradient store.
    fn grads(model: &ActorCritic, obs: &Tensor) -> (Grads, candle_core::backprop::GradStore) {
        let (logits, v) = model.forward(obs).unwrap();
        let loss = (logits.sqr().unwrap().sum_all().unwrap() + v.sqr().unwrap().sum_all().unwrap())
            .unwrap();
        let store = loss.backward().unwrap();
        let g: Vec<(&Tensor, &Tensor)> = model
            .layers()
            .iter()
            .map(|(_, w, b)| (store.get(w).unwrap(), store.get(b).unwrap()))
            .collect();
        let flat = FlatParams::from_layers(&g).unwrap();
        (
            Grads {
                actor: flat.actor,
                critic: flat.critic,
            },
            store,
        )
    }

    fn obs(dev: &Device) -> Tensor {
        Tensor::arange(0f32, 18.0, dev)
            .unwrap()
            .reshape((3, 6))
            .unwrap()
            .affine(0.1, -0.5)
            .unwrap()
    }

    /// The split: each group follows candle's AdamW over its own variables at its own rate.
    #[test]
    fn each_group_is_adam_at_its_own_rate() {
        let dev = Device::Cpu;
        let model = ActorCritic::new(6, &[5], 8, 2, &dev).unwrap();
        let reference = ActorCritic::new(6, &[5], 8, 2, &dev).unwrap();
        let mut flat = FlatParams::from_model(&model).unwrap();
        let mut opt = ActorCriticAdam::new(&flat).unwrap();
        let vars = reference.vars();
        let (actor_vars, critic_vars) = vars.split_at(vars.len() - 2);
        let adamw = |vars: &[Var], lr| {
            AdamW::new(
                vars.to_vec(),
                ParamsAdamW {
                    lr,
                    weight_decay: 0.0,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let (mut ref_actor, mut ref_critic) = (adamw(actor_vars, 1e-2), adamw(critic_vars, 3e-2));
        for _ in 0..3 {
            let (g, store) = grads(&reference, &obs(&dev));
            ref_actor.step(&store).unwrap();
            ref_critic.step(&store).unwrap();
            // A norm limit far above the gradient's: clipping stays out of the comparison.
            opt.step(&mut flat, &g, 1e-2, 3e-2, 1e9).unwrap();
        }
        let want = FlatParams::from_model(&reference).unwrap();
        let before = FlatParams::from_model(&model).unwrap();
        assert!(
            vec(&flat.actor) != vec(&before.actor),
            "steps must move the actor"
        );
        assert!(
            vec(&flat.critic) != vec(&before.critic),
            "steps must move the critic"
        );
        close(&vec(&flat.actor), &vec(&want.actor));
        close(&vec(&flat.critic), &vec(&want.critic));
        assert_eq!((opt.actor.t, opt.critic.t), (3, 3));
    }

    /// A critic-only step leaves the actor's parameters and moments untouched.
    #[test]
    fn critic_steps_touch_the_value_head_only() {
        let dev = Device::Cpu;
        let model = ActorCritic::new(6, &[5], 8, 4, &dev).unwrap();
        let mut flat = FlatParams::from_model(&model).unwrap();
        let mut opt = ActorCriticAdam::new(&flat).unwrap();
        let (g, _) = grads(&model, &obs(&dev));
        opt.step(&mut flat, &g, 1e-2, 1e-2, 1e9).unwrap();
        let (actor, m, critic) = (vec(&flat.actor), vec(&opt.actor.m), vec(&flat.critic));
        opt.step_critic(&mut flat, &g.critic, 1e-2, 1e9).unwrap();
        assert_eq!(vec(&flat.actor), actor);
        assert_eq!(vec(&opt.actor.m), m);
        assert_eq!(opt.actor.t, 1);
        assert_eq!(opt.critic.t, 2);
        assert!(vec(&flat.critic) != critic);
    }

    #[test]
    fn joint_clipping_equals_clipping_the_whole_gradient_first() {
        let dev = Device::Cpu;
        let model = ActorCritic::new(6, &[5], 8, 3, &dev).unwrap();
        let (mut a, mut b) = (
            FlatParams::from_model(&model).unwrap(),
            FlatParams::from_model(&model).unwrap(),
        );
        let (mut opt_a, mut opt_b) = (
            ActorCriticAdam::new(&a).unwrap(),
            ActorCriticAdam::new(&b).unwrap(),
        );
        for i in 0..3 {
            let g = |n: usize| {
                Tensor::randn(0f32, 1.0, n, &dev)
                    .unwrap()
                    .affine(1.0 + i as f64, 0.0)
                    .unwrap()
            };
            let g = Grads {
                actor: g(a.actor.elem_count()),
                critic: g(a.critic.elem_count()),
            };
            opt_a.step(&mut a, &g, 1e-2, 2e-2, 0.5).unwrap();
            let whole =
                clip_global_norm(&Tensor::cat(&[&g.actor, &g.critic], 0).unwrap(), 0.5).unwrap();
            let n = g.actor.elem_count();
            let clipped = Grads {
                actor: whole.narrow(0, 0, n).unwrap(),
                critic: whole.narrow(0, n, g.critic.elem_count()).unwrap(),
            };
            opt_b.step(&mut b, &clipped, 1e-2, 2e-2, 1e9).unwrap();
        }
        close(&vec(&a.actor), &vec(&b.actor));
        close(&vec(&a.critic), &vec(&b.critic));
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
