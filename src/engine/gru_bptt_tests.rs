//! The GRU's hand-written gradient against candle's autograd and finite differences (f64, the
//! candle-op path), the fused CPU path against the candle-op path (f32), and reduced precision.

use super::*;
use crate::engine::amp::Amp;
use crate::engine::backward::tests::assert_close;
use crate::engine::gru::GruSpec;
use crate::engine::gru_layers::FORCE_OPS;
use crate::engine::gru_train::{ppo_grad_autograd, GruParams};
use crate::rng::Rng;
use candle_core::{DType, Device};

fn spec(hidden: usize, seq_len: usize) -> GruSpec {
    GruSpec {
        seq_len,
        step_dim: 3,
        tail_dim: 2,
        hidden,
        layers: 2,
        head_hidden: 5,
        n_actions: 4,
    }
}

struct Data {
    obs: Tensor,
    onehot: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    returns: Tensor,
}

impl Data {
    fn new(s: &GruSpec, b: usize, dtype: DType, seed: u64) -> Data {
        let dev = Device::Cpu;
        let mut rng = Rng::new(seed);
        let mut normal = |k: usize, sd: f64| -> Tensor {
            let v: Vec<f64> = (0..k).map(|_| rng.normal() * sd).collect();
            Tensor::from_vec(v, k, &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
        };
        let obs = normal(b * s.obs_dim(), 1.0)
            .reshape((b, s.obs_dim()))
            .unwrap();
        let (old_logp, adv, returns) = (normal(b, 0.4), normal(b, 1.0), normal(b, 1.0));
        let actions: Vec<u32> = (0..b as u32).map(|i| (i * 7 + 3) % 4).collect();
        let onehot = Tensor::new(actions.as_slice(), &dev)
            .unwrap()
            .unsqueeze(1)
            .unwrap()
            .broadcast_eq(&Tensor::arange(0u32, 4, &dev).unwrap().unsqueeze(0).unwrap())
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        // Old log-probabilities near ln ¼ spread out: some ratios clip on each side.
        let old_logp = old_logp.affine(1.0, -(4f64.ln())).unwrap();
        Data {
            obs,
            onehot,
            old_logp,
            adv,
            returns,
        }
    }

    fn batch(&self) -> Batch<'_> {
        Batch {
            obs: &self.obs,
            onehot: &self.onehot,
            old_logp: &self.old_logp,
            adv: &self.adv,
            returns: &self.returns,
        }
    }
}

const C: Coefs = Coefs {
    clip: 0.2,
    vf_coef: 0.5,
    ent_coef: 0.05,
};

/// Parameters moved off the init (so the policy head's small weights hide nothing).
fn params(s: &GruSpec, seed: u64, dtype: DType) -> GruParams {
    let dev = Device::Cpu;
    let net = GruNet::new(s.clone());
    let mut rng = Rng::new(seed ^ 0x5eed);
    let noise: Vec<f32> = (0..s.param_count())
        .map(|_| (rng.normal() * 0.3) as f32)
        .collect();
    let noise = Tensor::from_vec(noise, s.param_count(), &dev).unwrap();
    let theta = (net.init_theta(seed, &dev).unwrap() + noise)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    GruParams::from_theta(net, &theta).unwrap()
}

