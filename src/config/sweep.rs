//! `[sweep]` and `[slurm]`: a grid of training runs (symbols × seeds × settings × modes) and the
//! scheduler settings a Slurm sweep is submitted with. Every value is checked while the file is
//! parsed, so a bad one fails with the file, the line and the field like any other setting; the
//! `[sweep.set]` keys are checked against the configuration when the sweep is planned
//! (`jobs::sweep::grid`), which names the file and line too.

use serde::de::{Deserialize, Deserializer, Error};
use serde::{Deserialize as De, Serialize};
use std::collections::BTreeMap;

/// One stage of a sweep task's pipeline, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, De)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Train,
    Gate,
    WalkForward,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Train, Stage::Gate, Stage::WalkForward];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Train => "train",
            Stage::Gate => "gate",
            Stage::WalkForward => "walk-forward",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// Where a sweep's tasks run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, De)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Worker processes on this machine.
    #[default]
    Local,
    /// One Slurm job array (`sbatch --array`).
    Slurm,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Slurm => "slurm",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, De)]
#[serde(default, deny_unknown_fields)]
pub struct SweepConfig {
    /// Symbols to train; empty = the universe (`[universe]`).
    pub symbols: Vec<String>,
    /// Seeds per setting: ppo.seed, ppo.seed + 1, … (one seed group per symbol × setting).
    #[serde(deserialize_with = "seeds")]
    pub seeds: usize,
    /// Training modes to cross with the rest (quick_test, standard, … or TOML paths); empty =
    /// the mode in force.
    pub modes: Vec<String>,
    /// Which stages each task runs, in order: train, then optionally gate, then walk-forward.
    #[serde(deserialize_with = "stages")]
    pub stages: Vec<Stage>,
    pub backend: BackendKind,
    /// Local backend: worker processes (0 = one per core, or per GPU when training on CUDA).
    #[serde(deserialize_with = "workers")]
    pub workers: usize,
    /// Settings to cross: a dotted key and its values, e.g. `"ppo.actor_lr" = [1e-4, 3e-4]`.
    #[serde(deserialize_with = "set_table")]
    pub set: BTreeMap<String, Vec<toml::Value>>,
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            symbols: Vec::new(),
            seeds: 1,
            modes: Vec::new(),
            stages: Stage::ALL.to_vec(),
            backend: BackendKind::Local,
            workers: 0,
            set: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, De)]
#[serde(default, deny_unknown_fields)]
pub struct SlurmConfig {
    /// `--partition` ("" = the cluster's default).
    #[serde(deserialize_with = "slurm_name")]
    pub partition: String,
    /// `--account` ("" = none).
    #[serde(deserialize_with = "slurm_name")]
    pub account: String,
    /// `--time`, per task: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS ("" = the
    /// partition's limit).
    #[serde(deserialize_with = "time_limit")]
    pub time: String,
    /// `--mem` per task: a number of megabytes, or with a K/M/G/T suffix ("" = the default).
    #[serde(deserialize_with = "memory")]
    pub mem: String,
    /// `--cpus-per-task`.
    #[serde(deserialize_with = "cpus")]
    pub cpus_per_task: u32,
    /// `--gres`, e.g. `gpu:1` or `gpu:a100:1` ("" = none).
    #[serde(deserialize_with = "gres")]
    pub gres: String,
    /// Tasks running at once (the `%W` of `--array`; 0 = as many as the cluster gives).
    #[serde(deserialize_with = "max_parallel")]
    pub max_parallel: u32,
    /// Seconds before the time limit at which Slurm warns a task (`--signal=B:USR1@N`): it saves
    /// its training state and stops, so `sweep resume` continues it (0 = no warning).
    #[serde(deserialize_with = "grace")]
    pub signal_grace_s: u32,
    /// Extra `#SBATCH` lines, written as given (each must start with `#SBATCH `).
    #[serde(deserialize_with = "sbatch_lines")]
    pub extra: Vec<String>,
    /// Shell lines run before the task (e.g. `module load cuda`).
    #[serde(deserialize_with = "shell_lines")]
    pub setup: Vec<String>,
    /// The quantdeck binary as the compute nodes see it ("" = this executable's path, which must
    /// then be on the shared disk).
    pub binary: String,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            partition: String::new(),
            account: String::new(),
            time: String::new(),
            mem: String::new(),
            cpus_per_task: 2,
            gres: String::new(),
            max_parallel: 0,
            signal_grace_s: 120,
            extra: Vec::new(),
            setup: Vec::new(),
            binary: String::new(),
        }
    }
}

