//! How long a training run will take on this machine, from the speed of the training runs it
//! already finished. Each training manifest records its configuration and, once stopped, its
//! env-steps per second (`summary.sps`: steps over wall time, validations and checkpoints
//! included). A run of the same setup on the same host is a measurement; a run of another size is
//! scaled by the work per env-step; with no run at all the figure is a labelled rough one.
//! Pure: the caller reads the manifests.

use super::{JobKind, JobSummary, Manifest, PORTFOLIO_LABEL};
use crate::config::{Config, Encoder, FeaturesConfig, PpoConfig};
use crate::engine::gru::GruSpec;
use crate::features::{ACCOUNT_FEATURES, N_FEATURES};
use crate::sim::N_ACTIONS;
use chrono::{DateTime, Utc};

/// The network a single-symbol training run trains.
#[derive(Debug, Clone, PartialEq)]
pub enum Net {
    Mlp { obs: usize, hidden: Vec<usize> },
    Gru(GruSpec),
}

impl Net {
    /// Multiply-adds of one forward pass for one observation. The GRU runs its encoder and
    /// recurrence once per step of the sequence, its heads once.
    pub fn macs(&self) -> f64 {
        match self {
            Net::Mlp { obs, hidden } => {
                let mut dims = vec![*obs];
                dims.extend(hidden);
                let last = *dims.last().unwrap_or(obs);
                let trunk: usize = dims.windows(2).map(|w| (w[0] + 1) * w[1]).sum();
                (trunk + (last + 1) * (N_ACTIONS + 1)) as f64
            }
            Net::Gru(spec) => spec
                .tensors()
                .iter()
                .map(|(name, shape)| {
                    let n = shape.iter().product::<usize>() as f64;
                    let heads = name.starts_with("actor") || name.starts_with("critic");
                    if heads {
                        n
                    } else {
                        n * spec.seq_len as f64
                    }
                })
                .sum(),
        }
    }

    /// `MLP 256-128-64` or `GRU 256×2`.
    pub fn describe(&self) -> String {
        match self {
            Net::Mlp { hidden, .. } => {
                let h: Vec<String> = hidden.iter().map(usize::to_string).collect();
                format!("MLP {}", h.join("-"))
            }
            Net::Gru(s) => format!("GRU {}×{}", s.hidden, s.layers),
        }
    }
}

/// What decides the speed of a run: the network, the epochs per update, the batch sizes and the
/// device setting.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainShape {
    pub net: Net,
    pub epochs: usize,
    pub critic_epochs: usize,
    pub n_envs: usize,
    pub n_steps: usize,
    pub minibatch: usize,
    pub device: String,
}

impl TrainShape {
    pub fn of(cfg: &Config) -> TrainShape {
        TrainShape::from_parts(&cfg.ppo, &cfg.features)
    }

    fn from_parts(p: &PpoConfig, f: &FeaturesConfig) -> TrainShape {
        let tail = ACCOUNT_FEATURES.len();
        let net = match p.encoder {
            Encoder::Mlp => Net::Mlp {
                obs: f.window * N_FEATURES + tail,
                hidden: p.hidden_dims.clone(),
            },
            Encoder::Gru => Net::Gru(GruSpec::from_config(
                p,
                (f.window, N_FEATURES, tail),
                N_ACTIONS,
            )),
        };
        TrainShape {
            net,
            epochs: p.epochs,
            critic_epochs: p.critic_epochs,
            n_envs: p.n_envs,
            n_steps: p.n_steps,
            minibatch: p.minibatch,
            device: p.device.clone(),
        }
    }

    /// The shape a manifest's configuration describes; None when its sections do not parse
    /// (a manifest of another version).
    pub fn from_manifest_config(config: &serde_json::Value) -> Option<TrainShape> {
        let ppo: PpoConfig = serde_json::from_value(config.get("ppo")?.clone()).ok()?;
        let features: FeaturesConfig =
            serde_json::from_value(config.get("features")?.clone()).ok()?;
        Some(TrainShape::from_parts(&ppo, &features))
    }

    /// Relative cost of one env-step: the rollout's forward pass, a forward and a backward
    /// (≈ 2 forwards) per PPO epoch, and the trunk forward the critic-only epochs fit on.
    /// Checked on this 2-core machine: quick_test's shape ran 8,135 env-steps/s and the default
    /// shape 1,406; the work ratio, 5.69, predicts 1,429.
    pub fn work(&self) -> f64 {
        let critic = if self.critic_epochs > 0 { 1.0 } else { 0.0 };
        self.net.macs() * (1.0 + 3.0 * self.epochs as f64 + critic)
    }

