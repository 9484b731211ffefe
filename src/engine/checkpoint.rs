//! Model files: weights in safetensors, and in its metadata (`quantdeck` key, JSON) everything
//! needed to use the model: the full config, the feature layout, action meanings, sizes and the
//! data range. The weights stay readable from Python's `safetensors`.

use super::{ActorCritic, HostPolicy};
use crate::config::Config;
use crate::features::portfolio::PortfolioSpec;
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
    /// A portfolio model's layout: its universe (in column order), timeframe and observation.
    /// `symbol` then names the portfolio, `feature_spec` is unused (no per-symbol features), and
    /// the range fields are the panel's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portfolio: Option<PortfolioSpec>,
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
        if let Some(p) = &self.portfolio {
            bail!(
                "this is a portfolio model ({} symbols, {}): it takes a universe, not one series",
                p.symbols.len(),
                p.describe()
            );
        }
        data_spec.ensure_same(&self.feature_spec)
    }

    /// The observation layout, for messages.
    pub fn layout_describe(&self) -> String {
        match &self.portfolio {
            Some(p) => p.describe(),
            None => self.feature_spec.describe(),
        }
    }

    /// The observation size the layout implies (the weights must agree with it).
    pub fn layout_obs_dim(&self) -> usize {
        match &self.portfolio {
            Some(p) => p.obs_dim(),
            None => self.feature_spec.obs_dim(),
        }
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
    if meta.obs_dim != meta.layout_obs_dim() {
        bail!(
            "{}: obs_dim {} disagrees with its feature layout ({})",
            path.display(),
            meta.obs_dim,
            meta.layout_describe()
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

/// A model file as host inference: what the evaluators (backtest, walk-forward, paper) load.
pub fn load_policy(path: &Path) -> Result<(HostPolicy, ModelMeta)> {
    let (model, meta) = load_model(path, &Device::Cpu)?;
    Ok((HostPolicy::from_model(&model)?, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::events::EventTable;
    use chrono::TimeZone;

    #[test]
    fn a_portfolio_model_round_trips_and_refuses_a_single_series() {
        let syms: Vec<String> = ["AAA", "BBB", "CCC"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let spec = PortfolioSpec::new(&syms, Timeframe::Day, 8, 20);
        let model = ActorCritic::new(spec.obs_dim(), &[16], 12, 3, &Device::Cpu).unwrap();
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).unwrap();
        let meta = ModelMeta {
            format: FORMAT.into(),
            quantdeck_version: "test".into(),
            symbol: "portfolio".into(),
            class: AssetClass::Equity,
            timeframe: Timeframe::Day,
            source: "synthetic".into(),
            feature_spec: FeatureSpec::current(8, &EventTable::default()),
            action_meanings: vec![],
            obs_dim: spec.obs_dim(),
            hidden_dims: vec![16],
            n_actions: 12,
            param_count: model.param_count(),
            train_first: t,
            train_last: t,
            val_first: None,
            val_last: None,
            data_first: t,
            data_last: t,
            data_sha256: String::new(),
            update: 0,
            timesteps: 0,
            created: t,
            config: Config::default(),
            portfolio: Some(spec.clone()),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        save_model(&path, &model, &meta).unwrap();
        let (back, m) = load_model(&path, &Device::Cpu).unwrap();
        assert_eq!(m.portfolio.as_ref(), Some(&spec));
        assert_eq!(back.obs_dim, spec.obs_dim());
        let e = m
            .check_layout(&FeatureSpec::current(8, &EventTable::default()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("portfolio model (3 symbols"), "{e}");
        // A single-symbol model's metadata has no portfolio key at all (older readers agree).
        let single = ModelMeta {
            portfolio: None,
            obs_dim: meta.feature_spec.obs_dim(),
            ..meta
        };
        let json = serde_json::to_value(&single).unwrap();
        assert!(json.get("portfolio").is_none(), "{json}");
    }
}
