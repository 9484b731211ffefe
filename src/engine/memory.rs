//! How much memory a training run will take, estimated before anything is allocated, and the
//! refusal of a run that cannot fit: an absurd setting (`n_envs = 2³²`, `hidden_dims = [65536,
//! 65536]`, `gru_hidden = 65536`) must end in a message, not in an allocation abort minutes
//! later. The estimate is deliberately generous (f32 everywhere, autograd's intermediates
//! counted several times): refusing a run that would have just fitted is the cheaper mistake.

use super::gru::GruSpec;
use crate::config::{Encoder, PpoConfig};
use anyhow::{bail, Result};

const F32: f64 = 4.0;
/// Refuse above this share of the available memory; warn above [`WARN_SHARE`].
const REFUSE_SHARE: f64 = 0.5;
const WARN_SHARE: f64 = 0.125;

/// The network a run trains.
#[derive(Debug, Clone, PartialEq)]
pub enum NetShape {
    Mlp {
        obs_dim: usize,
        hidden: Vec<usize>,
        n_actions: usize,
    },
    Gru(GruSpec),
}

impl NetShape {
    pub fn of(
        p: &PpoConfig,
        obs_dim: usize,
        n_actions: usize,
        gru: impl FnOnce() -> GruSpec,
    ) -> Self {
        match p.encoder {
            Encoder::Mlp => NetShape::Mlp {
                obs_dim,
                hidden: p.hidden_dims.clone(),
                n_actions,
            },
            Encoder::Gru => NetShape::Gru(gru()),
        }
    }

    /// Parameters, in f64 so that no size overflows.
    fn params(&self) -> f64 {
        match self {
            NetShape::Mlp {
                obs_dim,
                hidden,
                n_actions,
            } => {
                let mut dims = vec![*obs_dim as f64];
                dims.extend(hidden.iter().map(|h| *h as f64));
                let last = dims.last().copied().unwrap_or(0.0);
                let trunk: f64 = dims.windows(2).map(|w| (w[0] + 1.0) * w[1]).sum();
                trunk + (last + 1.0) * (*n_actions as f64 + 1.0)
            }
            NetShape::Gru(g) => g
                .tensors()
                .iter()
                .map(|(_, s)| s.iter().map(|d| *d as f64).product::<f64>())
                .sum(),
        }
    }

    /// Activations kept for the backward pass of one sample (forward values, their gradients
    /// and the elementwise temporaries: ×4).
    fn activations_per_sample(&self) -> f64 {
        match self {
            NetShape::Mlp {
                obs_dim, hidden, ..
            } => 4.0 * (*obs_dim as f64 + hidden.iter().map(|h| *h as f64).sum::<f64>()),
            NetShape::Gru(g) => {
                let (h, steps) = (g.hidden as f64, g.seq_len as f64);
                // Per step: the two encoder layers, and per GRU layer the three gates, the
                // candidate and the state — each also as gradient.
                let per_step = 4.0 * h + g.layers as f64 * 10.0 * h + g.step_dim as f64;
                4.0 * steps * per_step + 4.0 * (h + g.tail_dim as f64 + 2.0 * g.head_hidden as f64)
            }
        }
    }
}

/// The estimate, in bytes, by what takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemEstimate {
    /// Weights and gradients, with the snapshot of the last good validation.
    pub weights: f64,
    /// Adam's two moments, with their snapshot.
    pub optimizer: f64,
    /// Observations, actions, log-probabilities, values, rewards, advantages, returns.
    pub rollout: f64,
    /// The training data as features (host, and the env's copy).
    pub data: f64,
    /// One minibatch's forward and backward.
    pub activations: f64,
}

impl MemEstimate {
    pub fn total(&self) -> f64 {
        self.weights + self.optimizer + self.rollout + self.data + self.activations
    }

    /// Estimates a run of `net` with `p`'s sizes over `data_bytes` of training data.
    pub fn of(p: &PpoConfig, net: &NetShape, obs_dim: usize, data_bytes: f64) -> MemEstimate {
        let params = net.params();
        let samples = p.n_envs as f64 * p.n_steps as f64;
        let minibatch = (p.minibatch as f64).min(samples);
        MemEstimate {
            weights: params * F32 * 3.0,
            optimizer: params * F32 * 4.0,
            // The observations twice (the rollout and the minibatch gather), ten scalars each.
            rollout: samples * (2.0 * obs_dim as f64 + 10.0) * F32,
            data: 2.0 * data_bytes,
            activations: minibatch * net.activations_per_sample() * F32,
        }
    }

