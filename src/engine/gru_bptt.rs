//! The GRU actor-critic's forward and PPO backward through time, written out as the MLP's are
//! (`backward`): the encoder (bias + ReLU + LayerNorm, ×2, dropout after), the GRU layers of
//! `gru_layers` (input projections as one matmul, fused steps, weight gradients as one matmul
//! over all steps), and the two heads; no autograd graph, no gradient for the observations, the
//! update's matmuls in `ppo.precision`'s dtype (`amp::Mm`) with the element-wise work in f32.
//! Tests hold the gradient to candle's autograd through [`GruNet::forward_autograd`] and to
//! finite differences, and the fused CPU path to the candle-op path.

use super::adam::Grads;
use super::amp::Mm;
use super::backward::{loss_grad, Batch, Coefs};
use super::gru::{GruNet, Views};
use super::gru_layers::{self as gl, GruWeights, LayerCache, LnCache, Path};
use super::gru_pool as pool;
use anyhow::{anyhow, Result};
use candle_core::{DType, Tensor, D};
use std::collections::HashMap;

/// Everything the backward pass reads, time-major (row `t·B + b`).
pub struct Cache {
    /// The encoder's input `[T·B, step_dim]` and the first block's output `[T·B, H]`.
    xs: Tensor,
    y0: Tensor,
    ln: [LnCache; 2],
    /// The dropout mask, time-major.
    mask: Option<Tensor>,
    layers: Vec<LayerCache>,
    /// The heads' input `[B, H + tail]` and each head's hidden ReLU output.
    feat: Tensor,
    hidden: [Tensor; 2],
}

fn linear(mm: Mm, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(mm.matmul(x, &w.t()?.contiguous()?)?.broadcast_add(b)?)
}

fn gru_weights<'a>(v: &'a Views, l: usize) -> Result<GruWeights<'a>> {
    Ok(GruWeights {
        w_ih: v.get(&format!("gru.weight_ih_l{l}"))?,
        w_hh: v.get(&format!("gru.weight_hh_l{l}"))?,
        b_ih: v.get(&format!("gru.bias_ih_l{l}"))?,
        b_hh: v.get(&format!("gru.bias_hh_l{l}"))?,
    })
}

/// `[B, T·X]` batch-major rows → `[T·B, X]` time-major.
fn time_major(x: &Tensor, b: usize, t_len: usize) -> Result<Tensor> {
    let w = x.elem_count() / (b * t_len);
    Ok(x.reshape((b, t_len, w))?
        .transpose(0, 1)?
        .contiguous()?
        .reshape((t_len * b, w))?)
}

/// The heads' input `[B, hidden + tail]` and, with `keep`, the cache (heads' part unset).
fn trunk(
    net: &GruNet,
    v: &Views,
    obs: &Tensor,
    dropout: Option<&Tensor>,
    mm: Mm,
    keep: bool,
) -> Result<(Tensor, Option<Cache>)> {
    let s = &net.spec;
    let (b, obs_dim) = obs.dims2()?;
    if obs_dim != s.obs_dim() {
        anyhow::bail!(
            "observation of {obs_dim} values, the GRU expects {} ({})",
            s.obs_dim(),
            s.describe()
        );
    }
    let (t_len, h) = (s.seq_len, s.hidden);
    let path = Path::for_tensor(obs);
    let xs = time_major(&obs.narrow(1, 0, t_len * s.step_dim)?, b, t_len)?;
    let block = |i: usize, x: &Tensor| -> Result<(Tensor, LnCache)> {
        let w = v.get(&format!("enc.{i}.weight"))?;
        let a = pool::matmul(path, mm, x, &w.t()?.contiguous()?)?;
        let g = |n: &str| v.get(&format!("enc.{i}.{n}"));
        let out = gl::bias_relu_ln(path, &a, g("bias")?, g("ln.weight")?, g("ln.bias")?);
        pool::reclaim(&a)?;
        out
    };
    let (y0, c0) = block(0, &xs)?;
    let (y1, c1) = block(1, &y0)?;
    let mask = dropout.map(|m| time_major(m, b, t_len)).transpose()?;
    let mut x = match &mask {
        Some(m) => {
            let x = (&y1 * m)?;
            pool::reclaim(&y1)?;
            x
        }
        None => y1,
    };
    let mut layers = Vec::with_capacity(s.layers);
    let mut last = None;
    for l in 0..s.layers {
        let (hs, cache) = gl::layer(path, mm, &x, t_len, &gru_weights(v, l)?, keep)?;
        layers.extend(cache);
        last = Some(hs.narrow(0, t_len * b, b)?);
        x = hs.narrow(0, b, t_len * b)?;
    }
    let last = match last {
        Some(l) => l,
        None => Tensor::zeros((b, h), obs.dtype(), obs.device())?,
    };
    let feat = if s.tail_dim > 0 {
        Tensor::cat(&[&last, &obs.narrow(1, t_len * s.step_dim, s.tail_dim)?], 1)?
    } else {
        last.contiguous()?
    };
    let cache = keep.then(|| Cache {
        xs,
        y0,
        ln: [c0, c1],
        mask,
        layers,
        feat: feat.clone(),
        hidden: [feat.clone(), feat.clone()],
    });
    Ok((feat, cache))
}

