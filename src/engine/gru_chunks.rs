//! The fused GRU recurrence on the CPU (f32 element-wise work, matmuls in `ppo.precision`), its
//! batch split by rows over rayon's threads for the whole sequence: each thread runs every step
//! of its own rows — its `h·W_hhᵀ` matmul on one thread, then the gate kernel — so the threads
//! never meet between steps. Splitting each step instead (a parallel matmul, then parallel
//! gates) cost two fork-joins per step, 64 per layer and minibatch, each waiting for the slower
//! thread on a shared machine. The samples are independent, so the split changes no value.
//!
//! Buffers are time-major (row `t·B + b`); a thread's rows at step t are one contiguous block.

use super::amp::Mm;
use super::gru_kernels::{self as k, Out};
use super::gru_layers::with_f32;
use anyhow::Result;
use candle_core::Tensor;
use rayon::prelude::*;
use std::ops::Range;

/// `dst (m×n) = a (m×k) · b (k×n)`, or `+=` when `acc`; row-major slices; on `threads`
/// threads (1: the calling thread).
pub fn gemm_into(
    (m, n, kk): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    dst: &mut [f32],
    acc: bool,
    threads: usize,
) {
    assert!(a.len() >= m * kk && b.len() >= kk * n);
    k::gemm_strided((m, n, kk), (a, kk, 1), (b, n, 1), dst, acc, threads);
}

/// A step's matmul `a (m×k) · b`: f32 GEMM straight into `dst`, or (reduced precision) through
/// [`Mm`] on tensors. `b` is the tensor and its f32 values.
fn step_mm(
    mm: Mm,
    a: &[f32],
    m: usize,
    b: (&Tensor, &[f32]),
    dst: &mut [f32],
    acc: bool,
    threads: usize,
) -> Result<()> {
    let (kk, n) = b.0.dims2()?;
    if mm == Mm::F32 {
        gemm_into((m, n, kk), a, b.1, dst, acc, threads);
        return Ok(());
    }
    let prod = mm.matmul(&Tensor::from_slice(a, (m, kk), b.0.device())?, b.0)?;
    with_f32(&prod, |p| {
        if acc {
            dst.iter_mut().zip(p).for_each(|(d, v)| *d += v);
        } else {
            dst.copy_from_slice(p);
        }
        Ok(())
    })
}

/// The batch's rows in one contiguous range per thread (fewer when the batch is small), and the
/// matmul threads each range's worker gets: all of them when there is one range.
fn split(b: usize) -> (Vec<Range<usize>>, usize) {
    let threads = rayon::current_num_threads().max(1);
    // Below ~16 rows a thread, the per-step work is too small to be worth a thread.
    let n = threads.min(b / 16).max(1);
    let ranges = (0..n).map(|c| c * b / n..(c + 1) * b / n).collect();
    let mm_threads = if n == 1 {
        candle_core::utils::get_num_threads()
    } else {
        1
    };
    (ranges, mm_threads)
}

fn run(
    ranges: Vec<Range<usize>>,
    f: impl Fn(Range<usize>) -> Result<()> + Sync + Send,
) -> Result<()> {
    if ranges.len() == 1 {
        return ranges.into_iter().try_for_each(f);
    }
    ranges.into_par_iter().try_for_each(f)
}

/// The forward recurrence's inputs: `gi` = x·W_ihᵀ `[T·B, 3H]`, the biases as
/// [`k::StepIn`] takes them, and `W_hhᵀ` `[H, 3H]` (tensor and values).
pub struct Fwd<'a> {
    pub gi: &'a [f32],
    pub bias: &'a [f32],
    pub b_hn: &'a [f32],
    pub w_hh_t: (&'a Tensor, &'a [f32]),
}

