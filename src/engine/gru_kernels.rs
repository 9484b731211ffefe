//! The GRU network's element-wise work on the CPU, fused: one pass per GRU step for all three
//! gates (forward and backward), one pass per row for bias + ReLU + LayerNorm (forward and
//! backward), over plain f32 slices. candle would run each of these as a dozen ops, each a pass
//! over memory with its transcendental functions through libm one element at a time; here `exp`
//! is a branch-free polynomial the compiler vectorises (AVX-512 or AVX2, with FMA, when the CPU has them,
//! detected at run time; SSE2 otherwise). The LayerNorm passes split their rows over rayon's
//! threads; a GRU step runs on the calling thread (`gru_chunks` gives each thread its own rows
//! for the whole recurrence).
//!
//! Layouts: a GRU step's gate inputs are rows of `3H` (r, z, n: PyTorch's order); everything
//! else is rows of `H`. The tensor-level code is `gru_layers`, which also holds the candle-op
//! versions these are tested against.

use rayon::prelude::*;
use std::ops::Range;

/// e^x for f32, relative error ~2e-7 on [−87, 88] (inputs outside are clamped): range reduction
/// to r = x − n·ln 2 with |r| ≤ ln 2 / 2, a degree-6 Taylor polynomial, then 2ⁿ in the exponent
/// bits. No branches, no calls: loops over it vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let ni = t.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    f32::from_bits((p.to_bits() as i32).wrapping_add(ni << 23) as u32)
}

#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// tanh as 2σ(2x) − 1 (absolute error ~1e-7).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    2.0 / (1.0 + exp(-2.0 * x)) - 1.0
}

/// Runs `f` over `rows` split into one contiguous range per rayon thread (all on the calling
/// thread when the work is small or there is one thread).
fn par_rows(rows: usize, width: usize, f: impl Fn(Range<usize>) + Sync) {
    let threads = rayon::current_num_threads();
    if threads <= 1 || rows * width < 32 * 1024 || rows < 2 * threads {
        f(0..rows);
        return;
    }
    (0..threads)
        .into_par_iter()
        .for_each(|c| f(c * rows / threads..(c + 1) * rows / threads));
}

/// [`par_rows`] whose chunks each return a vector; the vectors are summed.
fn par_rows_sum(
    rows: usize,
    width: usize,
    len: usize,
    f: impl Fn(Range<usize>) -> Vec<f32> + Sync,
) -> Vec<f32> {
    let threads = rayon::current_num_threads();
    if threads <= 1 || rows * width < 32 * 1024 || rows < 2 * threads {
        return f(0..rows);
    }
    (0..threads)
        .into_par_iter()
        .map(|c| f(c * rows / threads..(c + 1) * rows / threads))
        .reduce(
            || vec![0f32; len],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

/// Column sums of a row-major `rows × n` matrix with row stride `rs` (`rows ≥ 1`), the columns
/// split over rayon's threads. Each column is summed row by row from the first — the order of
/// gemm's matrix-vector path, which `1ᵀ·t` through candle takes — so the bits are the same.
pub fn col_sums(t: &[f32], rows: usize, n: usize, rs: usize) -> Vec<f32> {
    assert!(rows >= 1 && t.len() >= (rows - 1) * rs + n);
    let sum = |cols: Range<usize>| -> Vec<f32> {
        let mut acc = t[cols.clone()].to_vec();
        for r in 1..rows {
            let row = &t[r * rs + cols.start..r * rs + cols.end];
            acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
        }
        acc
    };
    // At least 16 columns a thread: narrower strips waste the cache lines they read.
    let parts = rayon::current_num_threads().min(n / 16).max(1);
    if parts == 1 || rows * n < 1 << 16 {
        return sum(0..n);
    }
    (0..parts)
        .into_par_iter()
        .map(|c| sum(c * n / parts..(c + 1) * n / parts))
        .flatten_iter()
        .collect()
}

/// A mutable buffer that disjoint row ranges are written through from several threads.
#[derive(Clone, Copy)]
pub(crate) struct Out(*mut f32, usize);
// SAFETY: every use hands each thread a disjoint row range of the buffer (see `rows`).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    pub(crate) fn new(v: &mut [f32]) -> Self {
        Out(v.as_mut_ptr(), v.len())
    }
    /// Rows `r` of width `w`.
    ///
    /// # Safety
    /// No two live slices may overlap: callers take disjoint ranges of `par_rows`.
    pub(crate) unsafe fn rows<'a>(self, r: &Range<usize>, w: usize) -> &'a mut [f32] {
        assert!(r.end * w <= self.1, "row range outside the buffer");
        std::slice::from_raw_parts_mut(self.0.add(r.start * w), r.len() * w)
    }
}

