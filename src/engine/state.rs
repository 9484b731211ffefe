//! Training state for resume: everything besides the weights' meaning that an exact continuation
//! needs — the optimizers' moments and step counts, the update counter (which is the schedules'
//! position), the random streams, the env's accounts and clocks, the best validation so far and
//! the early-stop retries — in a safetensors file of its own under `state/`, beside the model files.
//!
//! Why a separate file: model files stay exactly what the gate, walk-forward, paper trading and
//! Python read today (no extra tensors for every loader to read, check and hold), and a model
//! file copied elsewhere does not carry three times its size in optimizer moments. Deleting the
//! state files loses only the ability to resume.

use super::adam::{ActorCriticAdam, FlatAdam};
use super::env::EnvState;
use super::gru::GruSpec;
use crate::config::{Config, Encoder, PpoConfig};
use crate::features::portfolio::PortfolioSpec;
use crate::features::FeatureSpec;
use crate::paths::write_atomic;
use crate::rng::Rng;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{Device, Tensor};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const STATE_FORMAT: &str = "quantdeck-train-state-v1";
const META_KEY: &str = "quantdeck_train_state";
/// The run directory's folder of state files, one per periodic checkpoint and one at the end.
pub const STATE_DIR: &str = "state";

/// `state/update_00010.safetensors`.
pub fn state_path(out_dir: &Path, update: usize) -> PathBuf {
    out_dir
        .join(STATE_DIR)
        .join(format!("update_{update:05}.safetensors"))
}

/// The update a state or checkpoint file name stands for (`update_00010.safetensors` → 10).
pub fn update_of(path: &Path) -> Option<usize> {
    path.file_name()?
        .to_str()?
        .strip_prefix("update_")?
        .strip_suffix(".safetensors")?
        .parse()
        .ok()
}

/// What a network is, as far as its weights and optimizer state are concerned. A checkpoint
/// continues only into the same layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetLayout {
    /// The network kind: `mlp` (the hand-written actor-critic) or `gru`.
    pub encoder: String,
    pub feature_spec: FeatureSpec,
    pub obs_dim: usize,
    pub hidden_dims: Vec<usize>,
    pub n_actions: usize,
    /// A portfolio network's observation layout (then `feature_spec` is unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portfolio: Option<PortfolioSpec>,
    /// A GRU network's shape (`encoder` is then `gru`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gru: Option<GruSpec>,
}

impl NetLayout {
    pub fn mlp(spec: &FeatureSpec, hidden_dims: &[usize], n_actions: usize) -> Self {
        NetLayout {
            encoder: "mlp".into(),
            feature_spec: spec.clone(),
            obs_dim: spec.obs_dim(),
            hidden_dims: hidden_dims.to_vec(),
            n_actions,
            portfolio: None,
            gru: None,
        }
    }

    /// The layout with `ppo.encoder`'s network: a GRU (with `shape` = the observation's
    /// sequence length, step width and tail width) replaces the MLP's hidden sizes.
    pub fn for_encoder(mut self, p: &PpoConfig, shape: (usize, usize, usize)) -> Self {
        if p.encoder == Encoder::Gru {
            self.encoder = "gru".into();
            self.hidden_dims = Vec::new();
            self.gru = Some(GruSpec::from_config(p, shape, self.n_actions));
        }
        self
    }

    pub fn describe(&self) -> String {
        format!(
            "{} {}, {} actions, obs {}",
            self.encoder,
            match &self.gru {
                Some(g) => g.describe(),
                None => format!("{:?}", self.hidden_dims),
            },
            self.n_actions,
            match &self.portfolio {
                Some(p) => p.describe(),
                None => self.feature_spec.describe(),
            }
        )
    }

    /// Refuses to continue `saved` into `self`, naming both layouts.
    pub fn ensure_continues(&self, saved: &NetLayout) -> Result<()> {
        let spec_same = match (&self.portfolio, &saved.portfolio) {
            (None, None) => self.feature_spec.ensure_same(&saved.feature_spec).is_ok(),
            (Some(a), Some(b)) => a == b,
            _ => false,
        };
        if spec_same
            && self.encoder == saved.encoder
            && self.gru == saved.gru
            && self.obs_dim == saved.obs_dim
            && self.hidden_dims == saved.hidden_dims
            && self.n_actions == saved.n_actions
        {
            return Ok(());
        }
        bail!(
            "the checkpoint's network does not match: checkpoint {} — this configuration {}",
            saved.describe(),
            self.describe()
        )
    }
}