    fn same_encoder(&self, other: &TrainShape) -> bool {
        matches!(
            (&self.net, &other.net),
            (Net::Mlp { .. }, Net::Mlp { .. }) | (Net::Gru(_), Net::Gru(_))
        )
    }
}

/// One finished (or cancelled) single-symbol training run's speed.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeedSample {
    pub run_id: String,
    pub host: String,
    pub created: DateTime<Utc>,
    pub shape: TrainShape,
    /// Env-steps per second over the run's wall time.
    pub sps: f64,
    /// Env-steps the figure was measured over.
    pub timesteps: u64,
}

impl SpeedSample {
    /// From a training manifest with a summary. Portfolio runs are left out: their environment
    /// and observation are another workload.
    pub fn from_manifest(m: &Manifest) -> Option<SpeedSample> {
        let JobSummary::Train {
            symbol,
            timesteps,
            sps,
            ..
        } = &m.summary
        else {
            return None;
        };
        let usable = m.kind == JobKind::Train
            && symbol != PORTFOLIO_LABEL
            && sps.is_finite()
            && *sps > 0.0
            && *timesteps > 0;
        if !usable {
            return None;
        }
        Some(SpeedSample {
            run_id: m.id.clone(),
            host: m.host.clone(),
            created: m.created,
            shape: TrainShape::from_manifest_config(&m.config)?,
            sps: *sps,
            timesteps: *timesteps,
        })
    }
}

/// Where an estimate's speed comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Basis {
    /// A run of the same shape on this machine.
    Measured { run: String },
    /// A run of another shape on this machine, scaled: the target does `factor` × its work per
    /// env-step.
    Scaled { run: String, factor: f64 },
    /// No usable run here: a reference speed of a 2-core CPU, scaled.
    Rough,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Env-steps per second.
    pub sps: f64,
    pub basis: Basis,
}

impl Estimate {
    /// Wall-clock seconds for `steps` env-steps.
    pub fn seconds(&self, steps: u64) -> f64 {
        steps as f64 / self.sps.max(1e-9)
    }
}

/// quick_test's MLP, at its earlier 4 epochs, ran 245,760 env-steps at 8,135 env-steps/s on the
/// 2-core development VM (dev build, 2026-12-07): the fallback's reference.
const MLP_REF_SPS: f64 = 8_000.0;
/// A 2-layer GRU of hidden 64 (portfolio observation of 32 steps × 75 + 15, quick_test's 64 × 128
/// steps) ran 1,230 env-steps/s there with the hand-written BPTT (dev build, 2 threads,
/// `cargo bench --profile dev --bench training -- --portfolio --encoder gru --gru-hidden 64
/// quick_test`, 2026-12-07); through candle's autograd it had been 92.
const GRU_REF_SPS: f64 = 1_200.0;

fn mlp_reference() -> TrainShape {
    TrainShape {
        net: Net::Mlp {
            obs: 32 * N_FEATURES + ACCOUNT_FEATURES.len(),
            hidden: vec![128, 64],
        },
        ..reference_sizes()
    }
}

fn gru_reference() -> TrainShape {
    TrainShape {
        net: Net::Gru(GruSpec {
            seq_len: 32,
            step_dim: 75,
            tail_dim: 15,
            hidden: 64,
            layers: 2,
            head_hidden: 128,
            n_actions: 12,
        }),
        ..reference_sizes()
    }
}

fn reference_sizes() -> TrainShape {
    TrainShape {
        net: Net::Mlp {
            obs: 0,
            hidden: Vec::new(),
        },
        epochs: 4,
        critic_epochs: 4,
        n_envs: 64,
        n_steps: 128,
        minibatch: 1024,
        device: "auto".into(),
    }
}