fn bounded<'de, D: Deserializer<'de>, T>(d: D, lo: T, hi: T, what: &str) -> Result<T, D::Error>
where
    T: Deserialize<'de> + PartialOrd + std::fmt::Display,
{
    let v = T::deserialize(d)?;
    if v < lo || v > hi {
        return Err(D::Error::custom(format!(
            "{v} is out of range: it must be {what}"
        )));
    }
    Ok(v)
}

fn seeds<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    bounded(d, 1, 1000, "between 1 and 1000 seeds")
}

fn workers<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    bounded(d, 0, 256, "between 0 (automatic) and 256")
}

fn cpus<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    bounded(d, 1, 4096, "between 1 and 4096")
}

fn max_parallel<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    bounded(d, 0, 1_000_000, "between 0 (no limit) and 1000000")
}

fn grace<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    bounded(d, 0, 65_535, "between 0 (none) and 65535 seconds")
}

fn stages<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Stage>, D::Error> {
    let v = Vec::<Stage>::deserialize(d)?;
    check_stages(&v).map_err(D::Error::custom)?;
    Ok(v)
}

/// Stages must start with train, keep the pipeline's order and appear once each.
pub fn check_stages(v: &[Stage]) -> Result<(), String> {
    if v.first() != Some(&Stage::Train) {
        return Err(format!(
            "{v:?}: the stages start with \"train\" (then \"gate\", then \"walk-forward\")"
        ));
    }
    if v.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "{v:?}: list each stage once, in the pipeline's order: train, gate, walk-forward"
        ));
    }
    Ok(())
}

fn set_table<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Vec<toml::Value>>, D::Error> {
    let m = BTreeMap::<String, Vec<toml::Value>>::deserialize(d)?;
    for (k, v) in &m {
        if v.is_empty() {
            return Err(D::Error::custom(format!(
                "sweep.set.\"{k}\" is empty: give at least one value"
            )));
        }
        if k.split('.').any(|p| p.is_empty()) {
            return Err(D::Error::custom(format!(
                "sweep.set.\"{k}\" is not a dotted setting name such as \"ppo.actor_lr\""
            )));
        }
    }
    Ok(m)
}

fn slurm_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.,".contains(c));
    if !ok {
        return Err(D::Error::custom(format!(
            "{s:?} is not a Slurm name: letters, digits, '_', '-', '.', ','"
        )));
    }
    Ok(s)
}

fn gres<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.,:".contains(c));
    if !ok {
        return Err(D::Error::custom(format!(
            "{s:?} is not a --gres value such as \"gpu:1\" or \"gpu:a100:2\""
        )));
    }
    Ok(s)
}

fn time_limit<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if !s.is_empty() && parse_time_limit(&s).is_none() {
        return Err(D::Error::custom(format!(
            "{s:?} is not a Slurm time limit: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"
        )));
    }
    Ok(s)
}

