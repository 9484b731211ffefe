//! The grid: modes × symbols × settings × seeds expanded into tasks, `--set key=v1,v2` parsed, and
//! a task's configuration built from its mode's configuration and its overrides. All pure.

use super::record::{Grid, TaskSpec};
use crate::config::{self, Config};
use anyhow::{anyhow, bail, Result};

/// Keys a sweep may not set per task: the sweep's own sections, and the seed (`--seeds`).
const RESERVED: [&str; 4] = ["sweep", "slurm", "mode", "ppo.seed"];

/// Every combination, in a fixed order: mode, then symbol, then settings (the first key varies
/// slowest), then seed — so the seeds of one setting are adjacent and share a group number.
pub fn expand(grid: &Grid) -> Vec<TaskSpec> {
    let combos = settings_product(&grid.set);
    let mut out = Vec::new();
    let mut group = 0;
    for mode in &grid.modes {
        for symbol in &grid.symbols {
            for combo in &combos {
                for &seed in &grid.seeds {
                    out.push(TaskSpec {
                        index: out.len(),
                        symbol: symbol.clone(),
                        seed,
                        mode: mode.clone(),
                        overrides: combo.clone(),
                        group,
                    });
                }
                group += 1;
            }
        }
    }
    out
}

/// The cartesian product of the settings' values (one empty combination when there are none).
fn settings_product(set: &[(String, Vec<toml::Value>)]) -> Vec<Vec<(String, toml::Value)>> {
    let mut combos: Vec<Vec<(String, toml::Value)>> = vec![Vec::new()];
    for (key, values) in set {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    combos
}

/// The number of tasks a grid expands to (without expanding it).
pub fn task_count(grid: &Grid) -> usize {
    grid.modes.len()
        * grid.symbols.len()
        * grid.seeds.len()
        * grid.set.iter().map(|(_, v)| v.len()).product::<usize>()
}

/// `ppo.actor_lr=1e-4,3e-4` → the key and its values. Values are TOML (`1e-4`, `true`,
/// `"seed"`, `[64, 32]`); a bare word is a string. Commas inside brackets or quotes do not split.
pub fn parse_set(arg: &str) -> Result<(String, Vec<toml::Value>)> {
    let (key, rest) = arg.split_once('=').ok_or_else(|| {
        anyhow!("--set {arg:?}: write KEY=VALUE[,VALUE…], e.g. ppo.actor_lr=1e-4,3e-4")
    })?;
    let key = key.trim();
    check_key(key).map_err(|e| anyhow!("--set {arg:?}: {e}"))?;
    let values: Vec<toml::Value> = split_values(rest)
        .into_iter()
        .map(|raw| parse_value(&raw))
        .collect::<Result<_>>()
        .map_err(|e| anyhow!("--set {arg:?}: {e}"))?;
    if values.is_empty() {
        bail!("--set {arg:?}: give at least one value after '='");
    }
    Ok((key.to_string(), values))
}

/// A dotted setting name that a sweep may vary.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.split('.').any(|p| p.trim().is_empty()) {
        bail!("{key:?} is not a dotted setting name such as ppo.actor_lr");
    }
    if let Some(r) = RESERVED
        .iter()
        .find(|r| key == **r || key.starts_with(&format!("{r}.")))
    {
        bail!(
            "{key} cannot vary per task ({})",
            if *r == "ppo.seed" {
                "use --seeds N: seeds ppo.seed … ppo.seed + N − 1"
            } else {
                "it belongs to the sweep itself"
            }
        );
    }
    Ok(())
}

/// Splits on commas outside brackets, braces and quotes; empty pieces are dropped.
pub fn split_values(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut cur) = (0i32, None::<char>, String::new());
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth <= 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_value(raw: &str) -> Result<toml::Value> {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .ok_or_else(|| anyhow!("{raw:?} is not a value")),
        Err(_)
            if raw
                .chars()
                .all(|c| c.is_alphanumeric() || "_-/.:".contains(c)) =>
        {
            Ok(toml::Value::String(raw.to_string()))
        }
        Err(e) => Err(anyhow!("{raw:?} is not a TOML value: {}", e.message())),
    }
}