    /// `≈ 223.4 GiB (weights 1.2 GiB, optimizer …)`.
    pub fn describe(&self) -> String {
        format!(
            "≈ {} (weights and gradients {}, optimizer state {}, rollout buffers {}, training data {}, one minibatch's activations {})",
            gib(self.total()),
            gib(self.weights),
            gib(self.optimizer),
            gib(self.rollout),
            gib(self.data),
            gib(self.activations)
        )
    }

    /// Refuses a run above half of `available` bytes of `what` (the machine's `MemAvailable`,
    /// or a GPU's memory); a warning when it takes more than an eighth.
    pub fn check(&self, what: &str, available: f64) -> Result<Option<String>> {
        let total = self.total();
        if !total.is_finite() || total > REFUSE_SHARE * available {
            bail!(
                "this training run would need {} but {what} has {} and at most {:.0} % of it is used: refused before allocating. Lower ppo.n_envs, ppo.n_steps, ppo.minibatch, ppo.hidden_dims or ppo.gru_hidden / gru_layers",
                self.describe(),
                gib(available),
                REFUSE_SHARE * 100.0
            );
        }
        Ok((total > WARN_SHARE * available).then(|| {
            format!(
                "this training run needs {}: a large share of the {} {what} has",
                self.describe(),
                gib(available)
            )
        }))
    }
}

fn gib(bytes: f64) -> String {
    let g = bytes / (1u64 << 30) as f64;
    if g >= 0.1 || !g.is_finite() {
        format!("{g:.1} GiB")
    } else {
        format!("{:.1} MiB", bytes / (1u64 << 20) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mlp(hidden: Vec<usize>) -> NetShape {
        NetShape::Mlp {
            obs_dim: 32 * 58 + 6,
            hidden,
            n_actions: 8,
        }
    }

    #[test]
    fn the_defaults_fit_and_the_issues_absurd_sizes_are_refused() {
        let p = PpoConfig::default();
        let obs = 32 * 58 + 6;
        let est = MemEstimate::of(&p, &mlp(p.hidden_dims.clone()), obs, 1e7);
        assert!(est.total() < 1e9, "{}", est.describe());
        assert!(est.check("this machine", 8e9).unwrap().is_none());
        // hidden_dims = [65536, 65536]: 4.4e9 params, tens of GiB.
        let big = MemEstimate::of(&p, &mlp(vec![65536, 65536]), obs, 1e7);
        let e = big.check("this machine", 128e9).unwrap_err().to_string();
        assert!(
            e.contains("refused before allocating") && e.contains("weights"),
            "{e}"
        );
        // n_envs × n_steps = 2^16 × 2^20 samples.
        let wide = PpoConfig {
            n_envs: 65536,
            n_steps: 1 << 20,
            ..Default::default()
        };
        let est = MemEstimate::of(&wide, &mlp(vec![64]), obs, 1e7);
        assert!(est.check("this machine", 128e9).is_err());
        // gru_hidden = 65536 (223 GB in the issue), and 8 layers of 4096.
        let mut g = PpoConfig {
            encoder: Encoder::Gru,
            ..Default::default()
        };
        for (hidden, layers) in [(65536, 2), (4096, 8)] {
            g.gru_hidden = hidden;
            g.gru_layers = layers;
            let spec = GruSpec::from_config(&g, (32, 58, 6), 8);
            let est = MemEstimate::of(&g, &NetShape::Gru(spec), obs, 1e7);
            assert!(
                est.check("this machine", 128e9).is_err(),
                "{}",
                est.describe()
            );
        }
        // A large share warns.
        assert!(est_warns(&p, obs));
    }

    fn est_warns(p: &PpoConfig, obs: usize) -> bool {
        let est = MemEstimate::of(p, &mlp(p.hidden_dims.clone()), obs, 1e7);
        est.check("this machine", est.total() * 4.0)
            .unwrap()
            .is_some()
    }
}
