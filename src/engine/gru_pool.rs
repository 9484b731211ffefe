//! Reused f32 buffers for the GRU's fused CPU path, so a minibatch does not zero ~300 MB of
//! fresh buffers that its kernels then overwrite (perf, hidden 64 on 2 threads: a third of the
//! calling thread's samples were `memset` while the recurrence threads waited).
//!
//! A [`Workspace`] (one per trainer) holds the buffers between minibatches; [`Workspace::with`]
//! lends them to the calling thread for one minibatch. Inside, [`take`] hands out a buffer with
//! a previous minibatch's values in it — only for kernels that write every element before
//! anything reads it — and [`reclaim`] takes a finished tensor's storage back. Outside any
//! workspace, [`take`] allocates zeros and [`reclaim`] does nothing (the rollouts, the tests'
//! reference runs). No `unsafe`: stale values are ordinary initialised floats; a kernel that
//! missed an element would read them, which `every_taken_buffer_is_overwritten` catches.

use super::gru_kernels::gemm_strided;
use super::gru_layers::Path;
use anyhow::{bail, Result};
use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Storage, Tensor};
use std::cell::RefCell;
use std::sync::Mutex;

/// At most this many buffers are kept (a minibatch reclaims about 20).
const MAX_KEPT: usize = 64;

thread_local! {
    /// The lent workspace's buffers while [`Workspace::with`] runs on this thread.
    static LENT: RefCell<Option<Vec<Vec<f32>>>> = const { RefCell::new(None) };
}

/// A trainer's reusable buffers (empty until its first minibatch).
#[derive(Default)]
pub struct Workspace(Mutex<Vec<Vec<f32>>>);

impl Workspace {
    /// Runs `f` with this workspace's buffers lent to the calling thread; they come back
    /// (with what `f` reclaimed) when it returns. Nested calls keep the outer loan.
    pub fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        if LENT.with(|l| l.borrow().is_some()) {
            return f();
        }
        let mut mine = self.0.lock().unwrap_or_else(|e| e.into_inner());
        LENT.with(|l| *l.borrow_mut() = Some(std::mem::take(&mut *mine)));
        let r = f();
        *mine = LENT.with(|l| l.borrow_mut().take()).unwrap_or_default();
        r
    }

    /// Fills the workspace with `n` buffers of `len` NaNs (tests: an element a kernel leaves
    /// unwritten shows).
    #[cfg(test)]
    pub(crate) fn fill_nan(&self, n: usize, len: usize) {
        let mut mine = self.0.lock().unwrap_or_else(|e| e.into_inner());
        mine.extend((0..n).map(|_| vec![f32::NAN; len]));
    }

    /// How many buffers the workspace holds.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.0.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Whether a held buffer starts with NaN (one [`Workspace::fill_nan`] put there, unused).
    #[cfg(test)]
    pub(crate) fn holds_nan(&self) -> bool {
        let mine = self.0.lock().unwrap_or_else(|e| e.into_inner());
        mine.iter().any(|v| v.first().is_some_and(|x| x.is_nan()))
    }
}

/// A buffer of `n` values whose contents are unspecified (a previous minibatch's, or zeros):
/// the caller's kernel must write every element before anything reads it.
pub fn take(n: usize) -> Vec<f32> {
    let reused = LENT.with(|l| {
        let mut l = l.borrow_mut();
        let pool = l.as_mut()?;
        // The smallest buffer that holds n, so a small request does not use up a large one.
        let i = (0..pool.len())
            .filter(|&i| pool[i].capacity() >= n)
            .min_by_key(|&i| pool[i].capacity())?;
        Some(pool.swap_remove(i))
    });
    match reused {
        Some(mut v) => {
            // Zeros only past the old length (none when the sizes repeat, as they do).
            v.resize(n, 0.0);
            v.truncate(n);
            v
        }
        None => vec![0f32; n],
    }
}

/// Puts a buffer back for a later [`take`] (dropped outside a workspace).
pub fn give(v: Vec<f32>) {
    if v.capacity() == 0 {
        return;
    }
    LENT.with(|l| {
        if let Some(pool) = l.borrow_mut().as_mut() {
            if pool.len() < MAX_KEPT {
                pool.push(v);
            }
        }
    });
}

/// Moves an f32 CPU storage's values out (leaving it empty).
struct Reclaim(RefCell<Vec<f32>>);