/// Runs the recurrence from h₀ = 0 into `hs` `[(T+1)·B, H]` (h₀ rows left as they are: zero);
/// with `saved` (r, z, n, ghn, each `[T·B, H]`) keeps the gates.
pub fn forward(
    mm: Mm,
    x: &Fwd,
    (t_len, b, hw): (usize, usize, usize),
    hs: &mut [f32],
    saved: Option<[&mut [f32]; 4]>,
) -> Result<()> {
    assert!(hs.len() >= (t_len + 1) * b * hw && x.gi.len() >= t_len * b * 3 * hw);
    let hs = Out::new(hs);
    let saved = saved.map(|s| {
        s.map(|v| {
            assert!(v.len() >= t_len * b * hw);
            Out::new(v)
        })
    });
    let (ranges, threads) = split(b);
    run(ranges, |r| {
        let n = r.len();
        let mut gh = vec![0f32; n * 3 * hw];
        for t in 0..t_len {
            let at = |s: usize| s * b + r.start..s * b + r.end;
            // SAFETY: each worker touches only its own rows `r` of every step, and reads
            // step t's rows while writing step t+1's.
            let (h, h_new) = unsafe { (&*hs.rows(&at(t), hw), hs.rows(&at(t + 1), hw)) };
            step_mm(mm, h, n, x.w_hh_t, &mut gh, false, threads)?;
            let input = k::StepIn {
                gi: &x.gi[at(t).start * 3 * hw..at(t).end * 3 * hw],
                gh: &gh,
                bias: x.bias,
                b_hn: x.b_hn,
                h,
            };
            // SAFETY: as above, this worker's rows of step t.
            let save = saved.map(|[sr, sz, sn, sg]| unsafe {
                k::StepSave {
                    r: sr.rows(&at(t), hw),
                    z: sz.rows(&at(t), hw),
                    n: sn.rows(&at(t), hw),
                    ghn: sg.rows(&at(t), hw),
                }
            });
            k::gru_step(&input, hw, h_new, save);
        }
        Ok(())
    })
}

/// What the backward recurrence reads: h₀ … h_T `[(T+1)·B, H]`, the saved gates (r, z, n,
/// ghn, each `[T·B, H]`), W_hh `[3H, H]` (tensor and values), ∂/∂ of each step's output
/// (`seq`, `[T·B, H]`, empty for none) and of the last state (`last`, `[B, H]`, empty for none).
pub struct Back<'a> {
    pub hs: &'a [f32],
    pub gates: [&'a [f32]; 4],
    pub w_hh: (&'a Tensor, &'a [f32]),
    pub seq: &'a [f32],
    pub last: &'a [f32],
}

/// The recurrence's backward: ∂ of the hidden-side pre-activations into `dgh` `[T·B, 3H]` and
/// of n's input-side pre-activation into `dan` `[T·B, H]`.
pub fn backward(
    mm: Mm,
    x: &Back,
    (t_len, b, hw): (usize, usize, usize),
    dgh: &mut [f32],
    dan: &mut [f32],
) -> Result<()> {
    assert!(dgh.len() >= t_len * b * 3 * hw && dan.len() >= t_len * b * hw);
    let (dgh, dan) = (Out::new(dgh), Out::new(dan));
    let (ranges, threads) = split(b);
    run(ranges, |r| {
        let n = r.len();
        let rows = |v: &[f32], s: usize| -> Vec<f32> {
            v[(s * b + r.start) * hw..(s * b + r.end) * hw].to_vec()
        };
        let mut dh = if x.last.is_empty() {
            vec![0f32; n * hw]
        } else {
            rows(x.last, 0)
        };
        let mut dprev = vec![0f32; n * hw];
        for t in (0..t_len).rev() {
            let at = (t * b + r.start) * hw..(t * b + r.end) * hw;
            if !x.seq.is_empty() {
                dh.iter_mut()
                    .zip(&x.seq[at.clone()])
                    .for_each(|(a, v)| *a += v);
            }
            let [gr, gz, gn, gg] = x.gates;
            let s = k::StepBack {
                h: &x.hs[at.clone()],
                r: &gr[at.clone()],
                z: &gz[at.clone()],
                n: &gn[at.clone()],
                ghn: &gg[at],
            };
            let mine = t * b + r.start..t * b + r.end;
            // SAFETY: each worker writes only its own rows of each step.
            let (g, an) = unsafe { (dgh.rows(&mine, 3 * hw), dan.rows(&mine, hw)) };
            k::gru_step_back(&s, &dh, hw, g, an, &mut dprev);
            step_mm(mm, g, n, x.w_hh, &mut dprev, true, threads)?;
            std::mem::swap(&mut dh, &mut dprev);
        }
        Ok(())
    })
}
