//! Model files: weights in safetensors, and in its metadata (`quantdeck` key, JSON) everything
//! needed to use the model: the full config, the feature layout, action meanings, sizes and the
//! data range. The weights stay readable from Python's `safetensors`.

use super::gru::{GruNet, GruSpec};
use super::host_gru::HostGru;
use super::{ActorCritic, HostPolicy};
use crate::config::Config;
use crate::features::portfolio::PortfolioSpec;
use crate::features::FeatureSpec;
use crate::market::{AssetClass, Timeframe};
use crate::paths::write_atomic;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{Device, Tensor};
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
    /// The GRU encoder's network, for a GRU model; absent for the MLP actor-critic of
    /// `hidden_dims` (every model made before GRU files existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gru: Option<GruSpec>,
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

    /// The network kind: `mlp` or `gru`.
    pub fn encoder(&self) -> &'static str {
        if self.gru.is_some() {
            "gru"
        } else {
            "mlp"
        }
    }

    /// The network, for messages: `mlp [256, 128, 64] → 8` or the GRU's layout.
    pub fn network_describe(&self) -> String {
        match &self.gru {
            Some(g) => g.describe(),
            None => format!("mlp {:?} → {}", self.hidden_dims, self.n_actions),
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
    let views: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    write_atomic(path, &super::digest::serialize(&views, md)?)
}

/// Writes a GRU model: the network's named tensors (PyTorch names and layout) and `meta`, whose
/// `gru` must be the network's.
pub fn save_gru_model(path: &Path, net: &GruNet, theta: &Tensor, meta: &ModelMeta) -> Result<()> {
    if meta.gru.as_ref() != Some(&net.spec) || meta.obs_dim != net.spec.obs_dim() {
        bail!(
            "model metadata ({}, obs {}) does not describe the GRU being saved ({}): a bug",
            meta.network_describe(),
            meta.obs_dim,
            net.spec.describe()
        );
    }
    let mut md = HashMap::new();
    md.insert(META_KEY.to_string(), serde_json::to_string(meta)?);
    let tensors = net.named_tensors(theta)?;
    let views: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    write_atomic(path, &super::digest::serialize(&views, md)?)
}

/// Reads only the metadata of a model file (its digest unchecked: for names and ranges; every
/// loader of weights checks it).
pub fn read_meta(path: &Path) -> Result<ModelMeta> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
    meta_from_bytes(path, &bytes)
}

/// [`read_meta`] of a file whose content digest matches (for listings that must not present a
/// damaged file as a model).
pub fn read_meta_verified(path: &Path) -> Result<ModelMeta> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
    super::digest::verify(path, &bytes)?;
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

/// Metadata and tensors of a model file, with the checks every loader shares: the layout's
/// observation size, and finite weights.
fn read_checked(path: &Path, device: &Device) -> Result<(ModelMeta, HashMap<String, Tensor>)> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
    super::digest::verify(path, &bytes)?;
    let meta = meta_from_bytes(path, &bytes)?;
    if meta.obs_dim != meta.layout_obs_dim() {
        bail!(
            "{}: obs_dim {} disagrees with its feature layout ({})",
            path.display(),
            meta.obs_dim,
            meta.layout_describe()
        );
    }
    if let Some(g) = &meta.gru {
        if g.obs_dim() != meta.obs_dim || g.n_actions != meta.n_actions {
            bail!(
                "{}: its GRU network ({}) does not fit its layout (obs {}, {} actions)",
                path.display(),
                g.describe(),
                meta.obs_dim,
                meta.n_actions
            );
        }
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
    Ok((meta, tensors))
}

/// Loads an MLP model's weights and metadata; every tensor's shape is checked against the
/// metadata. A GRU model is refused (its evaluators take [`load_policy`]).
pub fn load_model(path: &Path, device: &Device) -> Result<(ActorCritic, ModelMeta)> {
    let (meta, tensors) = read_checked(path, device)?;
    if let Some(g) = &meta.gru {
        bail!(
            "{} holds a GRU network ({}), not the MLP actor-critic this loader takes",
            path.display(),
            g.describe()
        );
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
            "{}: weights do not match the layout in its metadata ({})",
            path.display(),
            meta.network_describe()
        )
    })?;
    Ok((model, meta))
}