impl InplaceOp1 for Reclaim {
    fn name(&self) -> &'static str {
        "gru-pool-reclaim"
    }
    fn cpu_fwd(&self, s: &mut CpuStorage, _: &Layout) -> candle_core::Result<()> {
        if let CpuStorage::F32(v) = s {
            *self.0.borrow_mut() = std::mem::take(v);
        }
        Ok(())
    }
}

/// Takes `t`'s storage back into the lent workspace. The storage is emptied: call it only on
/// tensors this module's callers made and hold the last reference to (with every view of the
/// same storage about to be dropped too). Not lent, or not an f32 CPU tensor: nothing happens.
pub fn reclaim(t: &Tensor) -> Result<()> {
    if !LENT.with(|l| l.borrow().is_some()) || !t.device().is_cpu() || t.dtype() != DType::F32 {
        return Ok(());
    }
    let op = Reclaim(RefCell::new(Vec::new()));
    t.inplace_op1(&op)?;
    give(op.0.into_inner());
    Ok(())
}

/// `a (m×k) · b (k×n)` for the big products of the fused path: f32 on the CPU, into a
/// [`take`]n buffer, by the same `gemm` call as candle's matmul (same values, bit for bit);
/// other paths and dtypes through candle.
pub fn matmul(path: Path, mm: super::amp::Mm, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if path != Path::Fused || mm != super::amp::Mm::F32 || a.dtype() != DType::F32 {
        return mm.matmul(a, b);
    }
    let ((m, k), (k2, n)) = (a.dims2()?, b.dims2()?);
    if k != k2 || b.dtype() != DType::F32 {
        return Ok(a.matmul(b)?); // candle's error message
    }
    let mut dst = take(m * n);
    with_strided(a, |a, (a_rs, a_cs)| {
        with_strided(b, |b, (b_rs, b_cs)| {
            if k == 0 {
                dst.fill(0.0);
            } else if m * n > 0 {
                let threads = candle_core::utils::get_num_threads();
                gemm_strided(
                    (m, n, k),
                    (a, a_rs, a_cs),
                    (b, b_rs, b_cs),
                    &mut dst,
                    false,
                    threads,
                );
            }
            Ok(())
        })
    })?;
    Ok(Tensor::from_vec(dst, (m, n), a.device())?)
}

/// A 2-D f32 CPU tensor's values from its first element and its (row, column) strides.
pub(crate) fn with_strided<R>(
    t: &Tensor,
    f: impl FnOnce(&[f32], (usize, usize)) -> Result<R>,
) -> Result<R> {
    let (s, l) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*s else {
        bail!("the fused GRU path runs on the CPU only (a bug: Path::Ops elsewhere)");
    };
    let all = cpu.as_slice::<f32>()?;
    let st = l.stride();
    f(&all[l.start_offset()..], (st[0], st[1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::amp::Mm;
    use candle_core::Device;

    fn bits(t: &Tensor) -> Vec<u32> {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The pooled product is candle's, bit for bit, for contiguous, transposed and row-offset
    /// operands, and with a stale (NaN) destination buffer.
    #[test]
    fn pooled_matmul_is_candles_bit_for_bit() {
        let dev = Device::Cpu;
        let mut rng = crate::rng::Rng::new(5);
        let mut t = |r: usize, c: usize| {
            let v: Vec<f32> = (0..r * c).map(|_| rng.normal() as f32).collect();
            Tensor::from_vec(v, (r, c), &dev).unwrap()
        };
        let (a, b, at, big) = (t(300, 70), t(70, 33), t(70, 300), t(400, 70));
        let ws = Workspace::default();
        ws.fill_nan(4, 300 * 300);
        let cases = [
            (a.clone(), b.clone()),
            (at.t().unwrap(), b.clone()),
            (big.narrow(0, 100, 300).unwrap(), b.clone()),
            (a.clone(), a.t().unwrap()),
        ];
        for (x, y) in cases {
            let want = x.matmul(&y).unwrap();
            let got = ws.with(|| matmul(Path::Fused, Mm::F32, &x, &y).unwrap());
            assert_eq!(got.dims(), want.dims());
            assert!(
                bits(&got) == bits(&want),
                "a pooled product differs from candle's"
            );
        }
    }
}