/// A head `feat → ReLU(hidden) → out`: (output, hidden).
fn head(v: &Views, name: &str, feat: &Tensor, mm: Mm) -> Result<(Tensor, Tensor)> {
    let w = |n: &str| v.get(&format!("{name}.{n}"));
    let hid = linear(mm, feat, w("0.weight")?, w("0.bias")?)?.relu()?;
    Ok((linear(mm, &hid, w("1.weight")?, w("1.bias")?)?, hid))
}

/// The heads' input (see [`GruNet::features`]).
pub fn features(
    net: &GruNet,
    theta: &Tensor,
    obs: &Tensor,
    dropout: Option<&Tensor>,
) -> Result<Tensor> {
    Ok(trunk(net, &net.views(theta)?, obs, dropout, Mm::F32, false)?.0)
}

/// Logits and values, no cache (see [`GruNet::forward`]).
pub fn forward(
    net: &GruNet,
    theta: &Tensor,
    obs: &Tensor,
    dropout: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let v = net.views(theta)?;
    let (feat, _) = trunk(net, &v, obs, dropout, Mm::F32, false)?;
    let (logits, _) = head(&v, "actor", &feat, Mm::F32)?;
    let (value, _) = head(&v, "critic", &feat, Mm::F32)?;
    Ok((logits, value.squeeze(D::Minus1)?))
}

/// Logits `[B, A]`, values `[B]` and the cache for [`backward`].
pub fn forward_train(
    net: &GruNet,
    v: &Views,
    obs: &Tensor,
    dropout: Option<&Tensor>,
    mm: Mm,
) -> Result<(Tensor, Tensor, Cache)> {
    let (feat, cache) = trunk(net, v, obs, dropout, mm, true)?;
    let mut cache = cache.ok_or_else(|| anyhow!("no cache kept (a bug)"))?;
    let (logits, ha) = head(v, "actor", &feat, mm)?;
    let (value, hc) = head(v, "critic", &feat, mm)?;
    cache.hidden = [ha, hc];
    Ok((logits, value.squeeze(D::Minus1)?, cache))
}

/// Column sums as `1ᵀ·t` (candle's CPU sum over rows is slow), always in f32: a bias
/// gradient sums thousands of rows, more than bf16's 8 bits of mantissa carry.
pub(crate) fn colsum(t: &Tensor) -> Result<Tensor> {
    if let Some(s) = colsum_threads(t)? {
        return Ok(s);
    }
    let ones = Tensor::ones((1, t.dim(0)?), t.dtype(), t.device())?;
    Ok(ones.matmul(t)?.flatten_all()?)
}