/// The GRU step's inputs for one set of rows.
pub struct StepIn<'a> {
    /// x·W_ihᵀ rows `[B, 3H]` (no bias).
    pub gi: &'a [f32],
    /// h·W_hhᵀ rows `[B, 3H]` (no bias).
    pub gh: &'a [f32],
    /// b_ih + (b_hr, b_hz, 0) `[3H]`: every bias outside r ⊙ (·).
    pub bias: &'a [f32],
    /// b_hn `[H]`.
    pub b_hn: &'a [f32],
    /// h_{t−1} `[B, H]`.
    pub h: &'a [f32],
}

/// What a step keeps for its backward pass, each `[B, H]`.
pub struct StepSave<'a> {
    pub r: &'a mut [f32],
    pub z: &'a mut [f32],
    pub n: &'a mut [f32],
    /// W_hn·h + b_hn (the value r multiplies).
    pub ghn: &'a mut [f32],
}

/// One row's gates at unit `k`: (r, z, n, W_hn·h + b_hn, h_t). Every slice is exactly `H`
/// long (the r, z, n thirds taken by the caller), so the loops over `k` carry no bounds checks
/// and vectorise.
#[inline(always)]
fn gates(
    gi: [&[f32]; 3],
    gh: [&[f32]; 3],
    bias: [&[f32]; 3],
    b_hn: &[f32],
    h: &[f32],
    k: usize,
) -> [f32; 5] {
    let r = sigmoid(gi[0][k] + gh[0][k] + bias[0][k]);
    let z = sigmoid(gi[1][k] + gh[1][k] + bias[1][k]);
    let ghn = gh[2][k] + b_hn[k];
    let n = tanh(gi[2][k] + bias[2][k] + r * ghn);
    [r, z, n, ghn, n + z * (h[k] - n)]
}

/// `v`'s r, z and n thirds, each exactly `hw` long.
#[inline(always)]
fn thirds(v: &[f32], hw: usize) -> [&[f32]; 3] {
    [&v[..hw], &v[hw..2 * hw], &v[2 * hw..3 * hw]]
}

#[inline(always)]
fn step_rows(x: &StepIn, hw: usize, rows: Range<usize>, out: Out, save: Option<[Out; 4]>) {
    let g3 = 3 * hw;
    let h_new = unsafe { out.rows(&rows, hw) };
    let mut saves = save.map(|s| unsafe {
        [
            s[0].rows(&rows, hw),
            s[1].rows(&rows, hw),
            s[2].rows(&rows, hw),
            s[3].rows(&rows, hw),
        ]
    });
    let bias = thirds(x.bias, hw);
    let b_hn = &x.b_hn[..hw];
    for (i, row) in rows.clone().enumerate() {
        let gi = thirds(&x.gi[row * g3..(row + 1) * g3], hw);
        let gh = thirds(&x.gh[row * g3..(row + 1) * g3], hw);
        let h = &x.h[row * hw..][..hw];
        let o = &mut h_new[i * hw..][..hw];
        match saves.as_mut() {
            Some([sr, sz, sn, sg]) => {
                let (sr, sz) = (&mut sr[i * hw..][..hw], &mut sz[i * hw..][..hw]);
                let (sn, sg) = (&mut sn[i * hw..][..hw], &mut sg[i * hw..][..hw]);
                for k in 0..hw {
                    let [r, z, n, ghn, hn] = gates(gi, gh, bias, b_hn, h, k);
                    (sr[k], sz[k], sn[k], sg[k], o[k]) = (r, z, n, ghn, hn);
                }
            }
            None => {
                for (k, o) in o.iter_mut().enumerate() {
                    *o = gates(gi, gh, bias, b_hn, h, k)[4];
                }
            }
        }
    }
}

/// The widest vector unit the element-wise loops can use (detected once by std). The loops have
/// no lane-dependent order — each element's arithmetic is the same at any width, sums run in
/// sequence — so every level gives the same bits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Simd {
    Scalar,
    Avx2,
    Avx512,
}

