//! `[ppo]`: the network (encoder, sizes), the PPO update, its precision and the GPU sizing.

use super::range;
use serde::{Deserialize, Serialize};

/// `ppo.encoder`: which network reads the observation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoder {
    #[default]
    Mlp,
    Gru,
}

impl Encoder {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoder::Mlp => "mlp",
            Encoder::Gru => "gru",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PpoConfig {
    /// `auto` (CUDA when built with it and a GPU answers), `cpu`, `cuda` or `cuda:N`.
    #[serde(deserialize_with = "range::device")]
    pub device: String,
    #[serde(deserialize_with = "range::total_steps")]
    pub total_timesteps: u64,
    #[serde(deserialize_with = "range::n_envs")]
    pub n_envs: usize,
    #[serde(deserialize_with = "range::n_steps")]
    pub n_steps: usize,
    #[serde(deserialize_with = "range::minibatch")]
    pub minibatch: usize,
    #[serde(deserialize_with = "range::epochs")]
    pub epochs: usize,
    /// Validate on held-out bars every this many updates.
    #[serde(deserialize_with = "range::every")]
    pub validation_interval: usize,
    #[serde(deserialize_with = "range::layers")]
    pub hidden_dims: Vec<usize>,
    /// The network: the MLP actor-critic of `hidden_dims`, or the seed's GRU encoder (the
    /// `gru_*` sizes), for portfolio and single-symbol runs alike.
    pub encoder: Encoder,
    /// GRU encoder width and hidden size (seed: 256).
    #[serde(deserialize_with = "range::width")]
    pub gru_hidden: usize,
    /// GRU layers (seed: 2).
    #[serde(deserialize_with = "range::gru_layers")]
    pub gru_layers: usize,
    /// Width of the GRU's policy and value heads' hidden layer (seed: 128).
    #[serde(deserialize_with = "range::width")]
    pub gru_head_hidden: usize,
    /// Dropout after the GRU's encoder while training, off at inference (seed: 0.1).
    #[serde(deserialize_with = "range::below_one")]
    pub gru_dropout: f64,
    /// Learning rate of the actor's optimizer (trunk and policy head; seed: 3e-4).
    #[serde(deserialize_with = "range::discount")]
    pub actor_lr: f64,
    /// Learning rate of the critic's optimizer (value head; seed: 9e-4, three times the actor's).
    #[serde(deserialize_with = "range::discount")]
    pub critic_lr: f64,
    /// Value-only epochs after the PPO epochs (seed: 4; 0 turns them off).
    #[serde(deserialize_with = "range::critic_epochs")]
    pub critic_epochs: usize,
    #[serde(deserialize_with = "range::discount")]
    pub gamma: f64,
    #[serde(deserialize_with = "range::fraction")]
    pub gae_lambda: f64,
    #[serde(deserialize_with = "range::share")]
    pub clip: f64,
    #[serde(deserialize_with = "range::loss_coef")]
    pub vf_coef: f64,
    #[serde(deserialize_with = "range::entropy_coef")]
    pub ent_coef_start: f64,
    #[serde(deserialize_with = "range::entropy_coef")]
    pub ent_coef_end: f64,
    #[serde(deserialize_with = "range::grad_norm")]
    pub max_grad_norm: f64,
    pub seed: u64,
    /// Periodic checkpoints kept: every this many validations (1 keeps all). The best, the
    /// newest and the final ones are always kept.
    #[serde(deserialize_with = "range::every")]
    pub keep_every: usize,
    /// Drawdown early stop (seed: off by default): a validation whose max drawdown reaches
    /// `early_stop_drawdown` restarts from the last good validation with lr × `early_stop_lr_factor`
    /// and entropy × `early_stop_entropy_factor`, at most `early_stop_retries` times; then training stops.
    pub early_stop: bool,
    #[serde(deserialize_with = "range::share")]
    pub early_stop_drawdown: f64,
    #[serde(deserialize_with = "range::few")]
    pub early_stop_retries: usize,
    #[serde(deserialize_with = "range::share")]
    pub early_stop_lr_factor: f64,
    #[serde(deserialize_with = "range::factor")]
    pub early_stop_entropy_factor: f64,
    /// The single learning rate of configurations written before the actor/critic split. A
    /// config file's `ppo.lr` is read as `actor_lr = lr, critic_lr = 3 × lr` (see `load`); in a
    /// model file's recorded config it is kept as written and not used.
    #[serde(default, skip_serializing, deserialize_with = "range::legacy_lr")]
    pub lr: Option<f64>,
    /// How a CUDA run picks n_envs / n_steps / minibatch / hidden_dims (ignored on a CPU).
    pub gpu_sizing: GpuSizing,
    /// The PPO update's matmul precision (the seed's `--amp`): f32, bf16, or f16 with loss
    /// scaling; weights and optimizer stay f32 (see `engine::amp`).
    pub precision: Precision,
}

/// `[ppo] precision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    Bf16,
    F16,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }
}

