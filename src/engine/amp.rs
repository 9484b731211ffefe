//! Mixed precision for the PPO update (`ppo.precision`, the seed's `--amp`): the update's
//! matmuls run in bf16 or f16 while the weights, the optimizer moments and every element-wise
//! step (tanh, softmax, the losses) stay f32 — the "master" copy. f16's narrow range needs loss
//! scaling: the loss gradient is multiplied by a scale before the backward pass and the result
//! divided by it; a step whose gradient overflowed is skipped and the scale halved, and after
//! `GROWTH_INTERVAL` clean steps the scale doubles (PyTorch's GradScaler defaults). bf16 has f32's
//! range and needs no scaling. The rollout's forward passes stay f32.

use super::adam::{norm_sq, Grads};
use crate::config::Precision;
use anyhow::Result;
use candle_core::{DType, Tensor};

/// The dtype the update's matmuls run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mm(pub DType);

impl Mm {
    pub const F32: Mm = Mm(DType::F32);

    /// `a · b` with both operands cast to the compute dtype, the product back in f32.
    pub fn matmul(self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        if self.0 == DType::F32 {
            return Ok(a.matmul(b)?);
        }
        let (a, b) = (a.to_dtype(self.0)?, b.to_dtype(self.0)?);
        Ok(a.matmul(&b)?.to_dtype(DType::F32)?)
    }
}

pub const INITIAL_SCALE: f64 = 65_536.0;
pub const GROWTH_INTERVAL: u32 = 2_000;
/// The scale never drops below this (a gradient that overflows even then is a real problem).
const MIN_SCALE: f64 = 1.0;

/// Dynamic loss scaling for f16.
#[derive(Debug, Clone, PartialEq)]
pub struct LossScaler {
    pub scale: f64,
    /// Clean steps since the scale last changed.
    pub good_steps: u32,
    /// Steps skipped for overflow, all told.
    pub skipped: u64,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler {
            scale: INITIAL_SCALE,
            good_steps: 0,
            skipped: 0,
        }
    }
}

impl LossScaler {
    /// Records a step's outcome: `finite` = its gradient had no inf/NaN.
    pub fn update(&mut self, finite: bool) {
        if finite {
            self.good_steps += 1;
            if self.good_steps >= GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale = (self.scale * 0.5).max(MIN_SCALE);
            self.good_steps = 0;
            self.skipped += 1;
        }
    }
}

/// The update's precision: the matmul dtype and, for f16, the loss scaler.
#[derive(Debug, Clone)]
pub struct Amp {
    pub mm: Mm,
    pub scaler: Option<LossScaler>,
}

impl Amp {
    pub fn new(p: Precision) -> Self {
        match p {
            Precision::F32 => Amp {
                mm: Mm::F32,
                scaler: None,
            },
            Precision::Bf16 => Amp {
                mm: Mm(DType::BF16),
                scaler: None,
            },
            Precision::F16 => Amp {
                mm: Mm(DType::F16),
                scaler: Some(LossScaler::default()),
            },
        }
    }

    /// The factor the loss gradient is multiplied by before the backward pass.
    pub fn scale(&self) -> f64 {
        self.scaler.as_ref().map_or(1.0, |s| s.scale)
    }

    /// The true gradient of a scaled backward pass, or None when it overflowed (skip the step).
    /// Without a scaler this is the identity and reads nothing back from the device.
    pub fn unscale(&mut self, g: Grads) -> Result<Option<Grads>> {
        let Some(s) = self.scaler.as_mut() else {
            return Ok(Some(g));
        };
        let inv = 1.0 / s.scale;
        let g = Grads {
            actor: g.actor.affine(inv, 0.0)?,
            critic: g.critic.affine(inv, 0.0)?,
        };
        let n = (norm_sq(&g.actor)? + norm_sq(&g.critic)?)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let finite = n.first().is_some_and(|x| x.is_finite());
        s.update(finite);
        Ok(finite.then_some(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_scaler_halves_on_overflow_and_doubles_after_clean_steps() {
        let mut s = LossScaler::default();
        s.update(false);
        assert_eq!((s.scale, s.skipped), (INITIAL_SCALE / 2.0, 1));
        for _ in 0..GROWTH_INTERVAL - 1 {
            s.update(true);
        }
        assert_eq!(s.scale, INITIAL_SCALE / 2.0, "not yet");
        s.update(true);
        assert_eq!((s.scale, s.good_steps), (INITIAL_SCALE, 0));
        // An overflow resets the clean-step count; the scale has a floor.
        for _ in 0..40 {
            s.update(false);
        }
        assert_eq!(s.scale, MIN_SCALE);
    }

    #[test]
    fn unscaling_divides_and_an_overflow_skips_the_step() {
        let dev = Device::Cpu;
        let mut amp = Amp::new(Precision::F16);
        let g = |a: &[f32]| Grads {
            actor: Tensor::new(a, &dev).unwrap(),
            critic: Tensor::new(&[4.0f32 * INITIAL_SCALE as f32], &dev).unwrap(),
        };
        let ok = amp
            .unscale(g(&[INITIAL_SCALE as f32, -2.0 * INITIAL_SCALE as f32]))
            .unwrap()
            .expect("finite");
        assert_eq!(ok.actor.to_vec1::<f32>().unwrap(), vec![1.0, -2.0]);
        assert_eq!(ok.critic.to_vec1::<f32>().unwrap(), vec![4.0]);
        assert!(amp.unscale(g(&[f32::INFINITY, 1.0])).unwrap().is_none());
        assert_eq!(amp.scale(), INITIAL_SCALE / 2.0);
        // bf16 and f32 scale nothing and never skip.
        let mut bf = Amp::new(Precision::Bf16);
        assert_eq!(bf.scale(), 1.0);
        assert!(bf.unscale(g(&[f32::INFINITY])).unwrap().is_some());
    }

    #[test]
    fn reduced_precision_matmul_is_close_to_f32() {
        let dev = Device::Cpu;
        let a = Tensor::randn(0f32, 1.0, (16, 64), &dev).unwrap();
        let b = Tensor::randn(0f32, 0.1, (64, 8), &dev).unwrap();
        let exact = Mm::F32.matmul(&a, &b).unwrap();
        for dt in [DType::BF16, DType::F16] {
            let got = Mm(dt).matmul(&a, &b).unwrap();
            assert_eq!(got.dtype(), DType::F32, "products come back in f32");
            let err = (&got - &exact)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let tol = if dt == DType::BF16 { 0.05 } else { 0.01 };
            assert!(err < tol && err > 0.0, "{dt:?}: max error {err}");
        }
    }
}