/// `$at(level, …)`: the row kernel `$rows` compiled for `level`'s vector width (a copy of the
/// inlined loops per width, chosen at run time). `level` must not exceed [`simd`]'s.
macro_rules! at_width {
    ($at:ident = $rows:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        fn $at(level: Simd, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                $rows($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,fma")]
            unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                $rows($($arg),*)
            }
            assert!(level <= simd(), "a vector width this CPU lacks");
            // SAFETY: the CPU has the level's features (asserted).
            #[cfg(target_arch = "x86_64")]
            match level {
                Simd::Avx512 => return unsafe { avx512($($arg),*) },
                Simd::Avx2 => return unsafe { avx2($($arg),*) },
                Simd::Scalar => {}
            }
            $rows($($arg),*)
        }
    };
}

at_width!(step_rows_at = step_rows(x: &StepIn, hw: usize, rows: Range<usize>, out: Out, save: Option<[Out; 4]>));
at_width!(step_back_rows_at = step_back_rows(s: &StepBack, dh: &[f32], hw: usize, rows: Range<usize>, d: [Out; 3]));
at_width!(ln_rows_at = ln_rows(a: &[f32], p: &LnParams, hw: usize, rows: Range<usize>, o: [Out; 4]));
at_width!(ln_back_rows_at = ln_back_rows(s: &LnSaved, dy: &[f32], gamma: &[f32], hw: usize, rows: Range<usize>, da: Out) -> Vec<f32>);

fn simd() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        let fma = std::is_x86_feature_detected!("fma");
        if fma && std::is_x86_feature_detected!("avx512f") {
            return Simd::Avx512;
        }
        if fma && std::is_x86_feature_detected!("avx2") {
            return Simd::Avx2;
        }
    }
    Simd::Scalar
}

/// One GRU step for `B = h.len() / H` rows, on the calling thread (`gru_chunks` splits the
/// batch over threads for the whole recurrence): h_t into `h_new`, the gates into `save`.
pub fn gru_step(x: &StepIn, hw: usize, h_new: &mut [f32], save: Option<StepSave>) {
    let rows = 0..x.h.len() / hw;
    let out = Out::new(h_new);
    let save = save.map(|s| [Out::new(s.r), Out::new(s.z), Out::new(s.n), Out::new(s.ghn)]);
    step_rows_at(simd(), x, hw, rows, out, save)
}

/// The saved gates of a step and h_{t−1}, each `[B, H]`, for the backward step.
pub struct StepBack<'a> {
    pub h: &'a [f32],
    pub r: &'a [f32],
    pub z: &'a [f32],
    pub n: &'a [f32],
    pub ghn: &'a [f32],
}

#[inline(always)]
fn step_back_rows(s: &StepBack, dh: &[f32], hw: usize, rows: Range<usize>, d: [Out; 3]) {
    let g3 = 3 * hw;
    // SAFETY: disjoint row ranges (par_rows).
    let (dgh, dan, dh_prev) = unsafe {
        (
            d[0].rows(&rows, g3),
            d[1].rows(&rows, hw),
            d[2].rows(&rows, hw),
        )
    };
    for (i, row) in rows.clone().enumerate() {
        // Every slice exactly `hw` long: no bounds checks in the loop, which then vectorises.
        let at = row * hw..(row + 1) * hw;
        let (dh, h, r) = (&dh[at.clone()], &s.h[at.clone()], &s.r[at.clone()]);
        let (z, n, ghn) = (&s.z[at.clone()], &s.n[at.clone()], &s.ghn[at]);
        let (dh, h, r, z, n, ghn) = (
            &dh[..hw],
            &h[..hw],
            &r[..hw],
            &z[..hw],
            &n[..hw],
            &ghn[..hw],
        );
        let (gr, rest) = dgh[i * g3..][..g3].split_at_mut(hw);
        let (gz, gn) = rest.split_at_mut(hw);
        let (an, hp) = (&mut dan[i * hw..][..hw], &mut dh_prev[i * hw..][..hw]);
        for k in 0..hw {
            let (g, r, z, n) = (dh[k], r[k], z[k], n[k]);
            // h_t = n + z·(h − n)
            let dn = g * (1.0 - z);
            let dz = g * (h[k] - n);
            hp[k] = g * z;
            let a = dn * (1.0 - n * n); // through tanh
            let dr = a * ghn[k];
            gr[k] = dr * r * (1.0 - r);
            gz[k] = dz * z * (1.0 - z);
            gn[k] = a * r;
            an[k] = a;
        }
    }
}