/// The host-side position of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Updates done (the schedules' position).
    pub update: usize,
    pub timesteps: u64,
    pub elapsed_s: f64,
    /// The best validation so far: (score, update).
    pub best: Option<(f64, usize)>,
    /// Drawdown early stop: retries used and the factors they left on lr and entropy.
    pub retries_used: usize,
    pub lr_scale: f64,
    pub ent_scale: f64,
}

impl Progress {
    pub fn start() -> Self {
        Progress {
            update: 0,
            timesteps: 0,
            elapsed_s: 0.0,
            best: None,
            retries_used: 0,
            lr_scale: 1.0,
            ent_scale: 1.0,
        }
    }
}

/// A run between two updates. Cheap to take in memory: tensors are shared, not copied.
#[derive(Clone)]
pub struct Snapshot {
    pub progress: Progress,
    pub actor: Tensor,
    pub critic: Tensor,
    pub opt: ActorCriticAdam,
    pub rng: Rng,
    pub env: EnvState,
}

/// The state file's metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateMeta {
    pub format: String,
    pub quantdeck_version: String,
    pub created: DateTime<Utc>,
    pub layout: NetLayout,
    /// Updates of the whole run (the schedules' horizon).
    pub updates: usize,
    pub progress: Progress,
    /// Adam step counts by parameter group.
    pub adam_steps: Vec<(String, i32)>,
    pub rng: Rng,
    pub env_clock: Vec<u32>,
    pub env_steps: Vec<usize>,
    pub env_rng: Rng,
    /// The env's second random stream (the portfolio env's slippage draws).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_aux_rng: Option<Rng>,
    pub env_episodes: u64,
    pub symbol: String,
    pub data_sha256: String,
    /// The run's configuration: a resumed run continues with it.
    pub config: Config,
}

/// What identifies the run a state belongs to.
pub struct StateContext<'a> {
    pub layout: &'a NetLayout,
    pub updates: usize,
    pub symbol: &'a str,
    pub data_sha256: &'a str,
    pub config: &'a Config,
}

pub fn save_state(path: &Path, s: &Snapshot, ctx: &StateContext) -> Result<()> {
    let meta = StateMeta {
        format: STATE_FORMAT.into(),
        quantdeck_version: env!("CARGO_PKG_VERSION").into(),
        created: Utc::now(),
        layout: ctx.layout.clone(),
        updates: ctx.updates,
        progress: s.progress.clone(),
        adam_steps: vec![
            ("actor".into(), s.opt.actor.t),
            ("critic".into(), s.opt.critic.t),
        ],
        rng: s.rng.clone(),
        env_clock: s.env.t.clone(),
        env_steps: s.env.steps.clone(),
        env_rng: s.env.rng.clone(),
        env_aux_rng: s.env.aux_rng.clone(),
        env_episodes: s.env.episodes,
        symbol: ctx.symbol.into(),
        data_sha256: ctx.data_sha256.into(),
        config: ctx.config.clone(),
    };
    let mut tensors: Vec<(String, Tensor)> = vec![
        ("actor.params".into(), s.actor.clone()),
        ("critic.params".into(), s.critic.clone()),
        ("actor.adam.m".into(), s.opt.actor.m.clone()),
        ("actor.adam.v".into(), s.opt.actor.v.clone()),
        ("critic.adam.m".into(), s.opt.critic.m.clone()),
        ("critic.adam.v".into(), s.opt.critic.v.clone()),
    ];
    tensors.extend(
        s.env
            .tensors
            .iter()
            .map(|(n, t)| (format!("env.{n}"), t.clone())),
    );
    let mut md = HashMap::new();
    md.insert(META_KEY.to_string(), serde_json::to_string(&meta)?);
    let views: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let bytes = super::digest::serialize(&views, md)
        .map_err(|e| anyhow!("cannot serialise the training state: {e:#}"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_atomic(path, &bytes)
}

/// Checks a state file's content digest without loading it (a resume checks before it touches
/// the run); the error names the file.
pub fn verify_file(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read training state {}", path.display()))?;
    super::digest::verify(path, &bytes).map(|_| ())
}

/// Reads only the metadata (the header) of a state file.
pub fn read_state_meta(path: &Path) -> Result<StateMeta> {
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("cannot read training state {}", path.display()))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .with_context(|| format!("{} is not a training state file", path.display()))?;
    let n = u64::from_le_bytes(len);
    if n > 100_000_000 {
        bail!("{} is not a training state file", path.display());
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .with_context(|| format!("{} is truncated", path.display()))?;
    let head: HashMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .with_context(|| format!("{} is not a training state file", path.display()))?;
    meta_from_header(path, &head)
}

fn meta_from_header(path: &Path, head: &HashMap<String, serde_json::Value>) -> Result<StateMeta> {
    let text = head
        .get("__metadata__")
        .and_then(|m| m.get(META_KEY))
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            anyhow!(
                "{} holds no training state (a model file? resume takes the run, or a file under its state/ folder)",
                path.display()
            )
        })?;
    let meta: StateMeta = serde_json::from_str(text)
        .with_context(|| format!("{}: unreadable training state", path.display()))?;
    if meta.format != STATE_FORMAT {
        bail!(
            "{}: training state format {} is not supported (expected {STATE_FORMAT})",
            path.display(),
            meta.format
        );
    }
    Ok(meta)
}