fn flat(g: &Grads) -> Vec<f64> {
    Tensor::cat(&[&g.actor, &g.critic], 0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn mask(s: &GruSpec, b: usize, dtype: DType) -> Tensor {
    GruNet::new(s.clone())
        .dropout_mask(b, 0.25, &mut Rng::new(3), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

#[test]
fn hand_gradient_matches_candle_autograd_with_dropout() {
    let s = spec(6, 4);
    let p = params(&s, 7, DType::F64);
    let d = Data::new(&s, 9, DType::F64, 2);
    let m = mask(&s, 9, DType::F64);
    let theta = p.theta().unwrap();
    let (hand, stats) = ppo_grad(&p.net, &theta, &d.batch(), C, Some(&m), Mm::F32, 1.0).unwrap();
    let (auto, auto_stats) = ppo_grad_autograd(&p, &d.batch(), C, Some(&m)).unwrap();
    assert_eq!(hand.critic.elem_count(), p.net.critic_len());
    assert_close(&flat(&hand), &flat(&auto), 1e-10, "hand vs autograd");
    let (a, b): (Vec<f64>, Vec<f64>) = (stats.to_vec1().unwrap(), auto_stats.to_vec1().unwrap());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-12, "statistics {a:?} vs {b:?}");
    }
    // Some ratios were clipped (the clipped branch's zero gradient is exercised).
    assert!(a[4] > 0.0 && a[4] < 1.0, "clip fraction {}", a[4]);
}

#[test]
fn hand_gradient_matches_finite_differences() {
    let s = spec(3, 3);
    let p = params(&s, 5, DType::F64);
    let d = Data::new(&s, 5, DType::F64, 4);
    let m = mask(&s, 5, DType::F64);
    let theta = p.theta().unwrap();
    let (hand, _) = ppo_grad(&p.net, &theta, &d.batch(), C, Some(&m), Mm::F32, 1.0).unwrap();
    let base: Vec<f64> = theta.to_vec1().unwrap();
    let loss_at = |v: &[f64]| -> f64 {
        let t = Tensor::from_slice(v, v.len(), &Device::Cpu).unwrap();
        let (l, v) = p.net.forward(&t, &d.obs, Some(&m)).unwrap();
        let (loss, _) = crate::engine::gru_train::ppo_loss(&l, &v, &d.batch(), C).unwrap();
        loss.to_scalar().unwrap()
    };
    let eps = 1e-6;
    let numeric: Vec<f64> = (0..base.len())
        .map(|i| {
            let (mut hi, mut lo) = (base.clone(), base.clone());
            hi[i] += eps;
            lo[i] -= eps;
            (loss_at(&hi) - loss_at(&lo)) / (2.0 * eps)
        })
        .collect();
    assert_close(&flat(&hand), &numeric, 1e-6, "hand vs finite differences");
}

/// Runs `f` with the candle-op path forced on f32 CPU tensors.
fn with_ops<R>(f: impl FnOnce() -> R) -> R {
    FORCE_OPS.with(|c| c.set(true));
    let r = f();
    FORCE_OPS.with(|c| c.set(false));
    r
}

/// The fused-path tests' case: a 48-wide GRU over 5 steps, its parameters (seed 9), `b` rows of
/// data (seed 6) and dropout mask, and a 3-thread pool that splits rows unevenly.
struct Fused {
    s: GruSpec,
    pool: rayon::ThreadPool,
    p: GruParams,
    d: Data,
    m: Tensor,
    theta: Tensor,
}

impl Fused {
    fn new(b: usize) -> Self {
        let s = spec(48, 5);
        let p = params(&s, 9, DType::F32);
        let theta = p.theta().unwrap();
        Fused {
            pool: rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .build()
                .unwrap(),
            d: Data::new(&s, b, DType::F32, 6),
            m: mask(&s, b, DType::F32),
            p,
            theta,
            s,
        }
    }
}

#[test]
fn fused_cpu_path_matches_the_candle_op_path() {
    // 256 rows on 3 threads: the fused recurrence gives each thread its own uneven block of
    // rows (85, 85, 86) for every step, and the LayerNorm kernels split rows too.
    let b = 256;
    let Fused {
        s,
        pool,
        p,
        d,
        m,
        theta,
    } = Fused::new(b);
    let grad = || ppo_grad(&p.net, &theta, &d.batch(), C, Some(&m), Mm::F32, 1.0).unwrap();
    let (fused, fs) = pool.install(grad);
    let (ops, os) = with_ops(grad);
    assert_close(&flat(&fused), &flat(&ops), 2e-5, "fused vs ops");
    let (a, b2): (Vec<f32>, Vec<f32>) = (fs.to_vec1().unwrap(), os.to_vec1().unwrap());
    for (x, y) in a.iter().zip(&b2) {
        assert!((x - y).abs() < 1e-5, "statistics {a:?} vs {b2:?}");
    }
    // And the f64 autograd reference agrees with both at f32's precision.
    let p64 = GruParams::from_theta(p.net.clone(), &theta.to_dtype(DType::F64).unwrap()).unwrap();
    let d64 = Data::new(&s, b, DType::F64, 6);
    let (auto, _) =
        ppo_grad_autograd(&p64, &d64.batch(), C, Some(&mask(&s, b, DType::F64))).unwrap();
    assert_close(&flat(&fused), &flat(&auto), 5e-5, "fused vs f64 autograd");
    // The inference forward, fused vs ops.
    let (l1, v1) = pool.install(|| p.net.forward(&theta, &d.obs, None).unwrap());
    let (l2, v2) = with_ops(|| p.net.forward(&theta, &d.obs, None).unwrap());
    let diff = |a: &Tensor, b: &Tensor| -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    assert!(diff(&l1, &l2) < 1e-5 && diff(&v1, &v2) < 1e-5);
}

/// A lent workspace's buffers hold stale values (here NaN first, then the previous
/// minibatch's): the fused kernels must write every element they hand on, so the gradient and
/// statistics are the same bits as with fresh zeroed buffers; and the minibatch's buffers come
/// back to the workspace for the next one.
#[test]
fn every_taken_buffer_is_overwritten() {
    let b = 64;
    let Fused {
        pool,
        p,
        d,
        m,
        theta,
        ..
    } = Fused::new(b);
    let bits = |(g, st): (Grads, Tensor)| -> Vec<u64> {
        let mut v: Vec<u64> = flat(&g).iter().map(|x| x.to_bits()).collect();
        v.extend(
            st.to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits() as u64),
        );
        v
    };
    let grad = |mask: Option<&Tensor>| {
        bits(ppo_grad(&p.net, &theta, &d.batch(), C, mask, Mm::F32, 1.0).unwrap())
    };
    let ws = crate::engine::gru_pool::Workspace::default();
    ws.fill_nan(8, 5 * b * 3 * 48 + b * 48);
    for mask in [Some(&m), None] {
        let fresh = pool.install(|| grad(mask));
        for _ in 0..2 {
            // Lent on the thread that runs the minibatch (install moves onto the pool's).
            let pooled = pool.install(|| ws.with(|| grad(mask)));
            assert!(pooled == fresh, "a stale value reached the result");
        }
    }
    // A minibatch reclaims its activations: no NaN buffer is left, all were taken and the
    // workspace holds the minibatch's own.
    assert!(ws.held() >= 16, "{} buffers reclaimed", ws.held());
    assert!(!ws.holds_nan(), "a NaN buffer was never used");
}

#[test]
fn reduced_precision_gradient_is_close_to_f32_and_loss_scaling_cancels() {
    let (s, b) = (spec(16, 4), 32);
    let p = params(&s, 3, DType::F32);
    let d = Data::new(&s, b, DType::F32, 8);
    let theta = p.theta().unwrap();
    let (exact, _) = ppo_grad(&p.net, &theta, &d.batch(), C, None, Mm::F32, 1.0).unwrap();
    let exact = flat(&exact);
    // Matmul inputs rounded to bf16 (8 bits of mantissa) or f16 (11) through two encoder blocks,
    // two layers × 4 steps and the heads: measured over random parameter draws, bf16 lands at
    // 0.5–4 % relative L2 error, f16 at 0.1–0.25 %. The error shrinking with the mantissa is what
    // tells rounding from a wrong reduced-precision gradient (that would not shrink).
    let mut errs = Vec::new();
    for (dt, tol) in [(DType::BF16, 8e-2), (DType::F16, 1e-2)] {
        let mut amp = Amp::new(if dt == DType::BF16 {
            crate::config::Precision::Bf16
        } else {
            crate::config::Precision::F16
        });
        assert_eq!(amp.mm, Mm(dt));
        let (g, _) = ppo_grad(&p.net, &theta, &d.batch(), C, None, amp.mm, amp.scale()).unwrap();
        let g = amp
            .unscale(g)
            .unwrap()
            .expect("no overflow at the initial scale");
        let got = flat(&g);
        let err = rel_l2(&got, &exact);
        assert!(
            err < tol,
            "{dt:?}: relative L2 error {err:e} (tolerance {tol:e})"
        );
        errs.push(err);
        assert!(
            got != exact,
            "{dt:?}: the matmuls really ran in reduced precision"
        );
    }
    assert!(
        errs[1] < errs[0] / 3.0,
        "f16's error is not below bf16's: {errs:?}"
    );
}

/// ‖got − want‖ / ‖want‖.
fn rel_l2(got: &[f64], want: &[f64]) -> f64 {
    let d: f64 = got.iter().zip(want).map(|(a, b)| (a - b) * (a - b)).sum();
    let w: f64 = want.iter().map(|b| b * b).sum();
    (d / w).sqrt()
}

#[test]
fn value_grad_matches_autograd() {
    let s = spec(6, 3);
    let p = params(&s, 11, DType::F64);
    let d = Data::new(&s, 7, DType::F64, 1);
    let feat = p.net.features(&p.theta().unwrap(), &d.obs, None).unwrap();
    let (g, half) = value_grad(&p.net, &p.critic, &feat, &d.returns, 0.5).unwrap();
    let var = candle_core::Var::from_tensor(&p.critic).unwrap();
    let v = p.net.value_head(var.as_tensor(), &feat).unwrap();
    let loss = ((v - &d.returns).unwrap().sqr().unwrap().mean_all().unwrap() * 0.25).unwrap();
    let want = loss
        .backward()
        .unwrap()
        .get(var.as_tensor())
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert_close(&g.to_vec1::<f64>().unwrap(), &want, 1e-12, "value head");
    let h: Vec<f64> = half.to_vec1().unwrap();
    assert!((h[0] * 0.5 - loss.to_scalar::<f64>().unwrap()).abs() < 1e-12);
}

/// The threaded column sum is candle's `1ᵀ·t`, bit for bit, for whole matrices and column
/// slices (the r and z gate gradients), on several threads.
#[test]
fn threaded_colsum_is_the_ones_matmul_bit_for_bit() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let mut rng = Rng::new(4);
    let v: Vec<f32> = (0..3000 * 192).map(|_| rng.normal() as f32).collect();
    let t = Tensor::from_vec(v, (3000, 192), &Device::Cpu).unwrap();
    let bits = |t: &Tensor| -> Vec<u32> {
        let v: Vec<f32> = t.to_vec1().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    };
    for x in [
        t.clone(),
        t.narrow(1, 0, 128).unwrap(),
        t.narrow(1, 5, 37).unwrap(),
        t.narrow(0, 7, 1500).unwrap(),
    ] {
        let got = pool
            .install(|| colsum_threads(&x))
            .unwrap()
            .expect("threaded");
        let ones = Tensor::ones((1, x.dim(0).unwrap()), DType::F32, &Device::Cpu).unwrap();
        let want = ones.matmul(&x).unwrap().flatten_all().unwrap();
        assert!(bits(&got) == bits(&want), "column sums differ from 1ᵀ·t");
    }
}
