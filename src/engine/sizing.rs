//! Sizing a run for the GPU it lands on: the seed trainer's per-GPU presets (n_envs / n_steps /
//! minibatch / hidden dims, seed-system §3) and its VRAM formula with the high/low caps (§10).
//! Presets apply only on a CUDA device: on a CPU the config's values stand, whatever was asked.
//! Like the seed, a run mode (quick_test, standard, …) never overrides a tier's values: the
//! config sets them for CPUs, the tier for GPUs; `gpu_sizing = "off"` keeps the config's.

use crate::config::{GpuSizing, PpoConfig};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::process::Command;

const GIB: f64 = (1u64 << 30) as f64;

/// A GPU as `nvidia-smi` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    pub name: String,
    pub vram_mib: u64,
}

impl GpuInfo {
    pub fn vram_gib(&self) -> f64 {
        self.vram_mib as f64 / 1024.0
    }
}

/// Asks `nvidia-smi` about GPU `index`; `None` when it is missing or says nothing usable (the
/// generic tier then applies). A subprocess rather than the CUDA driver API keeps this the same
/// in CPU and CUDA builds, and testable without a GPU.
pub fn probe(index: usize) -> Option<GpuInfo> {
    let out = Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total",
            "--format=csv,noheader,nounits",
            &format!("--id={index}"),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_nvidia_smi(String::from_utf8_lossy(&out.stdout).lines().next()?)
}

/// One line of `--query-gpu=name,memory.total --format=csv,noheader,nounits`, e.g.
/// `NVIDIA H100 80GB HBM3, 81559`.
pub fn parse_nvidia_smi(line: &str) -> Option<GpuInfo> {
    let (name, mib) = line.rsplit_once(',')?;
    let name = name.trim();
    let vram_mib = mib.trim().parse::<u64>().ok()?;
    (!name.is_empty() && vram_mib > 0).then(|| GpuInfo {
        name: name.to_string(),
        vram_mib,
    })
}

/// The seed's GPU classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    H100,
    A100_80,
    A100_40,
    Rtx4090,
    Rtx3090,
    Generic,
}

impl Tier {
    /// The class of a GPU by its name (and memory, which tells the two A100s apart).
    pub fn detect(gpu: &GpuInfo) -> Tier {
        let n = gpu.name.to_ascii_uppercase();
        if n.contains("H100") || n.contains("H200") || n.contains("GH200") {
            Tier::H100
        } else if n.contains("A100") {
            if gpu.vram_gib() > 60.0 {
                Tier::A100_80
            } else {
                Tier::A100_40
            }
        } else if n.contains("4090") {
            Tier::Rtx4090
        } else if n.contains("3090") {
            Tier::Rtx3090
        } else {
            Tier::Generic
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tier::H100 => "H100",
            Tier::A100_80 => "A100-80",
            Tier::A100_40 => "A100-40",
            Tier::Rtx4090 => "RTX 4090",
            Tier::Rtx3090 => "RTX 3090",
            Tier::Generic => "generic",
        }
    }

    /// (n_envs, n_steps, minibatch).
    pub fn preset(self) -> (usize, usize, usize) {
        match self {
            Tier::H100 | Tier::A100_80 => (2048, 512, 8192),
            Tier::A100_40 | Tier::Rtx4090 => (1024, 512, 4096),
            Tier::Rtx3090 => (512, 512, 2048),
            Tier::Generic => (256, 512, 2048),
        }
    }

    /// The seed's network size for this class: the big tiers get (1024, 512, 256); 20 GB and
    /// more (and the A100-40) (512, 256, 128); smaller cards (256, 128, 64).
    pub fn hidden_dims(self, vram_gib: f64) -> Vec<usize> {
        match self {
            Tier::H100 | Tier::A100_80 => vec![1024, 512, 256],
            Tier::A100_40 => vec![512, 256, 128],
            _ if vram_gib >= 20.0 => vec![512, 256, 128],
            _ => vec![256, 128, 64],
        }
    }
}