/// The speed `target` will train at on `host`, from the runs in `samples`: the run of the same
/// shape there with the most steps (the steadiest figure); else the run of the same encoder
/// whose work per step is closest, scaled by the work ratio (scaling up overestimates the time a
/// little, since per-step overhead does not grow with the network); else a rough reference.
/// Runs of another host or device setting are never used.
pub fn estimate(target: &TrainShape, samples: &[SpeedSample], host: &str) -> Estimate {
    let here: Vec<&SpeedSample> = samples
        .iter()
        .filter(|s| s.host == host && s.shape.device == target.device)
        .collect();
    let steadiest = |a: &&SpeedSample, b: &&SpeedSample| {
        (a.timesteps, a.created).cmp(&(b.timesteps, b.created))
    };
    if let Some(s) = here
        .iter()
        .copied()
        .filter(|s| s.shape == *target)
        .max_by(steadiest)
    {
        return Estimate {
            sps: s.sps,
            basis: Basis::Measured {
                run: s.run_id.clone(),
            },
        };
    }
    let work = target.work().max(1.0);
    let distance = |s: &SpeedSample| (s.shape.work().max(1.0) / work).ln().abs();
    let nearest = here
        .iter()
        .copied()
        .filter(|s| s.shape.same_encoder(target))
        .min_by(|a, b| {
            distance(a)
                .total_cmp(&distance(b))
                .then_with(|| steadiest(b, a))
        });
    if let Some(s) = nearest {
        let factor = work / s.shape.work().max(1.0);
        return Estimate {
            sps: s.sps / factor,
            basis: Basis::Scaled {
                run: s.run_id.clone(),
                factor,
            },
        };
    }
    let (reference, sps) = match target.net {
        Net::Mlp { .. } => (mlp_reference(), MLP_REF_SPS),
        Net::Gru(_) => (gru_reference(), GRU_REF_SPS),
    };
    Estimate {
        sps: sps * reference.work() / work,
        basis: Basis::Rough,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, MODES};

    fn mode(name: &str) -> TrainShape {
        TrainShape::of(&load(Some(name), None).unwrap())
    }

    /// A mode at the 32-bar window every reference speed and ratio here was measured with.
    fn mode_32(name: &str) -> TrainShape {
        let mut cfg = load(Some(name), None).unwrap();
        cfg.features.window = 32;
        TrainShape::of(&cfg)
    }

    fn sample(id: &str, host: &str, shape: TrainShape, sps: f64, steps: u64) -> SpeedSample {
        SpeedSample {
            run_id: id.into(),
            host: host.into(),
            created: DateTime::<Utc>::UNIX_EPOCH,
            shape,
            sps,
            timesteps: steps,
        }
    }

    /// quick_test's shape as the reference speeds were measured: 4 PPO epochs (it trains 8 now)
    /// and a 32-bar window (2 now).
    fn quick_at_4_epochs() -> TrainShape {
        let mut q = mode_32("quick_test");
        q.epochs = 4;
        q
    }

    #[test]
    fn mlp_work_counts_every_layer_and_both_heads() {
        let net = Net::Mlp {
            obs: 10,
            hidden: vec![4, 2],
        };
        // 10→4, 4→2, 2→8 actions, 2→1 value, each with biases.
        assert_eq!(net.macs(), (44 + 10 + 24 + 3) as f64);
        assert_eq!(net.describe(), "MLP 4-2");
        let q = quick_at_4_epochs();
        assert_eq!(q.net.describe(), "MLP 128-64");
        // The measured ratio of the default shape to quick_test's on this machine was 5.8.
        let ratio = mode_32("standard").work() / q.work();
        assert!((5.5..6.5).contains(&ratio), "{ratio}");
        // The window is most of the first layer's work: 2 bars do a sixth of 32 bars' in standard.
        let narrow = mode("standard").work() / mode_32("standard").work();
        assert!((0.1..0.25).contains(&narrow), "{narrow}");
    }

    #[test]
    fn gru_work_repeats_the_recurrence_per_step() {
        let mut cfg = load(None, None).unwrap();
        cfg.ppo.encoder = Encoder::Gru;
        cfg.features.window = 32;
        let gru = TrainShape::of(&cfg);
        let Net::Gru(spec) = &gru.net else {
            panic!("{:?}", gru.net)
        };
        assert!(gru.net.macs() > 20.0 * spec.param_count() as f64);
        assert_eq!(gru.net.describe(), "GRU 256×2");
    }

    #[test]
    fn a_run_of_the_same_shape_here_is_a_measurement() {
        let q = mode("quick_test");
        let samples = [
            sample("short", "vm", q.clone(), 7_000.0, 24_576),
            sample("long", "vm", q.clone(), 8_000.0, 245_760),
            sample("elsewhere", "gpu-box", q.clone(), 90_000.0, 9_000_000),
        ];
        let e = estimate(&q, &samples, "vm");
        assert_eq!(
            e,
            Estimate {
                sps: 8_000.0,
                basis: Basis::Measured { run: "long".into() }
            }
        );
        assert_eq!(e.seconds(245_760), 30.72);
    }

    #[test]
    fn another_shape_is_scaled_by_the_work_per_step_from_the_nearest_run() {
        let (q, s, p) = (quick_at_4_epochs(), mode_32("standard"), mode("production"));
        let samples = [
            sample("quick", "vm", q.clone(), 8_000.0, 245_760),
            sample("std", "vm", s.clone(), 1_400.0, 24_576),
        ];
        let e = estimate(&p, &samples, "vm");
        let Basis::Scaled { run, factor } = &e.basis else {
            panic!("{e:?}")
        };
        assert_eq!(run, "std", "the nearest in work");
        assert!((factor - p.work() / s.work()).abs() < 1e-9);
        assert!((e.sps - 1_400.0 / factor).abs() < 1e-9);
        // Twelve epochs instead of four: same network, still scaled (≈ 2.8× the work).
        let mut q12 = q.clone();
        q12.epochs = 12;
        let e = estimate(&q12, &samples[..1], "vm");
        assert!(matches!(e.basis, Basis::Scaled { .. }), "{e:?}");
        assert!((2.7..2.9).contains(&(8_000.0 / e.sps)), "{e:?}");
    }

    #[test]
    fn without_a_run_here_the_estimate_is_rough_and_labelled_so() {
        let q = quick_at_4_epochs();
        let other_host = [sample("x", "gpu-box", q.clone(), 90_000.0, 1)];
        let e = estimate(&q, &other_host, "vm");
        assert_eq!(e.basis, Basis::Rough);
        assert!((e.sps - MLP_REF_SPS).abs() < 1e-6, "the reference itself");
        let std = estimate(&mode_32("standard"), &[], "vm");
        assert_eq!(std.basis, Basis::Rough);
        // 50M steps: hours on a 2-core CPU, not minutes.
        let hours = std.seconds(50_000_000) / 3600.0;
        assert!((5.0..20.0).contains(&hours), "{hours}");
        // An explicit device setting is another machine as far as speed goes.
        let mut cuda = q.clone();
        cuda.device = "cuda".into();
        let e = estimate(&cuda, &[sample("cpu", "vm", q, 8_000.0, 1)], "vm");
        assert_eq!(e.basis, Basis::Rough);
    }

    #[test]
    fn a_gru_is_never_scaled_from_an_mlp_run() {
        let mut cfg = load(Some("quick_test"), None).unwrap();
        cfg.features.window = 32;
        let mlp = TrainShape::of(&cfg);
        cfg.ppo.encoder = Encoder::Gru;
        let gru = TrainShape::of(&cfg);
        let e = estimate(&gru, &[sample("mlp", "vm", mlp, 8_000.0, 1)], "vm");
        assert_eq!(e.basis, Basis::Rough);
        assert!(e.sps < 100.0, "{e:?}");
    }

    #[test]
    fn samples_come_from_single_symbol_training_manifests() {
        let cfg = load(Some("quick_test"), None).unwrap();
        let summary = |symbol: &str, sps: f64| JobSummary::Train {
            symbol: symbol.into(),
            updates: 30,
            timesteps: 245_760,
            sps,
            elapsed_s: 30.0,
            best_update: None,
            last_validation: None,
            cancelled: false,
        };
        let manifest = |summary| Manifest {
            id: "train-1-syna".into(),
            kind: JobKind::Train,
            label: "SYNA".into(),
            status: super::super::JobStatus::Completed,
            created: DateTime::<Utc>::UNIX_EPOCH,
            finished: None,
            quantdeck_version: String::new(),
            host: "vm".into(),
            pid: 1,
            heartbeat: None,
            parent: None,
            config: serde_json::to_value(&cfg).unwrap(),
            data: Vec::new(),
            artifacts: Vec::new(),
            summary,
            message: String::new(),
            group: None,
        };
        let s = SpeedSample::from_manifest(&manifest(summary("SYNA", 8_135.0))).unwrap();
        assert_eq!(
            (s.shape, s.sps, s.host.as_str()),
            (mode("quick_test"), 8_135.0, "vm")
        );
        for unusable in [
            summary(PORTFOLIO_LABEL, 2_000.0),
            summary("SYNA", 0.0),
            summary("SYNA", f64::NAN),
            JobSummary::None,
        ] {
            assert_eq!(SpeedSample::from_manifest(&manifest(unusable)), None);
        }
        let mut broken = manifest(summary("SYNA", 1.0));
        broken.config = serde_json::json!({"ppo": "?"});
        assert_eq!(SpeedSample::from_manifest(&broken), None);
        assert!(MODES.iter().all(|(m, _)| mode(m).work() > 0.0));
    }
}