/// The backward of one GRU step: from ∂/∂h_t (`dh`), the gradient of the step's gate
/// pre-activations on the hidden side `dgh` `[B, 3H]` (r, z, and W_hn·h + b_hn), the n gate's
/// input-side pre-activation gradient `dan` `[B, H]` (the input side's r and z columns equal
/// `dgh`'s), and the direct part of ∂/∂h_{t−1}, `dh·z` (the caller adds `dgh·W_hh`).
pub fn gru_step_back(
    s: &StepBack,
    dh: &[f32],
    hw: usize,
    dgh: &mut [f32],
    dan: &mut [f32],
    dh_prev: &mut [f32],
) {
    let rows = 0..dh.len() / hw;
    let d = [Out::new(dgh), Out::new(dan), Out::new(dh_prev)];
    step_back_rows_at(simd(), s, dh, hw, rows, d)
}

/// The LayerNorm's affine parameters and the bias before it.
pub struct LnParams<'a> {
    /// The linear layer's bias, added before the ReLU.
    pub bias: &'a [f32],
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
}

pub const LN_EPS: f32 = super::gru::LN_EPS;

#[inline(always)]
fn ln_rows(a: &[f32], p: &LnParams, hw: usize, rows: Range<usize>, o: [Out; 4]) {
    // SAFETY: disjoint row ranges.
    let (u, y) = unsafe { (o[0].rows(&rows, hw), o[1].rows(&rows, hw)) };
    let (mean, rstd) = unsafe { (o[2].rows(&rows, 1), o[3].rows(&rows, 1)) };
    let n = hw as f32;
    for (i, row) in rows.clone().enumerate() {
        let (ur, yr) = (&mut u[i * hw..(i + 1) * hw], &mut y[i * hw..(i + 1) * hw]);
        let ar = &a[row * hw..(row + 1) * hw];
        let mut s = 0f32;
        for k in 0..hw {
            let v = ar[k] + p.bias[k];
            let v = if v > 0.0 { v } else { 0.0 };
            ur[k] = v;
            s += v;
        }
        let m = s / n;
        let mut q = 0f32;
        for v in ur.iter() {
            q += (v - m) * (v - m);
        }
        let inv = 1.0 / (q / n + LN_EPS).sqrt();
        for k in 0..hw {
            yr[k] = (ur[k] - m) * inv * p.gamma[k] + p.beta[k];
        }
        mean[i] = m;
        rstd[i] = inv;
    }
}

/// The encoder's `LayerNorm(ReLU(a + bias))` per row of `H`: the ReLU's output `u`, the
/// normalised output `y`, and each row's mean and 1/std.
pub fn bias_relu_ln(
    a: &[f32],
    p: &LnParams,
    hw: usize,
    u: &mut [f32],
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    let rows = a.len() / hw;
    let o = [Out::new(u), Out::new(y), Out::new(mean), Out::new(rstd)];
    let level = simd();
    par_rows(rows, hw, |r| ln_rows_at(level, a, p, hw, r, o));
}

/// What the LayerNorm backward reads: the ReLU's output and each row's statistics.
pub struct LnSaved<'a> {
    pub u: &'a [f32],
    pub mean: &'a [f32],
    pub rstd: &'a [f32],
}

#[inline(always)]
fn ln_back_rows(
    s: &LnSaved,
    dy: &[f32],
    gamma: &[f32],
    hw: usize,
    rows: Range<usize>,
    da: Out,
) -> Vec<f32> {
    // SAFETY: disjoint row ranges.
    let da = unsafe { da.rows(&rows, hw) };
    let n = hw as f32;
    // ∂γ then ∂β, summed over this chunk's rows.
    let mut acc = vec![0f32; 2 * hw];
    let (dg, db) = acc.split_at_mut(hw);
    for (i, row) in rows.clone().enumerate() {
        let (m, inv) = (s.mean[row], s.rstd[row]);
        let (u, g) = (
            &s.u[row * hw..(row + 1) * hw],
            &dy[row * hw..(row + 1) * hw],
        );
        let (mut s1, mut s2) = (0f32, 0f32);
        for k in 0..hw {
            let xh = (u[k] - m) * inv;
            let d = g[k] * gamma[k];
            dg[k] += g[k] * xh;
            db[k] += g[k];
            s1 += d;
            s2 += d * xh;
        }
        let (s1, s2) = (s1 / n, s2 / n);
        let out = &mut da[i * hw..(i + 1) * hw];
        for k in 0..hw {
            let xh = (u[k] - m) * inv;
            let d = inv * (g[k] * gamma[k] - s1 - xh * s2);
            out[k] = if u[k] > 0.0 { d } else { 0.0 };
        }
    }
    acc
}

