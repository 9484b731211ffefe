//! The GRU network's layers with their backward passes, time-major (row `t·B + b` is sample b's
//! step t): the encoder's bias + ReLU + LayerNorm, and a GRU layer through time — the input
//! projection of every step as one matmul, then per step one `h·W_hhᵀ` matmul and the three
//! gates in one fused pass; backward per step one fused pass and one `dgh·W_hh` matmul, the
//! weight gradients afterwards as one matmul each over all steps.
//!
//! Two implementations of the element-wise parts: [`Path::Fused`] (f32 on the CPU: the kernels
//! of `gru_kernels`, the per-step matmul straight into reused buffers) and [`Path::Ops`] (candle
//! ops: CUDA, and f64 for the gradient checks). Tests hold them equal.

use super::amp::Mm;
use super::gru_bptt::colsum;
use super::gru_chunks as gc;
use super::gru_kernels as k;
use super::gru_pool as pool;
use anyhow::{bail, Result};
use candle_core::{DType, Storage, Tensor};

/// Which implementation of the element-wise work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Fused,
    Ops,
}

impl Path {
    /// Fused for f32 on the CPU, candle ops otherwise.
    pub fn for_tensor(t: &Tensor) -> Path {
        #[cfg(test)]
        if FORCE_OPS.with(|f| f.get()) {
            return Path::Ops;
        }
        if t.device().is_cpu() && t.dtype() == DType::F32 {
            Path::Fused
        } else {
            Path::Ops
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Tests run the candle-op path on f32 CPU tensors too, to compare it with the fused one.
    pub(crate) static FORCE_OPS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` on a contiguous f32 CPU tensor's values, without copying them.
pub fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*s else {
        bail!("the fused GRU kernels run on the CPU only (a bug: Path::Ops elsewhere)");
    };
    let all = cpu.as_slice::<f32>()?;
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("a contiguous tensor without contiguous offsets (a bug)");
    };
    f(&all[a..b])
}

fn host(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?)
}

/// What the LayerNorm backward needs: the ReLU's output `[R, H]`, each row's mean and 1/std `[R, 1]`.
pub struct LnCache {
    u: Tensor,
    mean: Tensor,
    rstd: Tensor,
}

impl LnCache {
    /// Hands the buffers back to the lent workspace (see `gru_pool::reclaim`).
    pub fn recycle(self) -> Result<()> {
        [self.u, self.mean, self.rstd]
            .iter()
            .try_for_each(pool::reclaim)
    }
}

/// `LayerNorm(ReLU(a + bias))·γ + β` per row; the cache for [`bias_relu_ln_back`].
pub fn bias_relu_ln(
    path: Path,
    a: &Tensor,
    bias: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
) -> Result<(Tensor, LnCache)> {
    let (rows, hw) = a.dims2()?;
    if path == Path::Ops {
        let u = a.broadcast_add(bias)?.relu()?;
        let mean = u.mean_keepdim(1)?;
        let c = u.broadcast_sub(&mean)?;
        let rstd = (c.sqr()?.mean_keepdim(1)? + k::LN_EPS as f64)?
            .sqrt()?
            .recip()?;
        let y = c
            .broadcast_mul(&rstd)?
            .broadcast_mul(gamma)?
            .broadcast_add(beta)?;
        return Ok((y, LnCache { u, mean, rstd }));
    }
    let (bias, gamma, beta) = (host(bias)?, host(gamma)?, host(beta)?);
    let p = k::LnParams {
        bias: &bias,
        gamma: &gamma,
        beta: &beta,
    };
    // Every element written by the kernel (a pooled buffer's old values never read).
    let (mut u, mut y) = (pool::take(rows * hw), pool::take(rows * hw));
    let (mut mean, mut rstd) = (pool::take(rows), pool::take(rows));
    with_f32(a, |a| {
        k::bias_relu_ln(a, &p, hw, &mut u, &mut y, &mut mean, &mut rstd);
        Ok(())
    })?;
    let dev = a.device();
    Ok((
        Tensor::from_vec(y, (rows, hw), dev)?,
        LnCache {
            u: Tensor::from_vec(u, (rows, hw), dev)?,
            mean: Tensor::from_vec(mean, (rows, 1), dev)?,
            rstd: Tensor::from_vec(rstd, (rows, 1), dev)?,
        },
    ))
}

/// The backward of [`bias_relu_ln`] from ∂/∂y: (∂/∂a, ∂γ, ∂β). ∂bias is ∂/∂a summed over rows.
pub fn bias_relu_ln_back(
    path: Path,
    c: &LnCache,
    dy: &Tensor,
    gamma: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (rows, hw) = dy.dims2()?;
    if path == Path::Ops {
        let xh = c.u.broadcast_sub(&c.mean)?.broadcast_mul(&c.rstd)?;
        let d = dy.broadcast_mul(gamma)?;
        let dgamma = (dy * &xh)?.sum(0)?;
        let dbeta = dy.sum(0)?;
        let s1 = d.mean_keepdim(1)?;
        let s2 = (&d * &xh)?.mean_keepdim(1)?;
        let dx = d
            .broadcast_sub(&s1)?
            .sub(&xh.broadcast_mul(&s2)?)?
            .broadcast_mul(&c.rstd)?;
        let live = c.u.gt(0.0)?.to_dtype(dx.dtype())?;
        return Ok(((dx * live)?, dgamma, dbeta));
    }
    let gamma = host(gamma)?;
    let mut da = pool::take(rows * hw); // every element written
    let sums = with_f32(&c.u, |u| {
        with_f32(&c.mean, |mean| {
            with_f32(&c.rstd, |rstd| {
                with_f32(dy, |dy| {
                    let s = k::LnSaved { u, mean, rstd };
                    Ok(k::bias_relu_ln_back(&s, dy, &gamma, hw, &mut da))
                })
            })
        })
    })?;
    let dev = dy.device();
    Ok((
        Tensor::from_vec(da, (rows, hw), dev)?,
        Tensor::from_slice(&sums[..hw], hw, dev)?,
        Tensor::from_slice(&sums[hw..], hw, dev)?,
    ))
}

/// One GRU layer's parameters in PyTorch's layout: `w_ih [3H, in]`, `w_hh [3H, H]`, biases `[3H]`.
pub struct GruWeights<'a> {
    pub w_ih: &'a Tensor,
    pub w_hh: &'a Tensor,
    pub b_ih: &'a Tensor,
    pub b_hh: &'a Tensor,
}

/// A GRU layer's forward values kept for its backward pass.
pub struct LayerCache {
    /// The layer's input `[T·B, in]`.
    x: Tensor,
    /// h₀ (zeros), h₁ … h_T: `[(T+1)·B, H]`.
    hs: Tensor,
    /// Gates r, z, n and W_hn·h + b_hn, each `[T·B, H]`.
    r: Tensor,
    z: Tensor,
    n: Tensor,
    ghn: Tensor,
}

impl LayerCache {
    /// The layer's input `[T·B, in]`.
    pub fn input(&self) -> &Tensor {
        &self.x
    }

    /// Hands the states and gates back to the lent workspace; not the input, which may be a
    /// view of the layer below's states (recycled with that layer) or of the caller's tensor.
    pub fn recycle(self) -> Result<()> {
        [self.hs, self.r, self.z, self.n, self.ghn]
            .iter()
            .try_for_each(pool::reclaim)
    }
}

/// The gradients of one GRU layer and of its input.
pub struct LayerGrads {
    pub w_ih: Tensor,
    pub w_hh: Tensor,
    pub b_ih: Tensor,
    pub b_hh: Tensor,
    /// ∂/∂x `[T·B, in]` (None when not asked for).
    pub x: Option<Tensor>,
}

/// b_ih + (b_hr, b_hz, 0): every bias added outside r ⊙ (·); and b_hn.
fn gate_biases(w: &GruWeights, hw: usize) -> Result<(Tensor, Tensor)> {
    let zeros = Tensor::zeros(hw, w.b_hh.dtype(), w.b_hh.device())?;
    let outside = Tensor::cat(&[&w.b_hh.narrow(0, 0, 2 * hw)?, &zeros], 0)?;
    Ok(((w.b_ih + outside)?, w.b_hh.narrow(0, 2 * hw, hw)?))
}

/// Runs a GRU layer over a time-major input `x [T·B, in]` from h₀ = 0. Returns h₀ … h_T
/// `[(T+1)·B, H]` (the next layer's input is rows B…, the last state the final B rows) and,
/// with `keep`, the cache for [`layer_back`].
pub fn layer(
    path: Path,
    mm: Mm,
    x: &Tensor,
    t_len: usize,
    w: &GruWeights,
    keep: bool,
) -> Result<(Tensor, Option<LayerCache>)> {
    let hw = w.w_hh.dim(1)?;
    let b = x.dim(0)? / t_len;
    let gi = pool::matmul(path, mm, x, &w.w_ih.t()?.contiguous()?)?;
    let (bias, b_hn) = gate_biases(w, hw)?;
    let w_hh_t = w.w_hh.t()?.contiguous()?;
    let dev = x.device();
    let (hs, gates) = if path == Path::Ops {
        let gi = gi.broadcast_add(&bias)?;
        layer_ops(mm, &gi, &w_hh_t, &b_hn, (t_len, b, hw), keep)?
    } else {
        let (bias, b_hn, whh) = (host(&bias)?, host(&b_hn)?, host(&w_hh_t)?);
        let rows = t_len * b * hw;
        // Pooled: the recurrence writes every row of h₁ … h_T and of the gates; h₀ is zeroed.
        let mut hs = pool::take(rows + b * hw);
        hs[..b * hw].fill(0.0);
        let mut saved: Vec<Vec<f32>> = (0..4)
            .map(|_| if keep { pool::take(rows) } else { Vec::new() })
            .collect();
        with_f32(&gi, |gi| {
            let x = gc::Fwd {
                gi,
                bias: &bias,
                b_hn: &b_hn,
                w_hh_t: (&w_hh_t, &whh),
            };
            let save = match &mut saved[..] {
                [r, z, n, g] if keep => Some([&mut r[..], &mut z[..], &mut n[..], &mut g[..]]),
                _ => None,
            };
            gc::forward(mm, &x, (t_len, b, hw), &mut hs, save)
        })?;
        pool::reclaim(&gi)?;
        let gates = if keep {
            let t: Result<Vec<Tensor>> = saved
                .into_iter()
                .map(|v| Ok(Tensor::from_vec(v, (t_len * b, hw), dev)?))
                .collect();
            Some(t?)
        } else {
            None
        };
        (Tensor::from_vec(hs, ((t_len + 1) * b, hw), dev)?, gates)
    };
    let cache = gates.map(|g| {
        let [r, z, n, ghn]: [Tensor; 4] = g.try_into().expect("four gate tensors");
        LayerCache {
            x: x.clone(),
            hs: hs.clone(),
            r,
            z,
            n,
            ghn,
        }
    });
    Ok((hs, cache))
}

/// [`layer`]'s recurrence in candle ops (`gi` with its biases added).
fn layer_ops(
    mm: Mm,
    gi: &Tensor,
    w_hh_t: &Tensor,
    b_hn: &Tensor,
    (t_len, b, hw): (usize, usize, usize),
    keep: bool,
) -> Result<(Tensor, Option<Vec<Tensor>>)> {
    let mut h = Tensor::zeros((b, hw), gi.dtype(), gi.device())?;
    let mut hs = vec![h.clone()];
    let mut saved: [Vec<Tensor>; 4] = Default::default();
    for t in 0..t_len {
        let g = gi.narrow(0, t * b, b)?;
        let gh = mm.matmul(&h, w_hh_t)?;
        let col = |x: &Tensor, i: usize| x.narrow(1, i * hw, hw);
        let r = candle_nn::ops::sigmoid(&(col(&g, 0)? + col(&gh, 0)?)?)?;
        let z = candle_nn::ops::sigmoid(&(col(&g, 1)? + col(&gh, 1)?)?)?;
        let ghn = col(&gh, 2)?.broadcast_add(b_hn)?;
        let n = (col(&g, 2)? + (&r * &ghn)?)?.tanh()?;
        h = (&n + (&z * (&h - &n)?)?)?;
        hs.push(h.clone());
        if keep {
            for (s, v) in saved.iter_mut().zip([r, z, n, ghn]) {
                s.push(v);
            }
        }
    }
    let gates = if keep {
        let t: Result<Vec<Tensor>> = saved.iter().map(|s| Ok(Tensor::cat(s, 0)?)).collect();
        Some(t?)
    } else {
        None
    };
    Ok((Tensor::cat(&hs, 0)?, gates))
}

/// The backward of [`layer`] from ∂/∂ of each step's output (`d_seq [T·B, H]`, from the layer
/// above) and/or of the last state (`d_last [B, H]`, from the heads). `want_dx`: also ∂/∂x.
pub fn layer_back(
    path: Path,
    mm: Mm,
    c: &LayerCache,
    w: &GruWeights,
    d_seq: Option<&Tensor>,
    d_last: Option<&Tensor>,
    want_dx: bool,
) -> Result<LayerGrads> {
    let (rows, hw) = c.r.dims2()?;
    let b = c.hs.dim(0)? - rows;
    let t_len = rows / b;
    let (dgh, dan) = if path == Path::Ops {
        back_ops(mm, c, w, d_seq, d_last, (t_len, b, hw))?
    } else {
        back_fused(mm, c, w, d_seq, d_last, (t_len, b, hw))?
    };
    // Weight and bias gradients: one matmul each over every step. dgi = (dgh_r, dgh_z, dan).
    let rz = dgh.narrow(1, 0, 2 * hw)?;
    let h_prev = c.hs.narrow(0, 0, rows)?;
    let g_w_ih = Tensor::cat(
        &[mm.matmul(&rz.t()?, &c.x)?, mm.matmul(&dan.t()?, &c.x)?],
        0,
    )?;
    // ∂b_hh = Σ dgh; its r and z thirds are also ∂b_ih's (the same sums, the same bits).
    let g_b_hh = colsum(&dgh)?;
    let g_b_ih = Tensor::cat(&[&g_b_hh.narrow(0, 0, 2 * hw)?, &colsum(&dan)?], 0)?;
    let x = if want_dx {
        let w_rz = w.w_ih.narrow(0, 0, 2 * hw)?;
        let w_n = w.w_ih.narrow(0, 2 * hw, hw)?;
        let (a, b) = (
            pool::matmul(path, mm, &rz, &w_rz)?,
            pool::matmul(path, mm, &dan, &w_n)?,
        );
        let sum = (&a + &b)?;
        pool::reclaim(&a)?;
        pool::reclaim(&b)?;
        Some(sum)
    } else {
        None
    };
    let grads = LayerGrads {
        w_ih: g_w_ih,
        w_hh: mm.matmul(&dgh.t()?, &h_prev)?,
        b_ih: g_b_ih,
        b_hh: g_b_hh,
        x,
    };
    drop(rz);
    pool::reclaim(&dgh)?;
    pool::reclaim(&dan)?;
    Ok(grads)
}

/// The recurrence's backward in fused passes: (∂ hidden-side pre-activations `[T·B, 3H]`,
/// ∂ n's input-side pre-activation `[T·B, H]`).
fn back_fused(
    mm: Mm,
    c: &LayerCache,
    w: &GruWeights,
    d_seq: Option<&Tensor>,
    d_last: Option<&Tensor>,
    (t_len, b, hw): (usize, usize, usize),
) -> Result<(Tensor, Tensor)> {
    let whh = host(w.w_hh)?; // [3H, H]: ∂h_{t−1} += dgh · W_hh
    let w_hh = w.w_hh.to_dtype(DType::F32)?;
    // Every element written by the backward steps.
    let mut dgh = pool::take(t_len * 3 * b * hw);
    let mut dan = pool::take(t_len * b * hw);
    let last = d_last.map(host).transpose()?.unwrap_or_default();
    let zeros = Tensor::zeros(0, DType::F32, w.w_hh.device())?;
    let seq = d_seq.unwrap_or(&zeros);
    with_f32(&c.hs, |hs| {
        with_f32(&c.r, |r| {
            with_f32(&c.z, |z| {
                with_f32(&c.n, |n| {
                    with_f32(&c.ghn, |ghn| {
                        with_f32(seq, |seq| {
                            let x = gc::Back {
                                hs,
                                gates: [r, z, n, ghn],
                                w_hh: (&w_hh, &whh),
                                seq,
                                last: &last,
                            };
                            gc::backward(mm, &x, (t_len, b, hw), &mut dgh, &mut dan)
                        })
                    })
                })
            })
        })
    })?;
    let dev = c.r.device();
    Ok((
        Tensor::from_vec(dgh, (t_len * b, 3 * hw), dev)?,
        Tensor::from_vec(dan, (t_len * b, hw), dev)?,
    ))
}

/// [`back_fused`] in candle ops.
fn back_ops(
    mm: Mm,
    c: &LayerCache,
    w: &GruWeights,
    d_seq: Option<&Tensor>,
    d_last: Option<&Tensor>,
    (t_len, b, hw): (usize, usize, usize),
) -> Result<(Tensor, Tensor)> {
    let mut dh = match d_last {
        Some(d) => d.clone(),
        None => Tensor::zeros((b, hw), c.r.dtype(), c.r.device())?,
    };
    let (mut dghs, mut dans) = (Vec::with_capacity(t_len), Vec::with_capacity(t_len));
    for t in (0..t_len).rev() {
        let at = |x: &Tensor| x.narrow(0, t * b, b);
        if let Some(ds) = d_seq {
            dh = (dh + at(ds)?)?;
        }
        let (h, r, z, n, ghn) = (at(&c.hs)?, at(&c.r)?, at(&c.z)?, at(&c.n)?, at(&c.ghn)?);
        let dn = (&dh * z.affine(-1.0, 1.0)?)?;
        let dz = (&dh * (&h - &n)?)?;
        let a = (&dn * n.sqr()?.affine(-1.0, 1.0)?)?;
        let dr = (&a * &ghn)?;
        let d_r = (&dr * (&r * r.affine(-1.0, 1.0)?)?)?;
        let d_z = (&dz * (&z * z.affine(-1.0, 1.0)?)?)?;
        let g = Tensor::cat(&[&d_r, &d_z, &(&a * &r)?], 1)?;
        dh = ((&dh * &z)? + mm.matmul(&g, w.w_hh)?)?;
        dghs.push(g);
        dans.push(a);
    }
    dghs.reverse();
    dans.reverse();
    Ok((Tensor::cat(&dghs, 0)?, Tensor::cat(&dans, 0)?))
}