/// A Slurm `--time` value in seconds (`None` when it is not one; `UNLIMITED` is not taken).
pub fn parse_time_limit(s: &str) -> Option<u64> {
    let num = |p: &str| -> Option<u64> {
        (!p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(num(d)?), r),
        None => (None, s),
    };
    let parts: Vec<u64> = rest.split(':').map(num).collect::<Option<_>>()?;
    let secs = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (None, [h, m, s]) => h * 3600 + m * 60 + s,
        (Some(d), [h]) => d * 86_400 + h * 3600,
        (Some(d), [h, m]) => d * 86_400 + h * 3600 + m * 60,
        (Some(d), [h, m, s]) => d * 86_400 + h * 3600 + m * 60 + s,
        _ => return None,
    };
    (secs > 0).then_some(secs)
}

fn memory<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let digits = s.trim_end_matches(['K', 'M', 'G', 'T']);
    let suffixes = s.len() - digits.len();
    let ok = s.is_empty()
        || (suffixes <= 1 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    if !ok {
        return Err(D::Error::custom(format!(
            "{s:?} is not a --mem value: megabytes, or a number with K, M, G or T (\"8G\")"
        )));
    }
    Ok(s)
}

fn sbatch_lines<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    for l in &v {
        if !l.starts_with("#SBATCH ") || l.contains(['\n', '\r']) {
            return Err(D::Error::custom(format!(
                "{l:?}: each extra line is one line starting with \"#SBATCH \""
            )));
        }
    }
    Ok(v)
}

fn shell_lines<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    if let Some(l) = v.iter().find(|l| l.contains(['\n', '\r'])) {
        return Err(D::Error::custom(format!(
            "{l:?}: give one shell line per entry"
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_time_limits_read_as_slurm_does() {
        assert_eq!(parse_time_limit("30"), Some(1800));
        assert_eq!(parse_time_limit("05:30"), Some(330));
        assert_eq!(parse_time_limit("2:00:00"), Some(7200));
        assert_eq!(parse_time_limit("1-0"), Some(86_400));
        assert_eq!(parse_time_limit("1-02:30"), Some(86_400 + 9000));
        assert_eq!(parse_time_limit("1-00:00:10"), Some(86_410));
        for bad in [
            "",
            "0",
            "x",
            "1:2:3:4",
            "-1",
            "1-",
            "1-2:3:4:5",
            "UNLIMITED",
            "1.5",
        ] {
            assert_eq!(parse_time_limit(bad), None, "{bad}");
        }
    }

    #[test]
    fn stages_keep_the_pipeline_order() {
        use Stage::*;
        assert!(check_stages(&[Train]).is_ok());
        assert!(check_stages(&[Train, WalkForward]).is_ok());
        assert!(check_stages(&[Train, Gate, WalkForward]).is_ok());
        assert!(check_stages(&[]).is_err());
        assert!(check_stages(&[Gate]).is_err());
        assert!(check_stages(&[Train, Train]).is_err());
        assert!(check_stages(&[Train, WalkForward, Gate]).is_err());
    }

    #[test]
    fn bad_values_fail_while_parsing() {
        let parse = |t: &str| toml::from_str::<SlurmConfig>(t).map_err(|e| e.to_string());
        assert!(parse("time = \"2:00:00\"\nmem = \"8G\"\ngres = \"gpu:a100:1\"").is_ok());
        for (bad, says) in [
            ("time = \"two hours\"", "time limit"),
            ("mem = \"8GB\"", "--mem"),
            ("partition = \"gpu; rm\"", "Slurm name"),
            ("extra = [\"--exclusive\"]", "#SBATCH"),
            ("cpus_per_task = 0", "out of range"),
            ("setup = [\"a\\nb\"]", "one shell line"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let s = toml::from_str::<SweepConfig>("seeds = 0")
            .unwrap_err()
            .to_string();
        assert!(s.contains("out of range"), "{s}");
        let s = toml::from_str::<SweepConfig>("stages = [\"gate\"]")
            .unwrap_err()
            .to_string();
        assert!(s.contains("start with"), "{s}");
        let s = toml::from_str::<SweepConfig>("[set]\n\"ppo.actor_lr\" = []")
            .unwrap_err()
            .to_string();
        assert!(s.contains("at least one value"), "{s}");
    }
}
