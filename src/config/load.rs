use super::checks::{check, FieldError};
use super::{shape, Config};
use anyhow::{anyhow, bail, Result};
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
            ConfigSource::File(p) => shape::read_capped(p),
        }
    }
}

/// Builds the configuration: built-in defaults, then the mode (a name from [`MODES`] or a path
/// to a TOML file), then the user's file. Each layer is validated alone so errors carry its line.
/// Notes about legacy settings go to the log; [`load_with_notes`] returns them instead.
pub fn load(mode: Option<&str>, user_file: Option<&Path>) -> Result<Config> {
    let (cfg, notes) = load_with_notes(mode, user_file)?;
    for n in notes {
        tracing::warn!("{n}");
    }
    Ok(cfg)
}

/// [`load`], and the notes about legacy settings it read (for the user to see). Every error
/// names the user's file, line and field where the user set it; no value is echoed whole.
pub fn load_with_notes(
    mode: Option<&str>,
    user_file: Option<&Path>,
) -> Result<(Config, Vec<String>)> {
    load_layers(mode, user_file).map_err(|e| anyhow!("{}", shape::clip_lines(&format!("{e:#}"))))
}

/// The mode a `--config` file names (`mode = "production"`): honoured as if given with
/// `--mode`, so the run records the mode it trained with. An unknown name, a path, or a name
/// other than `--mode`'s is an error naming the file and line. `mode = ""` names none.
fn mode_in_file(file: &ConfigSource, text: &str, flag: Option<&str>) -> Result<Option<String>> {
    let Ok(v) = toml::from_str::<toml::Value>(text) else {
        return Ok(None); // the schema pass reports the syntax error with its line
    };
    let Some(m) = v
        .get("mode")
        .and_then(|m| m.as_str())
        .filter(|m| !m.is_empty())
    else {
        return Ok(None);
    };
    let at = format!(
        "{}{}",
        file.label(),
        shape::locate(text, "mode").map_or(String::new(), |l| format!(", line {l}"))
    );
    let names: Vec<_> = MODES.iter().map(|(n, _)| *n).collect();
    let m = crate::jsonl::clip(m, 40);
    if !names.contains(&m.as_str()) {
        bail!(
            "invalid config in {at}: mode = {m:?} is not a training mode: use one of {} (a mode file is given with --mode PATH)",
            names.join(", ")
        );
    }
    if let Some(f) = flag.filter(|f| *f != m) {
        bail!("invalid config in {at}: mode = {m:?}, but --mode {f} was given: choose one");
    }
    Ok(Some(m))
}

fn load_layers(mode: Option<&str>, user_file: Option<&Path>) -> Result<(Config, Vec<String>)> {
    let user = user_file.map(|p| ConfigSource::File(p.to_path_buf()));
    let user_text = user.as_ref().map(ConfigSource::text).transpose()?;
    let file_mode = match (&user, &user_text) {
        (Some(u), Some(t)) => mode_in_file(u, t, mode)?,
        _ => None,
    };
    let mode = mode.map(str::to_string).or(file_mode);
    let mut layers = vec![ConfigSource::Embedded("default", DEFAULT_TOML)];
    if let Some(m) = mode.as_deref() {
        match MODES.iter().find(|(name, _)| *name == m) {
            Some((name, text)) => layers.push(ConfigSource::Embedded(name, text)),
            None if Path::new(m).exists() => layers.push(ConfigSource::File(m.into())),
            None => {
                let names: Vec<_> = MODES.iter().map(|(n, _)| *n).collect();
                bail!(
                    "unknown mode {:?}: choose one of {} or give a path to a TOML file",
                    crate::jsonl::clip(m, 40),
                    names.join(", ")
                );
            }
        }
    }
    let schema = toml::Value::try_from(Config::default())?;
    let mut merged = toml::Value::Table(Default::default());
    let mut texts = Vec::new();
    let mut notes = Vec::new();
    let user_layer = user.map(|u| (u, user_text.unwrap_or_default()));
    let all = layers
        .into_iter()
        .map(|l| {
            let t = l.text()?;
            Ok((l, t))
        })
        .chain(user_layer.map(Ok))
        .collect::<Result<Vec<_>>>()?;
    for (layer, text) in all {
        let label = layer.label();
        // The shape first (tables as tables), then alone against the schema: toml's error shows
        // line, column and field — for syntax errors, unknown keys and out-of-range values alike.
        let mut value: toml::Value =
            toml::from_str(&text).map_err(|e| anyhow!("invalid config in {label}:\n{e}"))?;
        shape::check_tables(&value, &schema, &label, &text)?;
        toml::from_str::<Config>(&text).map_err(|e| anyhow!("invalid config in {label}:\n{e}"))?;
        if let Some(note) = split_legacy_lr(&mut value, &label, &text)? {
            notes.push(note);
        }
        merge_values(&mut merged, value);
        texts.push((label, text));
    }
    let mut cfg: Config = merged
        .try_into()
        .map_err(|e| anyhow!("invalid combined configuration: {e}"))?;
    cfg.mode = mode.unwrap_or_default();
    let errs = check(&cfg);
    if !errs.is_empty() {
        let lines: Vec<String> = errs.iter().map(|e| placed(e, &texts)).collect();
        bail!("invalid configuration:\n  - {}", lines.join("\n  - "));
    }
    Ok((cfg, notes))
}

