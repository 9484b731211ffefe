//! A small, seedable, portable random source (SplitMix64). Results depend only on the seed, never
//! on the platform or a crate version, which keeps synthetic markets and training runs repeatable.

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function of a state.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline(always)]
fn to_unit(x: u64) -> f64 {
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Serializable so that a training checkpoint can continue the same streams.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rng {
    state: u64,
    spare_normal: Option<f64>,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng {
            state: seed ^ 0x9E37_79B9_7F4A_7C15,
            spare_normal: None,
        }
    }

    /// A generator for a named sub-stream (a symbol, an env), independent of the others.
    pub fn derive(seed: u64, name: &str) -> Self {
        Rng::new(seed ^ fnv1a(name.as_bytes()).rotate_left(17))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        to_unit(self.next_u64())
    }

    /// `f` of each of the next `n` uniforms: the values `n` [`Rng::uniform`] calls would give,
    /// the generator left where they would leave it. SplitMix64's i-th draw depends only on the
    /// state and i, so rayon's threads draw them in parallel.
    pub fn uniforms<T: Send>(&mut self, n: usize, f: impl Fn(f64) -> T + Sync + Send) -> Vec<T> {
        use rayon::prelude::*;
        let start = self.state;
        self.state = start.wrapping_add(GAMMA.wrapping_mul(n as u64));
        (0..n)
            .into_par_iter()
            .with_min_len(1 << 14)
            .map(|i| {
                f(to_unit(mix(
                    start.wrapping_add(GAMMA.wrapping_mul(i as u64 + 1))
                )))
            })
            .collect()
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.uniform() * n as f64) as usize % n
    }

    /// Standard normal (Box–Muller, both values used).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (2.0 * std::f64::consts::PI * u2).sin_cos();
        self.spare_normal = Some(r * s);
        r * c
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i + 1);
            xs.swap(i, j);
        }
    }
}

pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_roughly_standard() {
        let mut a = Rng::new(3);
        let mut b = Rng::new(3);
        let xs: Vec<f64> = (0..20000).map(|_| a.normal()).collect();
        let ys: Vec<f64> = (0..20000).map(|_| b.normal()).collect();
        assert_eq!(xs, ys);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "mean {mean} var {var}"
        );
        assert_ne!(
            Rng::derive(1, "A").next_u64(),
            Rng::derive(1, "B").next_u64()
        );
    }

    /// The parallel draw is the sequential one: same values, same state after.
    #[test]
    fn uniforms_in_parallel_are_the_sequential_draws() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let (mut a, mut b) = (Rng::new(9), Rng::new(9));
        a.uniform();
        b.uniform();
        let n = 100_003;
        let seq: Vec<u64> = (0..n).map(|_| a.uniform().to_bits()).collect();
        let par = pool.install(|| b.uniforms(n, |u| u.to_bits()));
        assert!(seq == par, "parallel draws differ");
        assert_eq!(a, b);
        assert_eq!(a.next_u64(), b.next_u64());
    }
}
