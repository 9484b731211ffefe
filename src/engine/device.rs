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
    Device::new_cuda(n).map_err(|e| anyhow::anyhow!("{}", cuda_failure(n, e)))
}

/// One line for a CUDA device that does not open: candle's error without the backtrace it
/// carries, and what to do.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn cuda_failure(n: usize, e: candle_core::Error) -> String {
    let inner = match e {
        candle_core::Error::WithBacktrace { inner, .. } => *inner,
        e => e,
    };
    let text = inner.to_string();
    let first = text.lines().next().unwrap_or("").trim();
    format!(
        "cannot open CUDA device {n} ({first}): no GPU answered through the NVIDIA driver; \
         check `nvidia-smi` and that the CUDA libraries are on LD_LIBRARY_PATH, or train with \
         --device cpu (--device auto falls back to the CPU by itself)"
    )
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

/// Keeps the memory a training frees for its next minibatch (glibc: large blocks from the heap
/// rather than fresh mappings, and no handing the heap's top back to the kernel). A GRU update
/// allocates and frees the same tens of MB of activations dozens of times; glibc returned them
/// each time and every reuse paid page faults and zeroing of fresh pages — on a loaded 2-core
/// machine the 64-env GRU trained at 460–520 env-steps/s this way, 730–980 with this set.
/// The peak is about the same (the blocks are); blocks over 32 MiB are still mapped. Set when a
/// training job starts (process-wide from then on: a TUI that trained keeps its peak).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's thresholds; glibc takes its own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cuda_device_that_does_not_open_is_one_line_with_what_to_do() {
        let e = candle_core::Error::WithBacktrace {
            inner: Box::new(candle_core::Error::Msg(
                "DriverError(CUDA_ERROR_UNKNOWN, \"unknown error\")\nmore".into(),
            )),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        let line = cuda_failure(0, e);
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.contains("device 0 (DriverError(CUDA_ERROR_UNKNOWN"),
            "{line}"
        );
        assert!(line.contains("--device cpu"), "{line}");
    }
}
