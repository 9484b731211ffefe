//! Model files: weights in safetensors, and in its metadata (`quantdeck` key, JSON) everything
//! needed to use the model: the full config, the feature layout, action meanings, sizes and the
//! data range. The weights stay readable from Python's `safetensors`.

use super::ActorCritic;
use crate::config::Config;
use crate::features::FeatureSpec;
use crate::market::{AssetClass, Timeframe};
use crate::paths::write_atomic;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::Device;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

pub const FORMAT: &str = "quantdeck-model-v1";
const META_KEY: &str = "quantdeck";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    pub format: String,
    pub quantdeck_version: String,
    pub symbol: String,
    pub class: AssetClass,
    pub timeframe: Timeframe,
    pub source: String,
    pub feature_spec: FeatureSpec,
    pub action_meanings: Vec<String>,
    pub obs_dim: usize,
    pub hidden_dims: Vec<usize>,
    pub n_actions: usize,
    pub param_count: usize,
    /// The bars the model trained on, and the whole series it came from.
    pub train_first: DateTime<Utc>,
    pub train_last: DateTime<Utc>,
    /// The validation bars that chose checkpoints (absent in models made before it was
    /// recorded: then everything up to `data_last` counts as seen).
    #[serde(default)]
    pub val_first: Option<DateTime<Utc>>,
    #[serde(default)]
    pub val_last: Option<DateTime<Utc>>,
    pub data_first: DateTime<Utc>,
    pub data_last: DateTime<Utc>,
    pub data_sha256: String,
    pub update: usize,
    pub timesteps: u64,
    pub created: DateTime<Utc>,
    pub config: Config,
}

impl ModelMeta {
    /// The last bar whose outcome influenced the model (training or checkpoint choice):
    /// evaluation must use bars strictly after it.
    pub fn seen_until(&self) -> DateTime<Utc> {
        self.val_last.unwrap_or(self.data_last)
    }

    /// The bars the model saw, for messages: `2024-01-02 → 2024-11-12`.
    pub fn seen_range(&self) -> String {
        format!(
            "{} → {}",
            self.train_first.format("%Y-%m-%d %H:%M"),
            self.seen_until().format("%Y-%m-%d %H:%M")
        )
    }

    /// Refuses data whose feature layout differs from the model's.
    pub fn check_layout(&self, data_spec: &FeatureSpec) -> Result<()> {
        data_spec.ensure_same(&self.feature_spec)
    }
}

pub fn save_model(path: &Path, model: &ActorCritic, meta: &ModelMeta) -> Result<()> {
    let mut md = HashMap::new();
    md.insert(META_KEY.to_string(), serde_json::to_string(meta)?);
    let tensors = model.named_tensors();
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(md))
        .map_err(|e| anyhow!("cannot serialise model: {e}"))?;
    write_atomic(path, &bytes)
}

/// Reads only the metadata of a model file.
pub fn read_meta(path: &Path) -> Result<ModelMeta> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
    meta_from_bytes(path, &bytes)
}

fn meta_from_bytes(path: &Path, bytes: &[u8]) -> Result<ModelMeta> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow!("{} is not a safetensors model file: {e}", path.display()))?;
    let text = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| {
            anyhow!(
                "{} has no quantdeck metadata: not a quantdeck model",
                path.display()
            )
        })?;
    let meta: ModelMeta = serde_json::from_str(text)
        .with_context(|| format!("{}: unreadable quantdeck metadata", path.display()))?;
    if meta.format != FORMAT {
        bail!(
            "{}: model format {} is not supported (expected {FORMAT})",
            path.display(),
            meta.format
        );
    }
    Ok(meta)
}

/// Loads weights and metadata; every tensor's shape is checked against the metadata.
pub fn load_model(path: &Path, device: &Device) -> Result<(ActorCritic, ModelMeta)> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
    let meta = meta_from_bytes(path, &bytes)?;
    if meta.obs_dim != meta.feature_spec.obs_dim() {
        bail!(
            "{}: obs_dim {} disagrees with its feature layout ({})",
            path.display(),
            meta.obs_dim,
            meta.feature_spec.describe()
        );
    }
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .with_context(|| format!("cannot load weights from {}", path.display()))?;
    // A diverged run (or a damaged file) can hold NaN or infinite weights: such a model would
    // act on garbage, so it is refused here rather than traded.
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        let values = tensors[name]
            .flatten_all()
            .and_then(|t| t.to_dtype(candle_core::DType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .with_context(|| format!("cannot read tensor {name} of {}", path.display()))?;
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            bail!(
                "{}: tensor {name} holds a non-finite weight ({bad}): the run diverged or the file is damaged; retrain or use an earlier checkpoint",
                path.display()
            );
        }
    }
    let model = ActorCritic::from_tensors(
        meta.obs_dim,
        &meta.hidden_dims,
        meta.n_actions,
        &tensors,
        device,
    )
    .with_context(|| {
        format!(
            "{}: weights do not match the layout in its metadata",
            path.display()
        )
    })?;
    Ok((model, meta))
}