/// The backward of [`bias_relu_ln`]: ∂/∂a (= ∂/∂bias per row) into `da`; returns ∂γ and ∂β
/// (each `[H]`, concatenated).
pub fn bias_relu_ln_back(
    s: &LnSaved,
    dy: &[f32],
    gamma: &[f32],
    hw: usize,
    da: &mut [f32],
) -> Vec<f32> {
    let rows = dy.len() / hw;
    let o = Out::new(da);
    let level = simd();
    par_rows_sum(rows, hw, 2 * hw, |r| {
        ln_back_rows_at(level, s, dy, gamma, hw, r, o)
    })
}

/// `dst (m×n, row-major) = a · b`, or `+=` when `acc`, for strided `a` and `b` (each given with
/// its row and column strides), on `threads` threads (1: the calling thread) — gemm called as
/// candle's CPU matmul calls it. The one place the GRU path calls gemm.
pub fn gemm_strided(
    (m, n, k): (usize, usize, usize),
    (a, a_rs, a_cs): (&[f32], usize, usize),
    (b, b_rs, b_cs): (&[f32], usize, usize),
    dst: &mut [f32],
    acc: bool,
    threads: usize,
) {
    let last = |rs: usize, cs: usize, r: usize, c: usize| (r - 1) * rs + (c - 1) * cs;
    assert!(dst.len() >= m * n);
    if m > 0 && n > 0 && k > 0 {
        assert!(a.len() > last(a_rs, a_cs, m, k) && b.len() > last(b_rs, b_cs, k, n));
    }
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: every element the strides address lies inside the slices (asserted above), and
    // `dst` holds the m×n row-major output.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            acc,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            if acc { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GRU step and the LayerNorm at every vector width this CPU has: the same bits as the
    /// plain (SSE2) loops, so a run resumes exactly on a machine with another width.
    #[test]
    fn every_vector_width_gives_the_same_bits() {
        let (b, hw) = (5, 37);
        let mut rng = crate::rng::Rng::new(11);
        let mut v = |n: usize| {
            (0..n)
                .map(|_| 2.0 * rng.normal() as f32)
                .collect::<Vec<_>>()
        };
        let (gi, gh, bias, b_hn, h) = (v(b * 3 * hw), v(b * 3 * hw), v(3 * hw), v(hw), v(b * hw));
        let (a, lb, gamma, beta) = (v(b * hw), v(hw), v(hw), v(hw));
        let x = StepIn {
            gi: &gi,
            gh: &gh,
            bias: &bias,
            b_hn: &b_hn,
            h: &h,
        };
        let p = LnParams {
            bias: &lb,
            gamma: &gamma,
            beta: &beta,
        };
        let run = |level: Simd| {
            let mut outs: Vec<Vec<f32>> = [hw, hw, hw, hw, hw, hw, hw, 1, 1]
                .iter()
                .map(|w| vec![0f32; b * w])
                .collect();
            let o: Vec<Out> = outs.iter_mut().map(|v| Out::new(v)).collect();
            let save = Some([o[1], o[2], o[3], o[4]]);
            let ln = [o[5], o[6], o[7], o[8]];
            step_rows_at(level, &x, hw, 0..b, o[0], save);
            ln_rows_at(level, &a, &p, hw, 0..b, ln);
            outs.concat()
                .iter()
                .map(|f| f.to_bits())
                .collect::<Vec<_>>()
        };
        let plain = run(Simd::Scalar);
        for level in [Simd::Avx2, Simd::Avx512] {
            if level <= simd() {
                assert!(run(level) == plain, "a wider path changed the bits");
            }
        }
    }

    #[test]
    fn fast_exp_sigmoid_and_tanh_are_accurate() {
        let mut worst = 0f64;
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 5e-7, "exp relative error {worst}");
        for i in -2000..=2000 {
            let x = i as f32 * 0.01;
            assert!((sigmoid(x) as f64 - 1.0 / (1.0 + (-x as f64).exp())).abs() < 2e-7);
            assert!(
                (tanh(x) as f64 - (x as f64).tanh()).abs() < 3e-7,
                "tanh({x})"
            );
        }
        // Saturation, not NaN, far out.
        assert_eq!(sigmoid(-1e4), 0.0f32.max(sigmoid(-1e4)));
        assert!(sigmoid(1e4) == 1.0 && tanh(1e4) == 1.0 && tanh(-1e4) == -1.0);
        assert!(exp(-1e4) >= 0.0 && exp(1e4).is_finite());
    }
}