/// Loads a state file onto `device`; `template` gives the parameter layout (its buffers'
/// sizes are checked against the file's).
pub fn load_state(
    path: &Path,
    template: (&Tensor, &Tensor),
    device: &Device,
) -> Result<(StateMeta, Snapshot)> {
    let meta = read_state_meta(path)?;
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read training state {}", path.display()))?;
    super::digest::verify(path, &bytes)?;
    let mut tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .with_context(|| format!("cannot load the training state in {}", path.display()))?;
    let mut take = |name: &str, like: &Tensor| -> Result<Tensor> {
        let t = tensors
            .remove(name)
            .ok_or_else(|| anyhow!("{}: the training state lacks {name}", path.display()))?;
        if t.dims() != like.dims() || t.dtype() != like.dtype() {
            bail!(
                "{}: {name} has shape {:?} ({:?}), the network needs {:?} ({:?})",
                path.display(),
                t.dims(),
                t.dtype(),
                like.dims(),
                like.dtype()
            );
        }
        Ok(t)
    };
    let actor = take("actor.params", template.0)?;
    let critic = take("critic.params", template.1)?;
    let steps = |name: &str| -> Result<i32> {
        meta.adam_steps
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| anyhow!("{}: no step count for the {name} optimizer", path.display()))
    };
    let adam = |m: Tensor, v: Tensor, t: i32| -> Result<FlatAdam> {
        let mut a = FlatAdam::new(&m)?;
        a.m = m;
        a.v = v;
        a.t = t;
        Ok(a)
    };
    let opt = ActorCriticAdam {
        actor: adam(
            take("actor.adam.m", template.0)?,
            take("actor.adam.v", template.0)?,
            steps("actor")?,
        )?,
        critic: adam(
            take("critic.adam.m", template.1)?,
            take("critic.adam.v", template.1)?,
            steps("critic")?,
        )?,
    };
    let mut env_tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .filter_map(|(n, t)| n.strip_prefix("env.").map(|n| (n.to_string(), t)))
        .collect();
    env_tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let snap = Snapshot {
        progress: meta.progress.clone(),
        actor,
        critic,
        opt,
        rng: meta.rng.clone(),
        env: EnvState {
            t: meta.env_clock.clone(),
            steps: meta.env_steps.clone(),
            rng: meta.env_rng.clone(),
            aux_rng: meta.env_aux_rng.clone(),
            episodes: meta.env_episodes,
            tensors: env_tensors,
        },
    };
    Ok((meta, snap))
}

/// The newest state file of a run directory (highest update), if any.
pub fn newest_state(run_dir: &Path) -> Option<(usize, PathBuf)> {
    std::fs::read_dir(run_dir.join(STATE_DIR))
        .ok()?
        .flatten()
        .filter_map(|e| Some((update_of(&e.path())?, e.path())))
        .max_by_key(|(u, _)| *u)
}