/// The sibling trainer's VRAM-proportional sizing: (cap GiB, n_steps, minibatch, most envs).
fn vram_mode(mode: GpuSizing) -> Option<(f64, usize, usize, usize)> {
    match mode {
        GpuSizing::HighVram => Some((45.0, 512, 65_536, 65_536)),
        GpuSizing::LowVram => Some((20.0, 256, 8_192, 16_384)),
        _ => None,
    }
}

/// Bytes one rollout sample costs on the device in the seed's estimate: the f32 observation, 21
/// bytes of per-step scalars, and the f32 action logits.
pub fn bytes_per_sample(obs_dim: usize, n_actions: usize) -> usize {
    obs_dim * 4 + 21 + 4 * n_actions
}

/// n_envs = VRAM / (1.5 × bytes per sample) / n_steps, with VRAM capped; rounded down to a
/// multiple of 64 (at least 64) and at most the mode's ceiling.
pub fn vram_envs(
    vram_gib: f64,
    cap_gib: f64,
    n_steps: usize,
    per_sample: usize,
    most: usize,
) -> usize {
    let usable = vram_gib.min(cap_gib) * GIB;
    let envs = (usable / (1.5 * per_sample as f64) / n_steps as f64) as usize;
    (envs / 64 * 64).clamp(64, most)
}

