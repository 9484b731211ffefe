//! `quantdeck device`: is this device's arithmetic right? A matrix product and an MLP forward
//! pass of the policy's default shape, computed on the device (f32, and bf16 as the update's
//! `precision = "bf16"` does) and compared with a plain f64 computation on the host. On a CPU it
//! checks candle's CPU kernels; on a GPU host it is the first thing to run (`benches/gpu_host.sh`).

use crate::rng::Rng;
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use serde::Serialize;

/// The shapes compared: a minibatch of 256 observations of the default layout (1,859 values)
/// through the default hidden sizes.
const ROWS: usize = 256;
const OBS: usize = 1859;
const HIDDEN: [usize; 3] = [256, 128, 64];

/// Largest error allowed relative to the f64 result's largest magnitude: f32 accumulates 1,859
/// products with about 1e-7 relative error each; bf16 keeps 8 bits of mantissa.
const F32_TOLERANCE: f64 = 1e-4;
const BF16_TOLERANCE: f64 = 3e-2;

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub what: String,
    /// Largest |device − f64| over the output, divided by the f64 output's largest magnitude.
    pub rel_error: f64,
    pub tolerance: f64,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceCheck {
    pub device: String,
    pub comparisons: Vec<Comparison>,
    pub ok: bool,
}

/// Runs the comparisons on `device`.
pub fn check(device: &Device, label: &str) -> Result<DeviceCheck> {
    let mut rng = Rng::new(0x5EED_DE71CE);
    let x = random(&mut rng, ROWS * OBS, 1.0);
    let w = random(&mut rng, OBS * HIDDEN[0], (1.0 / OBS as f64).sqrt());
    let want = host_matmul(&x, &w, ROWS, OBS, HIDDEN[0]);
    let mut comparisons = Vec::new();
    for dtype in [DType::F32, DType::BF16] {
        let got = device_matmul(device, &x, &w, dtype)?;
        comparisons.push(compare(
            format!(
                "matmul {ROWS}x{OBS} · {OBS}x{} ({})",
                HIDDEN[0],
                name(dtype)
            ),
            &got,
            &want,
            tolerance(dtype),
        ));
    }
    let layers = mlp_layers(&mut rng);
    let want = host_mlp(&x, &layers);
    for dtype in [DType::F32, DType::BF16] {
        let got = device_mlp(device, &x, &layers, dtype)?;
        comparisons.push(compare(
            format!("tanh MLP {OBS}-{:?} forward ({})", HIDDEN, name(dtype)),
            &got,
            &want,
            tolerance(dtype),
        ));
    }
    let ok = comparisons.iter().all(|c| c.ok);
    Ok(DeviceCheck {
        device: label.to_string(),
        comparisons,
        ok,
    })
}

fn name(dtype: DType) -> &'static str {
    if dtype == DType::BF16 {
        "bf16"
    } else {
        "f32"
    }
}

fn tolerance(dtype: DType) -> f64 {
    if dtype == DType::BF16 {
        BF16_TOLERANCE
    } else {
        F32_TOLERANCE
    }
}

fn random(rng: &mut Rng, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * scale) as f32).collect()
}

/// One layer: weights (in × out, row-major) and bias.
struct Layer {
    w: Vec<f32>,
    b: Vec<f32>,
    inp: usize,
    out: usize,
}

fn mlp_layers(rng: &mut Rng) -> Vec<Layer> {
    let mut inp = OBS;
    HIDDEN
        .iter()
        .map(|&out| {
            let layer = Layer {
                w: random(rng, inp * out, (1.0 / inp as f64).sqrt()),
                b: random(rng, out, 0.1),
                inp,
                out,
            };
            inp = out;
            layer
        })
        .collect()
}

/// (rows × k) · (k × cols) in f64 from f32 inputs.
fn host_matmul(a: &[f32], b: &[f32], rows: usize, k: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; rows * cols];
    for r in 0..rows {
        let row = &mut out[r * cols..(r + 1) * cols];
        for (i, &av) in a[r * k..(r + 1) * k].iter().enumerate() {
            let av = av as f64;
            for (o, &bv) in row.iter_mut().zip(&b[i * cols..(i + 1) * cols]) {
                *o += av * bv as f64;
            }
        }
    }
    out
}

fn host_mlp(x: &[f32], layers: &[Layer]) -> Vec<f64> {
    let mut h: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for l in layers {
        let mut out = vec![0.0f64; ROWS * l.out];
        for r in 0..ROWS {
            for (j, o) in out[r * l.out..(r + 1) * l.out].iter_mut().enumerate() {
                let mut s = l.b[j] as f64;
                for i in 0..l.inp {
                    s += h[r * l.inp + i] * l.w[i * l.out + j] as f64;
                }
                *o = s.tanh();
            }
        }
        h = out;
    }
    h
}

fn device_matmul(device: &Device, a: &[f32], b: &[f32], dtype: DType) -> Result<Vec<f64>> {
    let a = Tensor::from_slice(a, (ROWS, OBS), device)?.to_dtype(dtype)?;
    let b = Tensor::from_slice(b, (OBS, HIDDEN[0]), device)?.to_dtype(dtype)?;
    read(&a.matmul(&b)?)
}

fn device_mlp(device: &Device, x: &[f32], layers: &[Layer], dtype: DType) -> Result<Vec<f64>> {
    let mut h = Tensor::from_slice(x, (ROWS, OBS), device)?;
    for l in layers {
        let w = Tensor::from_slice(&l.w, (l.inp, l.out), device)?;
        let b = Tensor::from_slice(&l.b, l.out, device)?;
        // As the update's bf16 precision: the product in bf16, the bias and tanh in f32.
        let z = h
            .to_dtype(dtype)?
            .matmul(&w.to_dtype(dtype)?)?
            .to_dtype(DType::F32)?;
        h = z.broadcast_add(&b)?.tanh()?;
    }
    read(&h)
}

fn read(t: &Tensor) -> Result<Vec<f64>> {
    let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(v.into_iter().map(f64::from).collect())
}

fn compare(what: String, got: &[f64], want: &[f64], tolerance: f64) -> Comparison {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    let worst = if got.len() == want.len() {
        got.iter()
            .zip(want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0f64, |m, d| {
                if m.is_nan() || d.is_nan() {
                    f64::NAN
                } else {
                    m.max(d)
                }
            })
    } else {
        f64::INFINITY
    };
    let rel_error = worst / scale;
    Comparison {
        what,
        rel_error,
        tolerance,
        ok: rel_error <= tolerance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_agrees_with_the_f64_reference() {
        let c = check(&Device::Cpu, "cpu").unwrap();
        assert_eq!(c.comparisons.len(), 4);
        assert!(c.ok, "{c:?}");
        // bf16 really is coarser than f32: the comparison sees the device's arithmetic.
        assert!(c.comparisons[1].rel_error > c.comparisons[0].rel_error * 10.0);
    }

    #[test]
    fn a_wrong_result_or_a_nan_fails() {
        let want = vec![1.0, -2.0, 0.5];
        assert!(compare("x".into(), &[1.0, -2.0, 0.5], &want, 1e-4).ok);
        assert!(!compare("x".into(), &[1.0, -2.01, 0.5], &want, 1e-4).ok);
        assert!(!compare("x".into(), &[1.0, f64::NAN, 0.5], &want, 1e-4).ok);
        assert!(!compare("x".into(), &[f64::NAN, -2.0, 0.5], &want, 1e-4).ok);
        assert!(!compare("x".into(), &[1.0], &want, 1e-4).ok);
    }
}
