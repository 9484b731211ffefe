//! Affine maps for host inference — what the backtest, walk-forward, validation and the paper
//! trader run per decision. Every output element is `b[o] + dot(w[o], x)` summed exactly as
//! [`dot`] sums (eight lanes over chunks of eight, the lanes added in order, then the remainder),
//! so results are bit-identical with or without the fast path. The fast path (AVX2, detected at
//! run time; the build targets baseline x86-64) keeps four sums in flight — a single eight-lane
//! sum waits on its own additions — and, for several inputs, reads each weight row once per four
//! inputs.

/// Products this large (a 1024-wide layer over the default observation: 1.9 M) are split by rows
/// over two threads: one core's memory bandwidth bounds them, and each row's sum is unchanged.
const SPLIT_AT: usize = 1 << 20;

/// `y = W·x + b` for one input: `w` is `out × inp`, row-major.
pub fn affine(w: &[f32], b: &[f32], out: usize, inp: usize, x: &[f32], y: &mut [f32]) {
    assert!(w.len() >= out * inp && b.len() >= out && x.len() >= inp && y.len() >= out);
    if out * inp >= SPLIT_AT && out >= 8 && rayon::current_num_threads() > 1 {
        let half = out / 2 / 4 * 4;
        let (w0, w1) = w[..out * inp].split_at(half * inp);
        let (b0, b1) = b[..out].split_at(half);
        let (y0, y1) = y[..out].split_at_mut(half);
        rayon::join(
            || affine_serial(w0, b0, half, inp, x, y0),
            || affine_serial(w1, b1, out - half, inp, x, y1),
        );
        return;
    }
    affine_serial(w, b, out, inp, x, y)
}

fn affine_serial(w: &[f32], b: &[f32], out: usize, inp: usize, x: &[f32], y: &mut [f32]) {
    assert!(w.len() >= out * inp && b.len() >= out && x.len() >= inp && y.len() >= out);
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 is present, and the slices hold what the shapes say (asserted above).
        return unsafe { avx2::affine_rows(w, b, out, inp, x, y) };
    }
    for o in 0..out {
        y[o] = b[o] + dot(&w[o * inp..(o + 1) * inp], &x[..inp]);
    }
}

/// `ys[i] = W·xs[i] + b` for `n` inputs (`xs` is `n × inp`, `ys` is `n × out`, row-major).
pub fn affine_many(
    w: &[f32],
    b: &[f32],
    (out, inp): (usize, usize),
    xs: &[f32],
    n: usize,
    ys: &mut [f32],
) {
    assert!(w.len() >= out * inp && b.len() >= out && xs.len() >= n * inp && ys.len() >= n * out);
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 is present, and the slices hold what the shapes say (asserted above).
        return unsafe { avx2::affine_inputs(w, b, (out, inp), xs, n, ys) };
    }
    for i in 0..n {
        let x = &xs[i * inp..(i + 1) * inp];
        for o in 0..out {
            ys[i * out + o] = b[o] + dot(&w[o * inp..(o + 1) * inp], x);
        }
    }
}

/// A dot product over eight lanes (a strict left-to-right sum cannot be vectorised, eight lanes
/// can), the lanes then summed in order, then the remainder: the order every kernel here keeps.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// std caches the detection: this is a load and a test.
#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// The eight lanes of [`dot`] in one 256-bit register per sum, `R` sums in flight (multiply,
/// then add: no FMA, which would round differently).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Four weight rows against one input at a time. The caller checked the lengths.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn affine_rows(
        w: &[f32],
        b: &[f32],
        out: usize,
        inp: usize,
        x: &[f32],
        y: &mut [f32],
    ) {
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let mut o = 0;
        while o + 4 <= out {
            let rows = [0, 1, 2, 3].map(|k| wp.add((o + k) * inp));
            let s = dots::<4>(rows, [xp; 4], inp);
            for k in 0..4 {
                y[o + k] = b[o + k] + s[k];
            }
            o += 4;
        }
        for o in o..out {
            y[o] = b[o] + dots::<1>([wp.add(o * inp)], [xp], inp)[0];
        }
    }

    /// One weight row against four inputs at a time. The caller checked the lengths.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn affine_inputs(
        w: &[f32],
        b: &[f32],
        (out, inp): (usize, usize),
        xs: &[f32],
        n: usize,
        ys: &mut [f32],
    ) {
        let (wp, xp) = (w.as_ptr(), xs.as_ptr());
        for o in 0..out {
            let r = wp.add(o * inp);
            let mut i = 0;
            while i + 4 <= n {
                let inputs = [0, 1, 2, 3].map(|k| xp.add((i + k) * inp));
                let s = dots::<4>([r; 4], inputs, inp);
                for k in 0..4 {
                    ys[(i + k) * out + o] = b[o] + s[k];
                }
                i += 4;
            }
            for i in i..n {
                ys[i * out + o] = b[o] + dots::<1>([r], [xp.add(i * inp)], inp)[0];
            }
        }
    }

    /// `R` dot products of `len` values each, from the given starts.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn dots<const R: usize>(a: [*const f32; R], b: [*const f32; R], len: usize) -> [f32; R] {
        let body = len - len % 8;
        let mut acc = [_mm256_setzero_ps(); R];
        let mut j = 0;
        while j < body {
            for r in 0..R {
                let p = _mm256_mul_ps(_mm256_loadu_ps(a[r].add(j)), _mm256_loadu_ps(b[r].add(j)));
                acc[r] = _mm256_add_ps(acc[r], p);
            }
            j += 8;
        }
        let mut out = [0f32; R];
        for r in 0..R {
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r]);
            let tail: f32 = (body..len).map(|k| *a[r].add(k) * *b[r].add(k)).sum();
            out[r] = lanes.iter().sum::<f32>() + tail;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn plain(w: &[f32], b: &[f32], out: usize, inp: usize, x: &[f32]) -> Vec<f32> {
        (0..out)
            .map(|o| b[o] + dot(&w[o * inp..(o + 1) * inp], x))
            .collect()
    }

    #[test]
    fn every_output_equals_the_plain_dot_bit_for_bit() {
        let mut rng = Rng::new(3);
        #[cfg(target_arch = "x86_64")]
        eprintln!("AVX2 kernels: {}", avx2());
        // Sizes around the blocks of 4 and the lanes of 8, the layouts' own (1859, 63), and one
        // large enough to be split over two threads.
        for (out, inp, n) in [
            (1, 1, 1),
            (7, 13, 3),
            (8, 16, 4),
            (13, 37, 9),
            (256, 1859, 5),
            (96, 63, 32),
        ] {
            let mut v = |k: usize| (0..k).map(|_| rng.normal() as f32).collect::<Vec<_>>();
            let (w, b, xs) = (v(out * inp), v(out), v(n * inp));
            let mut many = vec![0f32; n * out];
            affine_many(&w, &b, (out, inp), &xs, n, &mut many);
            for i in 0..n {
                let x = &xs[i * inp..(i + 1) * inp];
                let want = plain(&w, &b, out, inp, x);
                let mut one = vec![0f32; out];
                affine(&w, &b, out, inp, x, &mut one);
                for o in 0..out {
                    assert_eq!(
                        one[o].to_bits(),
                        want[o].to_bits(),
                        "affine {out}x{inp} [{o}]"
                    );
                    let m = many[i * out + o];
                    assert_eq!(
                        m.to_bits(),
                        want[o].to_bits(),
                        "affine_many {out}x{inp} [{i},{o}]"
                    );
                }
            }
        }
    }
}