/// Where a run's sizes came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SizingSource {
    /// The config's values (a CPU device, or sizing off).
    Config,
    Tier {
        tier: Tier,
        gpu: Option<GpuInfo>,
    },
    Vram {
        mode: GpuSizing,
        gpu: GpuInfo,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sizing {
    pub source: SizingSource,
    pub n_envs: usize,
    pub n_steps: usize,
    pub minibatch: usize,
    pub hidden_dims: Vec<usize>,
}

impl Sizing {
    /// One line for the run's log.
    pub fn describe(&self) -> String {
        let what = match &self.source {
            SizingSource::Config => "config".to_string(),
            SizingSource::Tier { tier, gpu } => match gpu {
                Some(g) => format!("{} tier ({}, {:.0} GiB)", tier.name(), g.name, g.vram_gib()),
                None => format!("{} tier (GPU not identified)", tier.name()),
            },
            SizingSource::Vram { mode, gpu } => format!(
                "{} sizing ({}, {:.0} GiB)",
                mode.as_str(),
                gpu.name,
                gpu.vram_gib()
            ),
        };
        format!(
            "sizes from {what}: {} envs × {} steps, minibatch {}, hidden {:?}",
            self.n_envs, self.n_steps, self.minibatch, self.hidden_dims
        )
    }

    /// The config with these sizes in place.
    pub fn apply(&self, ppo: &mut PpoConfig) {
        ppo.n_envs = self.n_envs;
        ppo.n_steps = self.n_steps;
        ppo.minibatch = self.minibatch;
        ppo.hidden_dims = self.hidden_dims.clone();
    }
}

/// Sizes for a run: the config's on a CPU, else the tier's or the VRAM formula's.
/// `gpu` is what [`probe`] found (None: not identified).
pub fn plan(
    ppo: &PpoConfig,
    on_cuda: bool,
    gpu: Option<GpuInfo>,
    obs_dim: usize,
    n_actions: usize,
) -> Result<Sizing> {
    let from_config = Sizing {
        source: SizingSource::Config,
        n_envs: ppo.n_envs,
        n_steps: ppo.n_steps,
        minibatch: ppo.minibatch,
        hidden_dims: ppo.hidden_dims.clone(),
    };
    if !on_cuda || ppo.gpu_sizing == GpuSizing::Off {
        return Ok(from_config);
    }
    if let Some((cap, n_steps, minibatch, most)) = vram_mode(ppo.gpu_sizing) {
        let Some(gpu) = gpu else {
            bail!(
                "ppo.gpu_sizing = \"{}\" needs the GPU's memory size, and nvidia-smi did not answer: \
                 use a tier (\"auto\") or set the sizes yourself with gpu_sizing = \"off\"",
                ppo.gpu_sizing.as_str()
            );
        };
        let n_envs = vram_envs(
            gpu.vram_gib(),
            cap,
            n_steps,
            bytes_per_sample(obs_dim, n_actions),
            most,
        );
        let tier = Tier::detect(&gpu);
        return Ok(Sizing {
            n_envs,
            n_steps,
            minibatch: minibatch.min(n_envs * n_steps),
            hidden_dims: tier.hidden_dims(gpu.vram_gib()),
            source: SizingSource::Vram {
                mode: ppo.gpu_sizing,
                gpu,
            },
        });
    }
    let tier = match ppo.gpu_sizing.tier() {
        Some(t) => t,
        None => gpu.as_ref().map(Tier::detect).unwrap_or(Tier::Generic),
    };
    let (n_envs, n_steps, minibatch) = tier.preset();
    let vram = gpu.as_ref().map(GpuInfo::vram_gib).unwrap_or(0.0);
    Ok(Sizing {
        n_envs,
        n_steps,
        minibatch,
        hidden_dims: tier.hidden_dims(vram),
        source: SizingSource::Tier { tier, gpu },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(name: &str, mib: u64) -> GpuInfo {
        GpuInfo {
            name: name.into(),
            vram_mib: mib,
        }
    }

    #[test]
    fn nvidia_smi_lines_parse_and_junk_does_not() {
        assert_eq!(
            parse_nvidia_smi("NVIDIA H100 80GB HBM3, 81559"),
            Some(gpu("NVIDIA H100 80GB HBM3", 81559))
        );
        assert_eq!(
            parse_nvidia_smi("NVIDIA A100-SXM4-40GB, 40960 "),
            Some(gpu("NVIDIA A100-SXM4-40GB", 40960))
        );
        assert_eq!(parse_nvidia_smi("No devices were found"), None);
        assert_eq!(parse_nvidia_smi("NVIDIA T4, [N/A]"), None);
        assert_eq!(parse_nvidia_smi(", 1024"), None);
    }

    #[test]
    fn tiers_follow_the_gpu_name_and_memory() {
        let t = |n, m| Tier::detect(&gpu(n, m));
        assert_eq!(t("NVIDIA H100 80GB HBM3", 81559), Tier::H100);
        assert_eq!(t("NVIDIA H200", 143771), Tier::H100);
        assert_eq!(t("NVIDIA A100-SXM4-80GB", 81920), Tier::A100_80);
        assert_eq!(t("NVIDIA A100-PCIE-40GB", 40960), Tier::A100_40);
        assert_eq!(t("NVIDIA GeForce RTX 4090", 24564), Tier::Rtx4090);
        assert_eq!(t("NVIDIA GeForce RTX 3090", 24576), Tier::Rtx3090);
        assert_eq!(t("Tesla T4", 15360), Tier::Generic);
        assert_eq!(Tier::H100.preset(), (2048, 512, 8192));
        assert_eq!(Tier::A100_40.preset(), (1024, 512, 4096));
        assert_eq!(Tier::Rtx4090.preset(), (1024, 512, 4096));
        assert_eq!(Tier::Rtx3090.preset(), (512, 512, 2048));
        assert_eq!(Tier::Generic.preset(), (256, 512, 2048));
        assert_eq!(Tier::H100.hidden_dims(80.0), vec![1024, 512, 256]);
        assert_eq!(Tier::Rtx4090.hidden_dims(24.0), vec![512, 256, 128]);
        assert_eq!(Tier::Generic.hidden_dims(15.0), vec![256, 128, 64]);
    }

    #[test]
    fn vram_formula_matches_a_hand_computation() {
        // obs 1859, 8 actions: 1859·4 + 21 + 32 = 7489 bytes; ×1.5 = 11 233.5 per sample.
        assert_eq!(bytes_per_sample(1859, 8), 7489);
        // High: an 80 GiB card is capped at 45 GiB: 45·2³⁰ / 11 233.5 / 512 = 8401.4 → 8384.
        assert_eq!(vram_envs(80.0, 45.0, 512, 7489, 65_536), 8384);
        // Low: 24 GiB capped at 20: 20·2³⁰ / 11 233.5 / 256 = 7467.9 → 7424.
        assert_eq!(vram_envs(24.0, 20.0, 256, 7489, 16_384), 7424);
        // A small observation hits the ceiling; a tiny card still gets 64 envs.
        assert_eq!(vram_envs(80.0, 45.0, 512, 100, 65_536), 65_536);
        assert_eq!(vram_envs(0.5, 20.0, 256, 7489, 16_384), 128);
        assert_eq!(vram_envs(0.01, 20.0, 256, 7489, 16_384), 64);
    }

    fn ppo(sizing: GpuSizing) -> PpoConfig {
        PpoConfig {
            gpu_sizing: sizing,
            ..PpoConfig::default()
        }
    }

    #[test]
    fn a_cpu_run_keeps_the_config_whatever_was_asked() {
        for s in [GpuSizing::Auto, GpuSizing::HighVram, GpuSizing::H100] {
            let p = ppo(s);
            let z = plan(&p, false, Some(gpu("NVIDIA H100", 81559)), 1859, 8).unwrap();
            assert_eq!(z.source, SizingSource::Config);
            assert_eq!(
                (z.n_envs, z.n_steps, z.minibatch),
                (p.n_envs, p.n_steps, p.minibatch)
            );
            assert_eq!(z.hidden_dims, p.hidden_dims);
        }
    }

    #[test]
    fn on_cuda_the_tier_or_the_vram_formula_decides() {
        let h100 = gpu("NVIDIA H100 80GB HBM3", 81559);
        let z = plan(&ppo(GpuSizing::Auto), true, Some(h100.clone()), 1859, 8).unwrap();
        assert_eq!((z.n_envs, z.n_steps, z.minibatch), (2048, 512, 8192));
        assert_eq!(z.hidden_dims, vec![1024, 512, 256]);
        // Unknown GPU: the generic preset, small network.
        let z = plan(&ppo(GpuSizing::Auto), true, None, 1859, 8).unwrap();
        assert_eq!((z.n_envs, z.n_steps, z.minibatch), (256, 512, 2048));
        assert_eq!(z.hidden_dims, vec![256, 128, 64]);
        // A forced tier wins over the detected one.
        let z = plan(&ppo(GpuSizing::Rtx3090), true, Some(h100.clone()), 1859, 8).unwrap();
        assert_eq!((z.n_envs, z.minibatch), (512, 2048));
        // Off: the config's.
        let z = plan(&ppo(GpuSizing::Off), true, Some(h100.clone()), 1859, 8).unwrap();
        assert_eq!(z.source, SizingSource::Config);
        // High VRAM on the H100: the capped formula, the seed's minibatch.
        let z = plan(&ppo(GpuSizing::HighVram), true, Some(h100.clone()), 1859, 8).unwrap();
        assert_eq!((z.n_envs, z.n_steps, z.minibatch), (8384, 512, 65_536));
        let z = plan(&ppo(GpuSizing::LowVram), true, Some(h100), 1859, 8).unwrap();
        assert_eq!((z.n_envs, z.n_steps, z.minibatch), (7424, 256, 8192));
        // The VRAM modes cannot guess the memory size.
        let e = plan(&ppo(GpuSizing::HighVram), true, None, 1859, 8).unwrap_err();
        assert!(e.to_string().contains("nvidia-smi"), "{e}");
    }

    #[test]
    fn applying_a_sizing_sets_all_four_values() {
        let mut p = PpoConfig::default();
        let z = plan(&ppo(GpuSizing::A100_40), true, None, 1859, 8).unwrap();
        z.apply(&mut p);
        assert_eq!((p.n_envs, p.n_steps, p.minibatch), (1024, 512, 4096));
        assert_eq!(p.hidden_dims, vec![512, 256, 128]);
        assert!(z.describe().contains("A100-40 tier"), "{}", z.describe());
    }
}
