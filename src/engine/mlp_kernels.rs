//! The MLP's element-wise steps between its matmuls, fused into one pass on the CPU: a hidden
//! layer's bias and tanh going forward, and tanh's derivative coming back. As candle ops they are
//! six and three passes over a fresh `[B, H]` tensor each, all on the calling thread while the
//! matmuls' threads wait — the part of a two-thread update that did not get faster with the
//! second thread. Here each is one pass, its rows split over rayon's threads. Other devices and
//! dtypes keep the candle ops.

use super::gru_layers::with_f32;
use super::host_kernels::tanh_in_place;
use super::ops::tanh;
use anyhow::Result;
use candle_core::{DType, Tensor};
use rayon::prelude::*;

/// Below this many elements one thread does the pass (a rollout step's `[64, 256]`): waking a
/// second costs more than it saves.
const SPLIT_AT: usize = 1 << 17;
/// Rows per rayon task when split.
const ROWS_PER_TASK: usize = 64;

fn fused(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && t.rank() == 2
}

/// Runs `f(rows, first_row)` over `out`'s rows (`width` wide), split over rayon's threads when
/// `out` is large.
fn over_rows(out: &mut [f32], width: usize, f: impl Fn(&mut [f32], usize) + Sync) {
    if out.len() < SPLIT_AT || width == 0 {
        return f(out, 0);
    }
    out.par_chunks_mut(ROWS_PER_TASK * width)
        .enumerate()
        .for_each(|(k, rows)| f(rows, k * ROWS_PER_TASK));
}

/// `tanh(z + b)` for `z` `[B, H]` and `b` `[H]`. On the CPU the tanh is the host network's
/// ([`tanh_in_place`]), so a trained layer computes what the host policy computes from it.
pub fn bias_tanh(z: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !(fused(z) && b.dtype() == DType::F32) {
        return tanh(&z.broadcast_add(b)?);
    }
    let (rows, width) = z.dims2()?;
    anyhow::ensure!(
        b.elem_count() == width,
        "a bias of {} for a layer {width} wide (a bug)",
        b.elem_count()
    );
    let mut out = vec![0f32; rows * width];
    with_f32(z, |z| {
        with_f32(b, |b| {
            over_rows(&mut out, width, |dst, first| {
                let src = &z[first * width..first * width + dst.len()];
                for (d, s) in dst.chunks_exact_mut(width).zip(src.chunks_exact(width)) {
                    for ((d, s), b) in d.iter_mut().zip(s).zip(b) {
                        *d = s + b;
                    }
                    tanh_in_place(d);
                }
            });
            Ok(())
        })
    })?;
    Ok(Tensor::from_vec(out, (rows, width), z.device())?)
}

/// The gradient through `x = tanh(z)`: `g · (1 − x²)`, computed as `g − g·x·x` in that order
/// (the same roundings as the candle ops it replaces).
pub fn tanh_back(g: &Tensor, x: &Tensor) -> Result<Tensor> {
    if !(fused(g) && fused(x)) || g.shape() != x.shape() {
        return Ok((g - ((g * x)? * x)?)?);
    }
    let (rows, width) = g.dims2()?;
    let mut out = vec![0f32; rows * width];
    with_f32(g, |g| {
        with_f32(x, |x| {
            over_rows(&mut out, width, |dst, first| {
                let at = first * width;
                let (g, x) = (&g[at..at + dst.len()], &x[at..at + dst.len()]);
                for ((d, &g), &x) in dst.iter_mut().zip(g).zip(x) {
                    *d = g - g * x * x;
                }
            });
            Ok(())
        })
    })?;
    Ok(Tensor::from_vec(out, (rows, width), g.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn random(rows: usize, cols: usize, seed: u64) -> Tensor {
        let mut rng = crate::rng::Rng::new(seed);
        let v: Vec<f32> = (0..rows * cols)
            .map(|_| (rng.uniform() as f32 - 0.5) * 6.0)
            .collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// Small (one thread) and large (split, with a ragged last task) shapes.
    const SHAPES: [(usize, usize); 3] = [(3, 5), (64, 256), (1031, 257)];

    #[test]
    fn bias_tanh_is_the_host_tanh_of_the_sum_and_close_to_candles() {
        for (rows, cols) in SHAPES {
            let (z, b) = (
                random(rows, cols, 1),
                random(1, cols, 2).flatten_all().unwrap(),
            );
            let got = values(&bias_tanh(&z, &b).unwrap());
            let mut want = values(&z.broadcast_add(&b).unwrap());
            let candle = values(&z.broadcast_add(&b).unwrap().tanh().unwrap());
            tanh_in_place(&mut want);
            assert_eq!(
                got, want,
                "{rows}x{cols}: the host tanh of z + b, bit for bit"
            );
            let worst = got
                .iter()
                .zip(&candle)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 2e-7, "{rows}x{cols}: {worst} from candle's tanh");
        }
        // A strided (transposed) input is read in its logical order.
        let z = random(7, 9, 3).t().unwrap();
        let b = random(1, 7, 4).flatten_all().unwrap();
        let mut want = values(&z.broadcast_add(&b).unwrap());
        tanh_in_place(&mut want);
        assert_eq!(values(&bias_tanh(&z, &b).unwrap()), want);
    }

    #[test]
    fn tanh_back_equals_the_candle_ops_bit_for_bit() {
        for (rows, cols) in SHAPES {
            let (g, x) = (random(rows, cols, 5), random(rows, cols, 6).tanh().unwrap());
            let want = (&g - ((&g * &x).unwrap() * &x).unwrap()).unwrap();
            assert_eq!(
                values(&tanh_back(&g, &x).unwrap()),
                values(&want),
                "{rows}x{cols}"
            );
        }
    }

    #[test]
    fn other_dtypes_take_the_candle_ops() {
        let z = random(4, 3, 7).to_dtype(DType::F64).unwrap();
        let b = random(1, 3, 8)
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        let got = bias_tanh(&z, &b).unwrap();
        assert_eq!(got.dtype(), DType::F64);
        let want = z.broadcast_add(&b).unwrap().tanh().unwrap();
        let diff: f64 = (got - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-6, "{diff}");
    }
}
