use anyhow::{bail, Result};
use candle_core::Device;

/// `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when built with it and a GPU answers, else CPU).
pub fn select(spec: &str) -> Result<Device> {
    match spec {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(cuda(0).unwrap_or(Device::Cpu)),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let n = match s.strip_prefix("cuda:") {
                Some(n) => n
                    .parse::<usize>()
                    .map_err(|_| anyhow::anyhow!("bad device {s:?}: use cuda:N with a number"))?,
                None => 0,
            };
            cuda(n)
        }
        other => bail!("unknown device {other:?}: use cpu, cuda, cuda:N or auto"),
    }
}

#[cfg(feature = "cuda")]
fn cuda(n: usize) -> Result<Device> {
    Device::new_cuda(n).map_err(|e| anyhow::anyhow!("cannot open CUDA device {n}: {e}"))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_n: usize) -> Result<Device> {
    bail!("this quantdeck was built without CUDA: rebuild with `--features cuda` (see README) or use --device cpu")
}

pub fn describe(d: &Device) -> String {
    match d {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(_) => "cuda".to_string(),
        _ => format!("{d:?}"),
    }
}

/// Keeps candle's CPU element-wise ops on the calling thread (`CANDLE_NUM_THREADS=1`) unless the
/// user chose otherwise; matrix products keep their threads (`RAYON_NUM_THREADS`). Candle hands
/// every element-wise op over 64k values to a spinning worker pool separate from the matmul
/// threads; for this engine's tensors (a minibatch's activations, a few hundred KB) waking it
/// costs more than the op, and on a shared machine a descheduled worker stalls each op — an
/// update ran about a third slower with the pool than without.
///
/// # Safety
/// Sets a process environment variable: call it before any other thread exists (first thing in
/// `main`).
pub unsafe fn prefer_single_threaded_elementwise() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}