/// [`colsum`] of a large f32 CPU matrix with unit column stride on rayon's threads, the same
/// bits (see `gru_kernels::col_sums`): candle's `1ᵀ·t` runs on one thread, and summing a
/// minibatch's gate gradients that way was the calling thread's largest serial cost. A single
/// column (another gemm path) or another layout: None.
fn colsum_threads(t: &Tensor) -> Result<Option<Tensor>> {
    let Ok((rows, n)) = t.dims2() else {
        return Ok(None);
    };
    if !t.device().is_cpu() || t.dtype() != DType::F32 || rows == 0 || n < 2 {
        return Ok(None);
    }
    pool::with_strided(t, |v, (rs, cs)| {
        if cs != 1 {
            return Ok(None);
        }
        let s = super::gru_kernels::col_sums(v, rows, n, rs);
        Ok(Some(Tensor::from_vec(s, n, t.device())?))
    })
}

/// A head's backward from ∂/∂out: its four gradients (into `g`) and ∂/∂feat.
fn head_back(
    v: &Views,
    name: &str,
    feat: &Tensor,
    hid: &Tensor,
    g_out: &Tensor,
    mm: Mm,
    g: &mut HashMap<String, Tensor>,
) -> Result<Tensor> {
    let w = |n: &str| v.get(&format!("{name}.{n}"));
    g.insert(format!("{name}.1.weight"), mm.matmul(&g_out.t()?, hid)?);
    g.insert(format!("{name}.1.bias"), colsum(g_out)?);
    let d_hid = mm.matmul(g_out, w("1.weight")?)?;
    let d_a = (d_hid * hid.gt(0.0)?.to_dtype(hid.dtype())?)?;
    g.insert(format!("{name}.0.weight"), mm.matmul(&d_a.t()?, feat)?);
    g.insert(format!("{name}.0.bias"), colsum(&d_a)?);
    mm.matmul(&d_a, w("0.weight")?)
}

/// Back-propagates ∂loss/∂logits `[B, A]` and ∂loss/∂values `[B, 1]` to every parameter;
/// the gradient in the flat buffer's two groups.
pub fn backward(
    net: &GruNet,
    v: &Views,
    c: &Cache,
    g_logits: &Tensor,
    g_v: &Tensor,
    mm: Mm,
) -> Result<Grads> {
    let s = &net.spec;
    let path = Path::for_tensor(&c.feat);
    let mut g = HashMap::new();
    let d_feat = (head_back(v, "actor", &c.feat, &c.hidden[0], g_logits, mm, &mut g)?
        + head_back(v, "critic", &c.feat, &c.hidden[1], g_v, mm, &mut g)?)?;
    let mut d_last = Some(d_feat.narrow(1, 0, s.hidden)?.contiguous()?);
    let mut d_seq: Option<Tensor> = None;
    for (l, cache) in c.layers.iter().enumerate().rev() {
        let w = gru_weights(v, l)?;
        let lg = gl::layer_back(path, mm, cache, &w, d_seq.as_ref(), d_last.as_ref(), true)?;
        d_seq.as_ref().map(pool::reclaim).transpose()?;
        for (n, t) in [
            ("weight_ih", lg.w_ih),
            ("weight_hh", lg.w_hh),
            ("bias_ih", lg.b_ih),
            ("bias_hh", lg.b_hh),
        ] {
            g.insert(format!("gru.{n}_l{l}"), t);
        }
        d_seq = lg.x;
        d_last = None;
    }
    let d_x = d_seq.ok_or_else(|| anyhow!("a GRU without layers (a bug)"))?;
    let mut dy = match &c.mask {
        Some(m) => {
            let dy = (&d_x * m)?;
            pool::reclaim(&d_x)?;
            dy
        }
        None => d_x,
    };
    for i in [1, 0] {
        let gamma = v.get(&format!("enc.{i}.ln.weight"))?;
        let (da, dgamma, dbeta) = gl::bias_relu_ln_back(path, &c.ln[i], &dy, gamma)?;
        pool::reclaim(&dy)?;
        let input = if i == 1 { &c.y0 } else { &c.xs };
        g.insert(format!("enc.{i}.weight"), mm.matmul(&da.t()?, input)?);
        g.insert(format!("enc.{i}.bias"), colsum(&da)?);
        g.insert(format!("enc.{i}.ln.weight"), dgamma);
        g.insert(format!("enc.{i}.ln.bias"), dbeta);
        if i == 1 {
            dy = pool::matmul(path, mm, &da, v.get("enc.1.weight")?)?;
        }
        pool::reclaim(&da)?;
    }
    let (mut actor, mut critic) = (Vec::new(), Vec::new());
    for (name, _) in s.tensors() {
        let t = g
            .remove(&name)
            .ok_or_else(|| anyhow!("no gradient for {name} (a bug)"))?
            .flatten_all()?;
        if name.starts_with("critic.") {
            critic.push(t);
        } else {
            actor.push(t);
        }
    }
    Ok(Grads {
        actor: Tensor::cat(&actor, 0)?,
        critic: Tensor::cat(&critic, 0)?,
    })
}