/// The flags' settings over the file's: a key given in both takes the flag's values.
pub fn merge_sets(
    file: &std::collections::BTreeMap<String, Vec<toml::Value>>,
    flags: Vec<(String, Vec<toml::Value>)>,
) -> Result<Vec<(String, Vec<toml::Value>)>> {
    let mut out: Vec<(String, Vec<toml::Value>)> = Vec::new();
    for (k, v) in file {
        check_key(k).map_err(|e| anyhow!("sweep.set: {e}"))?;
        out.push((k.clone(), v.clone()));
    }
    for (k, v) in flags {
        match out.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    Ok(out)
}

/// `base` with each dotted key set to its value, validated as a whole. An unknown key or a value
/// out of range is an error naming the key and the value.
pub fn apply_overrides(base: &Config, overrides: &[(String, toml::Value)]) -> Result<Config> {
    let mut v = toml::Value::try_from(base).map_err(|e| anyhow!("configuration: {e}"))?;
    for (key, value) in overrides {
        // Alone first, so that an error names the key that caused it.
        let mut alone = v.clone();
        set_path(&mut alone, key, value.clone())?;
        alone
            .try_into::<Config>()
            .map_err(|e| anyhow!("{key} = {value}: {}", e.to_string().trim()))?;
        set_path(&mut v, key, value.clone())?;
    }
    let cfg: Config = v
        .try_into()
        .map_err(|e| anyhow!("{}", e.to_string().trim()))?;
    config::validate(&cfg).map_err(|e| anyhow!("{} gives {e:#}", line(overrides)))?;
    Ok(cfg)
}

fn line(overrides: &[(String, toml::Value)]) -> String {
    overrides
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn set_path(root: &mut toml::Value, key: &str, value: toml::Value) -> Result<()> {
    let parts: Vec<&str> = key.split('.').collect();
    let (last, tables) = parts
        .split_last()
        .ok_or_else(|| anyhow!("empty setting name"))?;
    let mut cur = root;
    let mut walked = Vec::new();
    for p in tables {
        walked.push(*p);
        let t = cur
            .as_table_mut()
            .ok_or_else(|| anyhow!("{} is a value, not a section", walked.join(".")))?;
        cur = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    let t = cur
        .as_table_mut()
        .ok_or_else(|| anyhow!("{} is a value, not a section", tables.join(".")))?;
    t.insert(last.to_string(), value);
    Ok(())
}

/// The configuration task `spec` runs with: its mode's configuration (as planned), its overrides,
/// its seed, and no sweep sections of its own.
pub fn task_config(mode_config: &serde_json::Value, spec: &TaskSpec) -> Result<Config> {
    let base: Config = serde_json::from_value(mode_config.clone())
        .map_err(|e| anyhow!("the sweep's configuration for mode {}: {e}", spec.mode))?;
    let mut cfg = apply_overrides(&base, &spec.overrides)?;
    cfg.ppo.seed = spec.seed;
    cfg.sweep = Default::default();
    cfg.slurm = Default::default();
    config::validate(&cfg)?;
    Ok(cfg)
}

/// Where `key` is set in a config file's text (`"ppo.actor_lr" = […]` under `[sweep.set]`), as
/// `FILE, line N`, for errors about the file's settings.
pub fn locate_set_key(file: &std::path::Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let quoted = [format!("\"{key}\""), format!("'{key}'")];
    let n = text.lines().position(|l| {
        quoted
            .iter()
            .any(|q| l.trim_start().starts_with(q.as_str()))
    })?;
    Some(format!("{}, line {}", file.display(), n + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use std::collections::BTreeSet;

    fn grid(rng: &mut Rng) -> Grid {
        let n = |rng: &mut Rng, max: usize| 1 + rng.below(max);
        let symbols = (0..n(rng, 4)).map(|i| format!("S{i}")).collect();
        let seeds = (0..n(rng, 4) as u64).map(|s| 10 + s).collect();
        let modes = (0..n(rng, 2)).map(|i| format!("m{i}")).collect();
        let set = (0..rng.below(4))
            .map(|k| {
                let vals = (0..n(rng, 3) as i64).map(toml::Value::Integer).collect();
                (format!("sec.k{k}"), vals)
            })
            .collect();
        Grid {
            symbols,
            seeds,
            modes,
            set,
        }
    }

    #[test]
    fn expansion_is_the_full_product_once_each_with_seeds_grouped() {
        let mut rng = Rng::new(7);
        for _ in 0..200 {
            let g = grid(&mut rng);
            let tasks = expand(&g);
            assert_eq!(tasks.len(), task_count(&g));
            // Indices are positions; every combination appears exactly once.
            let keys: BTreeSet<String> = tasks
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    assert_eq!(t.index, i);
                    format!("{}|{}|{}|{}", t.mode, t.symbol, t.overrides_line(), t.seed)
                })
                .collect();
            assert_eq!(keys.len(), tasks.len());
            // Tasks of one group differ only in their seed, and each group holds every seed.
            let groups: BTreeSet<usize> = tasks.iter().map(|t| t.group).collect();
            assert_eq!(groups.len() * g.seeds.len(), tasks.len());
            for gid in groups {
                let members: Vec<&TaskSpec> = tasks.iter().filter(|t| t.group == gid).collect();
                let seeds: Vec<u64> = members.iter().map(|t| t.seed).collect();
                assert_eq!(seeds, g.seeds);
                assert!(members.iter().all(|t| t.symbol == members[0].symbol
                    && t.mode == members[0].mode
                    && t.overrides == members[0].overrides));
            }
            // Every task sets every key once, in the grid's key order.
            for t in &tasks {
                let ks: Vec<&String> = t.overrides.iter().map(|(k, _)| k).collect();
                let want: Vec<&String> = g.set.iter().map(|(k, _)| k).collect();
                assert_eq!(ks, want);
            }
        }
    }

    #[test]
    fn set_arguments_parse_as_toml_values() {
        let (k, v) = parse_set("ppo.actor_lr=1e-4,3e-4").unwrap();
        assert_eq!(k, "ppo.actor_lr");
        assert_eq!(v, [toml::Value::Float(1e-4), toml::Value::Float(3e-4)]);
        let (_, v) = parse_set("ppo.hidden_dims=[64, 32],[128,64]").unwrap();
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|x| x.is_array()));
        let (_, v) = parse_set("env.reward=pnl,\"seed\"").unwrap();
        assert_eq!(v, [toml::Value::from("pnl"), toml::Value::from("seed")]);
        let (_, v) = parse_set("ppo.early_stop=true").unwrap();
        assert_eq!(v, [toml::Value::Boolean(true)]);
        for bad in [
            "ppo.actor_lr",
            "=1",
            "ppo..x=1",
            "ppo.seed=1,2",
            "slurm.time=5",
            "a.b=",
        ] {
            assert!(parse_set(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn splitting_keeps_brackets_and_quotes_whole() {
        let mut rng = Rng::new(3);
        let atoms = [
            "1",
            "2.5",
            "\"a,b\"",
            "[1, 2]",
            "{ x = 1, y = 2 }",
            "'q,r'",
            "word",
        ];
        for _ in 0..300 {
            let n = 1 + rng.below(5);
            let pieces: Vec<&str> = (0..n).map(|_| atoms[rng.below(atoms.len())]).collect();
            assert_eq!(split_values(&pieces.join(",")), pieces);
        }
    }

    #[test]
    fn overrides_apply_and_errors_name_the_key() {
        let base = Config::default();
        let c = apply_overrides(
            &base,
            &[
                ("ppo.actor_lr".into(), toml::Value::Float(1e-4)),
                ("walk_forward.folds".into(), toml::Value::Integer(3)),
            ],
        )
        .unwrap();
        assert_eq!(c.ppo.actor_lr, 1e-4);
        assert_eq!(c.walk_forward.folds, 3);
        let e = format!(
            "{:#}",
            apply_overrides(&base, &[("ppo.gamma".into(), toml::Value::Float(2.0))]).unwrap_err()
        );
        assert!(e.contains("ppo.gamma") && e.contains("out of range"), "{e}");
        let e = format!(
            "{:#}",
            apply_overrides(&base, &[("ppo.actor_lrr".into(), toml::Value::Float(0.1))])
                .unwrap_err()
        );
        assert!(
            e.contains("ppo.actor_lrr") && e.contains("unknown field"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            apply_overrides(&base, &[("ppo.gamma.x".into(), toml::Value::Float(0.1))]).unwrap_err()
        );
        assert!(e.contains("not a section"), "{e}");
    }

    #[test]
    fn a_task_config_takes_its_seed_and_drops_the_sweep_sections() {
        let mut base = Config::default();
        base.sweep.seeds = 3;
        let spec = TaskSpec {
            index: 0,
            symbol: "SYNA".into(),
            seed: 42,
            mode: "default".into(),
            overrides: vec![("ppo.epochs".into(), toml::Value::Integer(2))],
            group: 0,
        };
        let c = task_config(&serde_json::to_value(&base).unwrap(), &spec).unwrap();
        assert_eq!((c.ppo.seed, c.ppo.epochs), (42, 2));
        assert_eq!(c.sweep, Default::default());
    }
}