/// `file, line N: field: message`, at the newest layer that set the field or a field it
/// relates to — the user's file before a built-in default (the other field named if it was that
/// one the user set).
fn placed(e: &FieldError, texts: &[(String, String)]) -> String {
    let fields: Vec<&str> = std::iter::once(e.field)
        .chain(e.related.iter().copied())
        .collect();
    let hit = texts.iter().rev().find_map(|(label, text)| {
        fields
            .iter()
            .find_map(|f| shape::locate(text, f).map(|line| (label, line, *f)))
    });
    match hit {
        Some((label, line, f)) if f == e.field => {
            format!("{label}, line {line}: {}: {}", e.field, e.message)
        }
        Some((label, line, f)) => {
            format!("{label}, line {line} ({f}): {}: {}", e.field, e.message)
        }
        None => format!("{}: {}", e.field, e.message),
    }
}

/// A layer's `ppo.lr` — the single learning rate before the actor/critic split — becomes
/// `actor_lr = lr` and `critic_lr = 3 × lr` (the seed's ratio) within that layer, so that a later
/// layer's rates still win. A layer setting both the old and the new names is refused.
fn split_legacy_lr(value: &mut toml::Value, label: &str, text: &str) -> Result<Option<String>> {
    let Some(ppo) = value.get_mut("ppo").and_then(|v| v.as_table_mut()) else {
        return Ok(None);
    };
    let Some(lr) = ppo.get("lr").and_then(|v| v.as_float()) else {
        return Ok(None);
    };
    let line = shape::locate(text, "ppo.lr").map_or(String::new(), |l| format!(", line {l}"));
    if ppo.contains_key("actor_lr") || ppo.contains_key("critic_lr") {
        bail!(
            "invalid config in {label}{line}: ppo.lr is the single learning rate of older configs and this file also sets ppo.actor_lr / ppo.critic_lr: keep only the new names"
        );
    }
    ppo.remove("lr");
    let critic = (3.0 * lr).min(1.0);
    ppo.insert("actor_lr".into(), toml::Value::Float(lr));
    ppo.insert("critic_lr".into(), toml::Value::Float(critic));
    Ok(Some(format!(
        "{label}{line}: ppo.lr = {lr} read as ppo.actor_lr = {lr}, ppo.critic_lr = {critic} (the single rate was split into an actor and a critic rate; set those to silence this note)"
    )))
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

/// Checks the whole configuration again: the ranges of every field (command-line flags bypass
/// the file parser) and the relations between fields. For configurations changed by flags.
pub fn validate(cfg: &Config) -> Result<()> {
    // Round-trip through the schema: runs every field's range check on the final values.
    let value = toml::Value::try_from(cfg).map_err(|e| anyhow!("invalid configuration: {e}"))?;
    value
        .try_into::<Config>()
        .map_err(|e| anyhow!("invalid configuration (a command-line value?): {e}"))?;
    let errs = check(cfg);
    if errs.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = errs
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    bail!("invalid configuration:\n  - {}", lines.join("\n  - "))
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
    fn relations_between_fields_name_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[data]\ntrain_split = 0.9\nvalidation_split = 0.2\n").unwrap();
        let err = format!("{:#}", load(None, Some(&p)).unwrap_err());
        assert!(
            err.contains("c.toml, line 3: data.validation_split"),
            "{err}"
        );
        std::fs::write(&p, "[ppo]\nn_envs = 2\nn_steps = 4\nminibatch = 64\n").unwrap();
        let err = format!("{:#}", load(None, Some(&p)).unwrap_err());
        assert!(err.contains("c.toml, line 4: ppo.minibatch"), "{err}");
        // A one-bar half-life cannot carry an autocorrelation of 0.9.
        std::fs::write(&p, "[synthetic]\nedge = 0.9\ndrift_halflife = 1.0\n").unwrap();
        let err = format!("{:#}", load(None, Some(&p)).unwrap_err());
        assert!(err.contains("c.toml, line 2: synthetic.edge"), "{err}");
        assert!(err.contains("at most 0.475"), "{err}");
        for (text, needle) in [
            ("[portfolio]\nsymbols = []\n", "at least one symbol"),
            (
                "[portfolio]\nsymbols = [\"SPY\", \"spy\"]\n",
                "listed twice",
            ),
            ("[portfolio]\nsymbols = [\"SPY\", \"CASH\"]\n", "reserved"),
            (
                "[portfolio]\nsymbols = [\"SPY\", \"BTC/USD\"]\n",
                "one session calendar",
            ),
        ] {
            std::fs::write(&p, text).unwrap();
            let err = format!("{:#}", load(None, Some(&p)).unwrap_err());
            assert!(
                err.contains("c.toml, line 2: portfolio.symbols") && err.contains(needle),
                "{text}: {err}"
            );
        }
        std::fs::write(
            &p,
            "[portfolio]\nstart = \"2020-01-01\"\nend = \"2019-01-01\"\n",
        )
        .unwrap();
        let err = format!("{:#}", load(None, Some(&p)).unwrap_err());
        assert!(err.contains("c.toml, line 3: portfolio.end"), "{err}");
    }

    /// Every value the issue found accepted (and producing wrong results) is refused with the
    /// file, the line and the field.
    #[test]
    fn out_of_range_values_name_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.toml");
        for (text, line, needle) in [
            ("[backtest]\ncommission = -1000\n", 2, "commission = -1000"),
            ("[synthetic]\nstart_price = nan\n", 2, "start_price = nan"),
            ("[synthetic]\nannual_vol = -1\n", 2, "annual_vol"),
            ("[synthetic]\n\nannual_vol = inf\n", 3, "annual_vol"),
            ("[synthetic]\ngap_vol = 1e308\n", 2, "gap_vol"),
            ("[synthetic]\ndrift_halflife = 0.5\n", 2, "drift_halflife"),
            (
                "[data]\nrate_limit_per_minute = 0\n",
                2,
                "rate_limit_per_minute",
            ),
            ("[data]\npage_limit = 0\n", 2, "page_limit"),
            ("[env]\ninitial_cash = -5\n", 2, "initial_cash"),
            ("[ppo]\nhidden_dims = []\n", 2, "hidden_dims"),
            ("[ppo]\nencoder = \"lstm\"\n", 2, "encoder"),
            ("[ppo]\ngru_layers = 0\n", 2, "gru_layers"),
            ("[ppo]\ngru_hidden = 0\n", 2, "gru_hidden"),
            ("[ppo]\ngru_dropout = 1.0\n", 2, "gru_dropout"),
            ("[ppo]\ngamma = 2\n", 2, "gamma"),
            ("[ppo]\ntotal_timesteps = 0\n", 2, "total_timesteps"),
            ("[data]\ntrain_split = 1.5\n", 2, "train_split"),
            ("[features]\nwindow = 0\n", 2, "window"),
            ("[ppo]\ndevice = \"gpu\"\n", 2, "device"),
            ("[data]\nfeed = \"free\"\n", 2, "feed"),
            ("[data]\nstart = \"2024-13-01\"\n", 2, "start"),
            (
                "[portfolio]\nfactor_lookback_days = 1\n",
                2,
                "factor_lookback_days",
            ),
            ("[portfolio]\nspread = 0.5\n", 2, "spread"),
            ("[portfolio]\nslippage_max = -0.001\n", 2, "slippage_max"),
            ("[portfolio]\nimpact = 2\n", 2, "impact"),
            ("[portfolio]\nepisode_len = 1\n", 2, "episode_len"),
            ("[synthetic]\nfactor_share = 1\n", 2, "factor_share"),
        ] {
            std::fs::write(&p, text).unwrap();
            let err = format!("{:#}", load(None, Some(&p)).unwrap_err());
            assert!(err.contains("bad.toml"), "{text}: {err}");
            assert!(err.contains(&format!("line {line}")), "{text}: {err}");
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn a_legacy_lr_is_split_and_mixing_it_with_the_new_names_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.toml");
        std::fs::write(&p, "[ppo]\nepochs = 4\nlr = 0.001\n").unwrap();
        let (cfg, notes) = load_with_notes(Some("quick_test"), Some(&p)).unwrap();
        // The user's layer wins over quick_test's rates, split at the seed's 1:3.
        assert_eq!((cfg.ppo.actor_lr, cfg.ppo.critic_lr), (0.001, 0.003));
        assert_eq!(cfg.ppo.lr, None);
        assert!(
            notes.len() == 1
                && notes[0].contains("old.toml, line 3")
                && notes[0].contains("actor_lr"),
            "{notes:?}"
        );
        std::fs::write(&p, "[ppo]\nlr = 0.001\ncritic_lr = 0.002\n").unwrap();
        let err = format!("{:#}", load(None, Some(&p)).unwrap_err());
        assert!(
            err.contains("old.toml, line 2") && err.contains("keep only the new names"),
            "{err}"
        );
        // A model file's recorded config from before the split still reads.
        let mut v = serde_json::to_value(Config::default()).unwrap();
        let ppo = v["ppo"].as_object_mut().unwrap();
        for k in [
            "actor_lr",
            "critic_lr",
            "critic_epochs",
            "keep_every",
            "early_stop",
        ] {
            ppo.remove(k);
        }
        ppo.insert("lr".into(), serde_json::json!(0.0005));
        let old: Config = serde_json::from_value(v).unwrap();
        assert_eq!(old.ppo.lr, Some(0.0005));
        assert_eq!(old.ppo.critic_epochs, 4);
        // …while a configuration built with it set is refused by the checks.
        let mut cfg = Config::default();
        cfg.ppo.lr = Some(1e-3);
        assert!(format!("{:#}", validate(&cfg).unwrap_err()).contains("ppo.lr"));
    }

    #[test]
    fn the_reward_option_names_its_choices() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.toml");
        std::fs::write(&p, "[env]\nreward = \"seed\"\n").unwrap();
        assert_eq!(
            load(None, Some(&p)).unwrap().env.reward,
            super::super::RewardKind::Seed
        );
        std::fs::write(&p, "[env]\n\nreward = \"sharpe\"\n").unwrap();
        let err = format!("{:#}", load(None, Some(&p)).unwrap_err());
        assert!(
            err.contains("line 3") && err.contains("pnl") && err.contains("seed"),
            "{err}"
        );
    }

    #[test]
    fn the_training_costs_option_names_its_choices_and_refuses_costs_it_cannot_pay() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.toml");
        std::fs::write(&p, "[env]\ncosts = \"own\"\n").unwrap();
        assert_eq!(
            load(None, Some(&p)).unwrap().env.costs,
            super::super::EnvCosts::Own
        );
        std::fs::write(&p, "[env]\n\ncosts = \"free\"\n").unwrap();
        let err = format!("{:#}", load(None, Some(&p)).unwrap_err());
        assert!(
            err.contains("line 3") && err.contains("backtest") && err.contains("own"),
            "{err}"
        );
        // $500 on a $1,000 order and 0.1 % slippage: 50.1 % a unit, which training would pay
        // (the backtest's account allows an order that large).
        let costly = "[backtest]\ninitial_cash = 100000.0\nposition_size = 0.01\n\
                      commission = 500.0\nslippage = 0.001\n";
        std::fs::write(&p, costly).unwrap();
        let err = format!("{:#}", load(None, Some(&p)).unwrap_err());
        assert!(
            err.contains("k.toml, line 4: backtest.commission") && err.contains("50.1 % a unit"),
            "{err}"
        );
        std::fs::write(&p, format!("{costly}[env]\ncosts = \"own\"\n")).unwrap();
        assert!(load(None, Some(&p)).is_ok(), "training at its own costs");
    }

    #[test]
    fn command_line_values_are_checked_too() {
        let mut cfg = Config::default();
        cfg.ppo.total_timesteps = 0;
        let err = format!("{:#}", validate(&cfg).unwrap_err());
        assert!(err.contains("out of range"), "{err}");
        let mut cfg = Config::default();
        cfg.backtest.commission = -1000.0;
        assert!(validate(&cfg).is_err());
        assert!(validate(&Config::default()).is_ok());
    }
}