/// The PPO loss's gradient (of `scale` × the loss: f16 loss scaling) in the two groups, and the
/// statistics; `dropout` is the minibatch's mask (see [`GruNet::dropout_mask`]).
pub fn ppo_grad(
    net: &GruNet,
    theta: &Tensor,
    batch: &Batch,
    c: Coefs,
    dropout: Option<&Tensor>,
    mm: Mm,
    scale: f64,
) -> Result<(Grads, Tensor)> {
    let v = net.views(theta)?;
    let (logits, values, cache) = forward_train(net, &v, batch.obs, dropout, mm)?;
    let (mut g_logits, mut g_v, stats) = loss_grad(&logits, &values, batch, c)?;
    if scale != 1.0 {
        g_logits = g_logits.affine(scale, 0.0)?;
        g_v = g_v.affine(scale, 0.0)?;
    }
    let grads = backward(net, &v, &cache, &g_logits, &g_v, mm)?;
    cache.recycle()?;
    Ok((grads, stats))
}

impl Cache {
    /// Hands the minibatch's activations back to the lent workspace (`gru_pool`): the ones the
    /// forward made, not the time-major input or mask, which may be views of the caller's.
    fn recycle(self) -> Result<()> {
        pool::reclaim(&self.y0)?;
        self.ln.into_iter().try_for_each(LnCache::recycle)?;
        if let Some(first) = self.layers.first() {
            // y₁ or y₁ ⊙ mask: made here.
            pool::reclaim(first.input())?;
        }
        self.layers.into_iter().try_for_each(LayerCache::recycle)
    }
}

/// The critic-only epochs' step: the gradient of vf_coef × ½·mean((v − R)²) for the value
/// head alone (the critic group's layout), and ½·mean((v − R)²) `[1]`.
pub fn value_grad(
    net: &GruNet,
    critic: &Tensor,
    feat: &Tensor,
    returns: &Tensor,
    vf_coef: f64,
) -> Result<(Tensor, Tensor)> {
    let v = net.critic_views(critic)?;
    let (value, hid) = head(&v, "critic", feat, Mm::F32)?;
    let err = (value.squeeze(D::Minus1)? - returns)?;
    let n = err.dim(0)? as f64;
    let g_v = err.affine(vf_coef / n, 0.0)?.unsqueeze(1)?;
    let mut g = HashMap::new();
    head_back(&v, "critic", feat, &hid, &g_v, Mm::F32, &mut g)?;
    let parts: Result<Vec<Tensor>> = [
        "critic.0.weight",
        "critic.0.bias",
        "critic.1.weight",
        "critic.1.bias",
    ]
    .iter()
    .map(|n| {
        Ok(g.remove(*n)
            .ok_or_else(|| anyhow!("no gradient for {n}"))?
            .flatten_all()?)
    })
    .collect();
    Ok((
        Tensor::cat(&parts?, 0)?,
        (err.sqr()?.mean_all()? * 0.5)?.reshape(1)?,
    ))
}

#[cfg(test)]
#[path = "gru_bptt_tests.rs"]
mod tests;
