//! Affine maps for host inference — what the backtest, walk-forward, validation and the paper
//! trader run per decision. Every output element is `b[o] + dot(w[o], x)` summed exactly as
//! [`dot`] sums (eight lanes over chunks of eight, the lanes added in order, then the remainder),
//! so results are bit-identical on every path. The fast paths, detected at run time (the build
//! targets baseline x86-64): AVX-512 keeps eight rows in flight, two to a register; AVX2 keeps
//! four sums in flight — a single eight-lane sum waits on its own additions — and, for several
//! inputs, reads each weight row once per four inputs. Also the layers' `tanh`.

/// Products this large (1 M weights: a 1024-wide first layer's 1.9 M, the production network's
/// 2048-wide layers) are split by rows over two threads: one core's memory bandwidth bounds them,
/// and each row's sum is unchanged. The 1024-wide network's decision at 2 threads measured p50
/// 94–117 µs split against 105–128 µs whole (`cargo bench --bench decision`, interleaved);
/// below 1 M waking the second thread costs more than it saves.
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
    if avx512() {
        // SAFETY: AVX-512F and DQ are present, and the slices hold what the shapes say (asserted above).
        return unsafe { avx512::affine_rows(w, b, out, inp, x, y) };
    }
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

/// `tanh` of every element, in place: what the host MLP applies between layers. Computed in
/// f64 and rounded once, so each result is the correctly rounded f32 but for rare double-rounding
/// ties (libm's `tanhf` is off by one ulp on ~3 % of inputs), and branch-free, so the loop
/// vectorises (`tanhf` is a call per element: a quarter of a 1024-wide network's decision).
/// Plain multiplies and adds, no FMA: the same bits on every x86-64.
pub fn tanh_in_place(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 is present.
        return unsafe { tanh_avx2(v) };
    }
    v.iter_mut().for_each(|x| *x = tanh(*x));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tanh_avx2(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = tanh(*x));
}

/// One element of [`tanh_in_place`]: an odd Taylor series below |x| = 1/8 (relative error
/// < 1e-13), (e − 1)/(e + 1) with e = exp(2|x|) above; |x| ≥ 10 is ±1 in f32; NaN stays NaN.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    let a = (x as f64).abs();
    let a = if a > 10.0 { 10.0 } else { a };
    let q = a * a;
    let series = a
        * (1.0
            + q * (-1.0 / 3.0
                + q * (2.0 / 15.0
                    + q * (-17.0 / 315.0 + q * (62.0 / 2835.0 + q * (-1382.0 / 155_925.0))))));
    let e = exp_f64(2.0 * a);
    let t = if a < 0.125 {
        series
    } else {
        (e - 1.0) / (e + 1.0)
    };
    (t as f32).copysign(x)
}

/// e^y for y in [0, 20] (what [`tanh`] asks): y = n·ln 2 + r with |r| ≤ ln 2 / 2, a degree-12
/// Taylor polynomial for e^r (relative error < 1e-15), then 2ⁿ through the exponent bits.
#[inline(always)]
fn exp_f64(y: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 · 2⁵²: adding it rounds to an integer
    const LN2_HI: f64 = 0.693_147_180_369_123_8; // ln 2's leading bits: n·LN2_HI is exact
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let t = y * std::f64::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = (y - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 479_001_600.0; // 1/12!
    for k in (1..12).rev() {
        p = p * r + 1.0 / FACTORIAL[k];
    }
    p = p * r + 1.0;
    let ni = t.to_bits().wrapping_sub(MAGIC.to_bits()) as i64;
    f64::from_bits((p.to_bits() as i64).wrapping_add(ni << 52) as u64)
}

/// k! for k in 0..12.
const FACTORIAL: [f64; 12] = {
    let mut f = [1.0; 12];
    let mut k = 1;
    while k < 12 {
        f[k] = f[k - 1] * k as f64;
        k += 1;
    }
    f
};

/// std caches the detection: this is a load and a test.
#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512dq")
}

