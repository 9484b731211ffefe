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