/// `[ppo] gpu_sizing`: the seed's per-GPU presets (`auto` detects the GPU), a forced tier, the
/// VRAM formula (`high-vram`, `low-vram`), or `off` (the config's values on every device).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GpuSizing {
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "off")]
    Off,
    #[serde(rename = "high-vram")]
    HighVram,
    #[serde(rename = "low-vram")]
    LowVram,
    #[serde(rename = "h100")]
    H100,
    #[serde(rename = "a100-80")]
    A100_80,
    #[serde(rename = "a100-40")]
    A100_40,
    #[serde(rename = "rtx4090")]
    Rtx4090,
    #[serde(rename = "rtx3090")]
    Rtx3090,
    #[serde(rename = "generic")]
    Generic,
}

impl GpuSizing {
    pub fn as_str(self) -> &'static str {
        match self {
            GpuSizing::Auto => "auto",
            GpuSizing::Off => "off",
            GpuSizing::HighVram => "high-vram",
            GpuSizing::LowVram => "low-vram",
            GpuSizing::H100 => "h100",
            GpuSizing::A100_80 => "a100-80",
            GpuSizing::A100_40 => "a100-40",
            GpuSizing::Rtx4090 => "rtx4090",
            GpuSizing::Rtx3090 => "rtx3090",
            GpuSizing::Generic => "generic",
        }
    }

    /// The tier a forced choice names.
    pub fn tier(self) -> Option<crate::engine::sizing::Tier> {
        use crate::engine::sizing::Tier;
        match self {
            GpuSizing::H100 => Some(Tier::H100),
            GpuSizing::A100_80 => Some(Tier::A100_80),
            GpuSizing::A100_40 => Some(Tier::A100_40),
            GpuSizing::Rtx4090 => Some(Tier::Rtx4090),
            GpuSizing::Rtx3090 => Some(Tier::Rtx3090),
            GpuSizing::Generic => Some(Tier::Generic),
            _ => None,
        }
    }
}

impl Default for PpoConfig {
    fn default() -> Self {
        PpoConfig {
            device: "auto".into(),
            total_timesteps: 50_000_000,
            n_envs: 64,
            n_steps: 128,
            minibatch: 1024,
            epochs: 12,
            validation_interval: 20,
            hidden_dims: vec![256, 128, 64],
            encoder: Encoder::Mlp,
            gru_hidden: 256,
            gru_layers: 2,
            gru_head_hidden: 128,
            gru_dropout: 0.1,
            actor_lr: 3e-4,
            critic_lr: 9e-4,
            critic_epochs: 4,
            gamma: 0.995,
            gae_lambda: 0.95,
            clip: 0.2,
            vf_coef: 0.5,
            ent_coef_start: 0.005,
            ent_coef_end: 0.0,
            max_grad_norm: 0.5,
            seed: 1,
            keep_every: 10,
            early_stop: false,
            early_stop_drawdown: 0.50,
            early_stop_retries: 3,
            early_stop_lr_factor: 0.5,
            early_stop_entropy_factor: 1.5,
            lr: None,
            gpu_sizing: GpuSizing::Auto,
            precision: Precision::F32,
        }
    }
}

impl PpoConfig {
    pub fn steps_per_update(&self) -> u64 {
        (self.n_envs * self.n_steps) as u64
    }

    pub fn updates(&self) -> usize {
        (self.total_timesteps / self.steps_per_update().max(1)).max(1) as usize
    }
}
