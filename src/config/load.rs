use super::Config;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

/// Training modes, each an overlay file in `configs/` (embedded so the binary works anywhere).
pub const MODES: &[(&str, &str)] = &[
    ("quick_test", include_str!("../../configs/quick_test.toml")),
    ("standard", include_str!("../../configs/standard.toml")),
    ("production", include_str!("../../configs/production.toml")),
    ("extended", include_str!("../../configs/extended.toml")),
];

const DEFAULT_TOML: &str = include_str!("../../configs/default.toml");

/// Where a layer of configuration came from; used in error messages.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    Embedded(&'static str, &'static str),
    File(PathBuf),
}

impl ConfigSource {
    fn label(&self) -> String {
        match self {
            ConfigSource::Embedded(name, _) => format!("configs/{name}.toml (built in)"),
            ConfigSource::File(p) => p.display().to_string(),
        }
    }

    fn text(&self) -> Result<String> {
        match self {
            ConfigSource::Embedded(_, text) => Ok((*text).to_string()),
            ConfigSource::File(p) => std::fs::read_to_string(p)
                .with_context(|| format!("cannot read config file {}", p.display())),
        }
    }
}

/// Builds the configuration: built-in defaults, then the mode (a name from [`MODES`] or a path
/// to a TOML file), then the user's file. Each layer is validated alone so errors carry its line.
pub fn load(mode: Option<&str>, user_file: Option<&Path>) -> Result<Config> {
    let mut layers = vec![ConfigSource::Embedded("default", DEFAULT_TOML)];
    if let Some(m) = mode {
        match MODES.iter().find(|(name, _)| *name == m) {
            Some((name, text)) => layers.push(ConfigSource::Embedded(name, text)),
            None if Path::new(m).exists() => layers.push(ConfigSource::File(m.into())),
            None => {
                let names: Vec<_> = MODES.iter().map(|(n, _)| *n).collect();
                bail!(
                    "unknown mode {m:?}: choose one of {} or give a path to a TOML file",
                    names.join(", ")
                );
            }
        }
    }
    if let Some(p) = user_file {
        layers.push(ConfigSource::File(p.to_path_buf()));
    }

    let mut merged = toml::Value::Table(Default::default());
    for layer in &layers {
        let text = layer.text()?;
        // Alone against the schema first: toml's error then shows line, column and the field.
        toml::from_str::<Config>(&text)
            .map_err(|e| anyhow!("invalid config in {}:\n{e}", layer.label()))?;
        let value: toml::Value = toml::from_str(&text)
            .map_err(|e| anyhow!("invalid config in {}:\n{e}", layer.label()))?;
        merge_values(&mut merged, value);
    }
    let mut cfg: Config = merged
        .try_into()
        .map_err(|e| anyhow!("invalid combined configuration: {e}"))?;
    if let Some(m) = mode {
        cfg.mode = m.to_string();
    }
    validate(&cfg)?;
    Ok(cfg)
}

/// Deep merge: tables merge key by key, anything else in `over` replaces `base`.
pub fn merge_values(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge_values(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Checks that need more than one field, or ranges serde cannot express.
pub fn validate(cfg: &Config) -> Result<()> {
    let mut errs = Vec::new();
    let d = &cfg.data;
    if !(d.train_split > 0.0
        && d.validation_split > 0.0
        && d.train_split + d.validation_split < 1.0)
    {
        errs.push(
            "data.train_split and data.validation_split must be positive and sum to less than 1"
                .to_string(),
        );
    }
    for (field, s) in [("data.start", &d.start), ("data.end", &d.end)] {
        if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err() {
            errs.push(format!("{field} = {s:?} is not a YYYY-MM-DD date"));
        }
    }
    let p = &cfg.ppo;
    if p.hidden_dims.is_empty() || p.hidden_dims.contains(&0) {
        errs.push("ppo.hidden_dims must list at least one non-zero layer width".into());
    }
    if p.n_envs == 0 || p.n_steps == 0 || p.minibatch == 0 || p.epochs == 0 {
        errs.push("ppo.n_envs, ppo.n_steps, ppo.minibatch and ppo.epochs must be positive".into());
    }
    if p.minibatch > p.n_envs * p.n_steps {
        errs.push(format!(
            "ppo.minibatch ({}) is larger than one rollout (n_envs × n_steps = {})",
            p.minibatch,
            p.n_envs * p.n_steps
        ));
    }
    if p.validation_interval == 0 {
        errs.push("ppo.validation_interval must be at least 1".into());
    }
    if p.lr.is_nan()
        || p.lr <= 0.0
        || !(0.0..=1.0).contains(&p.gamma)
        || !(0.0..=1.0).contains(&p.gae_lambda)
    {
        errs.push(
            "ppo.lr must be positive; ppo.gamma and ppo.gae_lambda must lie in [0, 1]".into(),
        );
    }
    if cfg.features.window < 2 {
        errs.push("features.window must be at least 2 bars".into());
    }
    if cfg.env.episode_len < 2 {
        errs.push("env.episode_len must be at least 2".into());
    }
    if cfg.walk_forward.folds == 0 {
        errs.push("walk_forward.folds must be at least 1".into());
    }
    if cfg.universe.symbols().is_empty() {
        errs.push("universe: list at least one symbol in equities or crypto".into());
    }
    if errs.is_empty() {
        Ok(())
    } else {
        bail!("invalid configuration:\n  - {}", errs.join("\n  - "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_toml_equals_rust_defaults() {
        let from_file: Config = toml::from_str(DEFAULT_TOML).unwrap();
        assert_eq!(
            from_file,
            Config::default(),
            "configs/default.toml drifted from schema.rs"
        );
    }

    #[test]
    fn every_mode_loads() {
        for (name, _) in MODES {
            let cfg = load(Some(name), None).unwrap();
            assert_eq!(cfg.mode, *name);
        }
        let q = load(Some("quick_test"), None).unwrap();
        assert!(q.ppo.total_timesteps < Config::default().ppo.total_timesteps);
    }

    #[test]
    fn malformed_file_names_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, "[ppo]\nepochs = 4\nlr = \"fast\"\n").unwrap();
        let err = format!("{:#}", load(None, Some(&p)).unwrap_err());
        assert!(err.contains("bad.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("lr"), "{err}");

        std::fs::write(&p, "[ppo]\nlearning_rate = 0.1\n").unwrap();
        let err = format!("{:#}", load(None, Some(&p)).unwrap_err());
        assert!(
            err.contains("learning_rate") && err.contains("line 2"),
            "{err}"
        );
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[data]\ntrain_split = 0.9\nvalidation_split = 0.2\n").unwrap();
        let err = format!("{:#}", load(None, Some(&p)).unwrap_err());
        assert!(err.contains("data.train_split"), "{err}");
    }
}