/// Two rows per 512-bit register — row `a`'s eight lanes in the low half, row `b`'s in the high
/// half, each against the same eight inputs — so each lane still sums exactly what [`dot`]'s lane
/// sums, in the same order, at twice the width: the same bits as the AVX2 path, fewer
/// instructions per weight.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Pairs of rows in flight: eight rows against one input at a time.
    const PAIRS: usize = 4;

    /// The caller checked the lengths.
    #[target_feature(enable = "avx512f,avx512dq,avx2")]
    pub(super) unsafe fn affine_rows(
        w: &[f32],
        b: &[f32],
        out: usize,
        inp: usize,
        x: &[f32],
        y: &mut [f32],
    ) {
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let rows = 2 * PAIRS;
        let mut o = 0;
        while o + rows <= out {
            let s = pair_dots::<PAIRS>(wp.add(o * inp), inp, xp);
            for k in 0..rows {
                y[o + k] = b[o + k] + s[k / 2][k % 2];
            }
            o += rows;
        }
        while o + 2 <= out {
            let [s] = pair_dots::<1>(wp.add(o * inp), inp, xp);
            y[o] = b[o] + s[0];
            y[o + 1] = b[o + 1] + s[1];
            o += 2;
        }
        if o < out {
            y[o] = b[o] + super::dot(&w[o * inp..(o + 1) * inp], &x[..inp]);
        }
    }

    /// The dot products of the `2P` consecutive rows from `w` (row length `inp`) with `x`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq,avx2")]
    unsafe fn pair_dots<const P: usize>(w: *const f32, inp: usize, x: *const f32) -> [[f32; 2]; P] {
        let body = inp - inp % 8;
        let mut acc = [_mm512_setzero_ps(); P];
        let mut j = 0;
        while j < body {
            let xv = _mm512_broadcast_f32x8(_mm256_loadu_ps(x.add(j)));
            for (p, a) in acc.iter_mut().enumerate() {
                let lo = _mm256_loadu_ps(w.add(2 * p * inp + j));
                let hi = _mm256_loadu_ps(w.add((2 * p + 1) * inp + j));
                let wv = _mm512_insertf32x8::<1>(_mm512_castps256_ps512(lo), hi);
                *a = _mm512_add_ps(*a, _mm512_mul_ps(wv, xv));
            }
            j += 8;
        }
        let mut out = [[0f32; 2]; P];
        for (p, a) in acc.iter().enumerate() {
            let mut lanes = [0f32; 16];
            _mm512_storeu_ps(lanes.as_mut_ptr(), *a);
            for (h, half) in lanes.chunks_exact(8).enumerate() {
                let row = w.add((2 * p + h) * inp);
                let tail: f32 = (body..inp).map(|k| *row.add(k) * *x.add(k)).sum();
                out[p][h] = half.iter().sum::<f32>() + tail;
            }
        }
        out
    }
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
    fn tanh_is_correctly_rounded_and_never_more_than_one_ulp_off() {
        let mut xs: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 1e-4).collect();
        xs.extend([
            0.0, -0.0, 1e-30, -1e-8, 0.125, -0.125, 9.9, 10.0, 88.0, -1e30,
        ]);
        xs.extend([f32::INFINITY, f32::NEG_INFINITY, f32::MIN_POSITIVE]);
        let mut got = xs.clone();
        tanh_in_place(&mut got);
        let (mut rounded, mut libm) = (0, 0);
        for (&x, &t) in xs.iter().zip(&got) {
            let want = (x as f64).tanh();
            let ulp = f32::from_bits((want as f32).abs().to_bits() + 1) - (want as f32).abs();
            assert!(
                (t as f64 - want).abs() <= ulp as f64,
                "tanh({x}) = {t}, true {want}"
            );
            assert_eq!(
                t.is_sign_negative(),
                x.is_sign_negative(),
                "sign of tanh({x})"
            );
            rounded += usize::from(t == want as f32);
            libm += usize::from(t.to_bits() == x.tanh().to_bits());
        }
        // Measured: every one of these is correctly rounded; libm's tanhf agrees on ~97 %.
        eprintln!(
            "{rounded} correctly rounded, {libm} equal libm's, of {}",
            xs.len()
        );
        assert!(
            rounded * 10_000 >= xs.len() * 9_999,
            "{rounded} of {}",
            xs.len()
        );
        let mut nan = [f32::NAN];
        tanh_in_place(&mut nan);
        assert!(nan[0].is_nan());
    }

    #[test]
    fn every_output_equals_the_plain_dot_bit_for_bit() {
        let mut rng = Rng::new(3);
        #[cfg(target_arch = "x86_64")]
        eprintln!("AVX2 kernels: {}, AVX-512: {}", avx2(), avx512());
        // Sizes around the blocks of 4 and the lanes of 8, the layouts' own (1859, 63), and one
        // large enough to be split over two threads (an odd row count: uneven halves).
        for (out, inp, n) in [
            (1, 1, 1),
            (7, 13, 3),
            (8, 16, 4),
            (13, 37, 9),
            (256, 1859, 5),
            (96, 63, 32),
            (1101, 1907, 2), // past SPLIT_AT: two threads where the machine has them
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
                // Each fast path on its own, where this machine has it.
                #[cfg(target_arch = "x86_64")]
                for (has, path) in [(avx2(), "avx2"), (avx512(), "avx512")] {
                    if !has {
                        continue;
                    }
                    let mut y = vec![0f32; out];
                    // SAFETY: the feature was detected, and the shapes are the slices' own.
                    unsafe {
                        match path {
                            "avx2" => avx2::affine_rows(&w, &b, out, inp, x, &mut y),
                            _ => avx512::affine_rows(&w, &b, out, inp, x, &mut y),
                        }
                    }
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&y), bits(&want), "{path} {out}x{inp}");
                }
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