/// A model file as host inference, MLP or GRU: what the evaluators (backtest, walk-forward,
/// paper, validation) load.
pub fn load_policy(path: &Path) -> Result<(HostPolicy, ModelMeta)> {
    let Some(spec) = read_meta(path)?.gru else {
        let (model, meta) = load_model(path, &Device::Cpu)?;
        return Ok((HostPolicy::from_model(&model)?, meta));
    };
    let (meta, tensors) = read_checked(path, &Device::Cpu)?;
    let net = GruNet::new(spec.clone());
    let theta = net.theta_from(&tensors, &Device::Cpu).with_context(|| {
        format!(
            "{}: weights do not match the GRU in its metadata",
            path.display()
        )
    })?;
    let host = HostGru::new(spec, net.host_tensors(&theta)?)?;
    Ok((HostPolicy::Gru(Box::new(host)), meta))
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
            gru: None,
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

    #[test]
    fn a_gru_model_round_trips_to_the_same_host_outputs_and_mismatches_are_refused() {
        let syms: Vec<String> = ["AAA", "BBB"].iter().map(|s| s.to_string()).collect();
        let pspec = PortfolioSpec::new(&syms, Timeframe::Day, 4, 20);
        let gspec = GruSpec {
            seq_len: pspec.seq_len(),
            step_dim: pspec.step_dim(),
            tail_dim: pspec.tail_dim(),
            hidden: 8,
            layers: 2,
            head_hidden: 6,
            n_actions: 12,
        };
        let net = GruNet::new(gspec.clone());
        let theta = net.init_theta(7, &Device::Cpu).unwrap();
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
            obs_dim: pspec.obs_dim(),
            hidden_dims: vec![],
            n_actions: 12,
            param_count: gspec.param_count(),
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
            portfolio: Some(pspec.clone()),
            gru: Some(gspec.clone()),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.safetensors");
        save_gru_model(&path, &net, &theta, &meta).unwrap();
        let (policy, back) = load_policy(&path).unwrap();
        assert_eq!(back.encoder(), "gru");
        assert_eq!(back.gru.as_ref(), Some(&gspec));
        let direct = HostPolicy::Gru(Box::new(
            HostGru::new(gspec.clone(), net.host_tensors(&theta).unwrap()).unwrap(),
        ));
        let mut rng = crate::rng::Rng::new(3);
        for _ in 0..3 {
            let obs: Vec<f32> = (0..pspec.obs_dim()).map(|_| rng.normal() as f32).collect();
            assert_eq!(policy.evaluate(&obs), direct.evaluate(&obs));
        }
        // The MLP loader refuses it, naming the GRU.
        let e = format!("{:#}", load_model(&path, &Device::Cpu).err().unwrap());
        assert!(
            e.contains("holds a GRU network (gru: 4×") && e.contains("MLP"),
            "{e}"
        );
        // Metadata claiming another GRU than the weights: refused naming the metadata's.
        let wider = GruSpec {
            hidden: 16,
            ..gspec.clone()
        };
        let bad = ModelMeta {
            gru: Some(wider.clone()),
            ..meta.clone()
        };
        let e = format!(
            "{:#}",
            save_gru_model(&path, &net, &theta, &bad).unwrap_err()
        );
        assert!(e.contains("hidden 16") && e.contains("hidden 8"), "{e}");
        let mut md = HashMap::new();
        md.insert(META_KEY.to_string(), serde_json::to_string(&bad).unwrap());
        let tensors = net.named_tensors(&theta).unwrap();
        let bytes =
            safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(md)).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let e = format!("{:#}", load_policy(&path).err().unwrap());
        assert!(
            e.contains("do not match the GRU") && e.contains("hidden 16"),
            "{e}"
        );
        // And an MLP metadata over GRU weights: refused naming the MLP layout.
        let mlp = ModelMeta {
            gru: None,
            hidden_dims: vec![8],
            ..meta
        };
        let mut md = HashMap::new();
        md.insert(META_KEY.to_string(), serde_json::to_string(&mlp).unwrap());
        let bytes =
            safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(md)).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let e = format!("{:#}", load_policy(&path).err().unwrap());
        assert!(e.contains("mlp [8] → 12"), "{e}");
    }
}
