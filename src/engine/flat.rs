//! The actor-critic's parameters as two flat device buffers, one per optimizer (`adam`): the
//! actor's (trunk and policy head) and the critic's (value head). Every layer is a zero-copy view
//! into them, except the fused head the forward multiplies by (`[hidden, A + 1]`: the policy
//! head's columns, then the value head's), which is assembled from both buffers — a copy of a few
//! hundred values. Gradients come back as the same two flat buffers. The model's own `Var`s are
//! refreshed from them when the model is needed (validation, checkpoints).
//!
//! Actor order: each trunk layer's weight (transposed, `[in, out]`) then bias, then the policy
//! head's weight (transposed, `[hidden, A]`) and bias. Critic order: the value head's weight
//! (`[hidden]`), then its bias.

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
    /// Trunk and policy head, `[P_actor]`.
    pub actor: Tensor,
    /// Value head, `[hidden + 1]`.
    pub critic: Tensor,
    /// (in, out) of each trunk layer, then of the policy head (last hidden, `n_actions`).
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
        for (w, b) in &layers[..=n_trunk] {
            let (out, inp) = w.dims2()?;
            parts.push(w.t()?.contiguous()?.flatten_all()?);
            parts.push(b.flatten_all()?);
            shapes.push((inp, out));
        }
        let (wc, bc) = layers[n_trunk + 1];
        let critic = Tensor::cat(&[wc.flatten_all()?, bc.flatten_all()?], 0)?;
        // `detach`: plain tensors, so the ops on them record no autograd graph.
        Ok(FlatParams {
            actor: Tensor::cat(&parts, 0)?.detach(),
            critic: critic.detach(),
            n_actions: shapes[n_trunk].1,
            shapes,
        })
    }

    /// The same parameters in another dtype (tests check gradients in f64).
    pub fn to_dtype(&self, dtype: candle_core::DType) -> Result<Self> {
        Ok(FlatParams {
            actor: self.actor.to_dtype(dtype)?,
            critic: self.critic.to_dtype(dtype)?,
            shapes: self.shapes.clone(),
            n_actions: self.n_actions,
        })
    }

    /// (in, out) of each trunk layer, then of the policy head.
    pub fn shapes(&self) -> &[(usize, usize)] {
        &self.shapes
    }

    pub fn n_actions(&self) -> usize {
        self.n_actions
    }

    /// Width of the last hidden layer (the heads' input).
    pub fn hidden(&self) -> usize {
        self.shapes[self.shapes.len() - 1].0
    }

    /// All parameters, actor's then critic's.
    pub fn count(&self) -> usize {
        self.actor.elem_count() + self.critic.elem_count()
    }

    /// Trunk layers as views of the actor buffer, then the fused head.
    pub fn layers(&self) -> Result<Vec<LayerView>> {
        views(&self.actor, &self.critic, &self.shapes)
    }

    /// The same layers over other buffers of the same layout (a gradient, autograd variables).
    pub fn layers_of(&self, actor: &Tensor, critic: &Tensor) -> Result<Vec<LayerView>> {
        views(actor, critic, &self.shapes)
    }

    /// The trunk's layers alone (views of the actor buffer).
    pub fn trunk(&self) -> Result<Vec<LayerView>> {
        let mut v = actor_views(&self.actor, &self.shapes)?;
        v.pop();
        Ok(v)
    }

    /// The value head as a `[hidden, 1]` weight and a `[1]` bias (views of the critic buffer).
    pub fn value_head(&self) -> Result<LayerView> {
        let h = self.hidden();
        Ok(LayerView {
            wt: self.critic.narrow(0, 0, h)?.reshape((h, 1))?,
            b: self.critic.narrow(0, h, 1)?,
        })
    }

    /// Copies the parameters back into the model's variables.
    pub fn write_to(&self, model: &ActorCritic) -> Result<()> {
        let layers = model.layers();
        let views = actor_views(&self.actor, &self.shapes)?;
        if views.len() + 1 != layers.len() {
            bail!("flat parameters do not match the model's layout");
        }
        for ((_, w, b), v) in layers.iter().zip(&views) {
            w.set(&v.wt.t()?.contiguous()?)?;
            b.set(&v.b)?;
        }
        let (_, wc, bc) = &layers[layers.len() - 1];
        let h = self.hidden();
        wc.set(&self.critic.narrow(0, 0, h)?.reshape((1, h))?)?;
        bc.set(&self.critic.narrow(0, h, 1)?)?;
        Ok(())
    }
}

/// Views of an actor buffer: the trunk layers, then the policy head.
fn actor_views(flat: &Tensor, shapes: &[(usize, usize)]) -> Result<Vec<LayerView>> {
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

/// Trunk views, then the fused head `[hidden, A + 1]` (policy columns, then the value column).
pub(crate) fn views(
    actor: &Tensor,
    critic: &Tensor,
    shapes: &[(usize, usize)],
) -> Result<Vec<LayerView>> {
    let mut out = actor_views(actor, shapes)?;
    let policy = out.pop().expect("shapes hold a policy head");
    let h = shapes[shapes.len() - 1].0;
    if critic.elem_count() != h + 1 {
        bail!(
            "a value head of {} values does not fit a last hidden layer of {h}",
            critic.elem_count()
        );
    }
    out.push(LayerView {
        wt: Tensor::cat(&[&policy.wt, &critic.narrow(0, 0, h)?.reshape((h, 1))?], 1)?,
        b: Tensor::cat(&[&policy.b, &critic.narrow(0, h, 1)?], 0)?,
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn vec(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn views_and_write_back_keep_every_named_tensor() {
        let dev = Device::Cpu;
        let model = ActorCritic::new(7, &[5, 4], 8, 1, &dev).unwrap();
        let mut flat = FlatParams::from_model(&model).unwrap();
        assert_eq!(flat.count(), model.param_count());
        assert_eq!(flat.critic.elem_count(), 5);
        // The fused head's columns: the actor's 8, then the critic's.
        let head = &flat.layers().unwrap()[2];
        let head_w = head.wt.t().unwrap();
        let named: std::collections::HashMap<_, _> = model.named_tensors().into_iter().collect();
        assert_eq!(
            vec(&head_w.narrow(0, 0, 8).unwrap()),
            vec(&named["actor.weight"])
        );
        assert_eq!(
            vec(&head_w.narrow(0, 8, 1).unwrap()),
            vec(&named["critic.weight"])
        );
        assert_eq!(
            vec(&head.b.narrow(0, 8, 1).unwrap()),
            vec(&named["critic.bias"])
        );
        let w0 = &flat.layers().unwrap()[0].wt;
        assert_eq!(vec(&w0.t().unwrap()), vec(&named["trunk.0.weight"]));
        // The critic buffer is the value head alone.
        let mut critic = vec(&named["critic.weight"]);
        critic.extend(vec(&named["critic.bias"]));
        assert_eq!(vec(&flat.critic), critic);

        // Change every parameter, write back, read the model again.
        flat.actor = flat.actor.affine(2.0, 0.5).unwrap();
        flat.critic = flat.critic.affine(-1.0, 0.25).unwrap();
        let (a, c) = (vec(&flat.actor), vec(&flat.critic));
        flat.write_to(&model).unwrap();
        let again = FlatParams::from_model(&model).unwrap();
        assert_eq!((vec(&again.actor), vec(&again.critic)), (a, c));
    }
}
