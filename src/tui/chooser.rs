//! The training-mode chooser `t` opens: the built-in modes (and the configuration the TUI was
//! started with, when it is none of them), each with its size and an estimate of its wall time on
//! this machine from the training runs already finished here.

use crate::config::{self, Config};
use crate::jobs::estimate::{estimate, Estimate, SpeedSample, TrainShape};
use crate::jobs::RunSummary;
use std::collections::BTreeMap;
use std::path::Path;

/// The row for the configuration the TUI started with, when no built-in mode gives it.
pub const AS_CONFIGURED: &str = "as configured";

/// One mode the chooser offers.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeOption {
    pub name: String,
    /// Env-steps the run will take: whole updates, as the trainer rounds.
    pub timesteps: u64,
    pub shape: TrainShape,
}

impl ModeOption {
    pub fn new(name: &str, cfg: &Config) -> ModeOption {
        let p = &cfg.ppo;
        ModeOption {
            name: name.to_string(),
            timesteps: p.updates() as u64 * p.steps_per_update(),
            shape: TrainShape::of(cfg),
        }
    }
}

/// One row of the open chooser: the mode and its estimate, taken when the chooser opened.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceRow {
    pub mode: ModeOption,
    pub estimate: Estimate,
}

/// The chooser on screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Chooser {
    pub symbol: String,
    pub rows: Vec<ChoiceRow>,
    pub selected: usize,
    /// The user's `--config` file applies over every mode (said in the overlay).
    pub user_file: bool,
}

/// What the chooser needs to open: the modes, this machine's name and the speeds of the runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainModes {
    pub options: Vec<ModeOption>,
    /// The row selected when the chooser opens.
    pub preselect: usize,
    pub user_file: bool,
    /// This machine's name: only runs made here say how fast it trains.
    pub host: String,
    /// Training runs' speeds by run id.
    pub speeds: BTreeMap<String, SpeedSample>,
    pub open: Option<Chooser>,
}

impl TrainModes {
    /// Takes the speed of every stopped training run not seen yet (manifests only change to add
    /// a summary, so each is read once).
    pub fn note_runs(&mut self, runs: &[RunSummary]) {
        for r in runs {
            if self.speeds.contains_key(&r.manifest.id) {
                continue;
            }
            if let Some(s) = SpeedSample::from_manifest(&r.manifest) {
                self.speeds.insert(s.run_id.clone(), s);
            }
        }
    }

    /// Opens the chooser for `symbol`, estimating every mode from the runs known now. False when
    /// there is no mode to offer.
    pub fn open_for(&mut self, symbol: &str) -> bool {
        if self.options.is_empty() {
            return false;
        }
        let samples: Vec<SpeedSample> = self.speeds.values().cloned().collect();
        let rows = self
            .options
            .iter()
            .map(|m| ChoiceRow {
                mode: m.clone(),
                estimate: estimate(&m.shape, &samples, &self.host),
            })
            .collect();
        self.open = Some(Chooser {
            symbol: symbol.to_string(),
            rows,
            selected: self.preselect.min(self.options.len() - 1),
            user_file: self.user_file,
        });
        true
    }

    /// Moves the selection, stopping at either end.
    pub fn step(&mut self, delta: isize) {
        if let Some(c) = &mut self.open {
            let max = c.rows.len().saturating_sub(1) as isize;
            c.selected = (c.selected as isize + delta).clamp(0, max) as usize;
        }
    }

    /// Closes the chooser; returns the symbol and the mode chosen.
    pub fn take_choice(&mut self) -> Option<(String, String)> {
        let c = self.open.take()?;
        let row = c.rows.get(c.selected)?;
        Some((c.symbol, row.mode.name.clone()))
    }
}

/// The configurations the chooser offers, by name: each built-in mode as `--mode NAME` would give
/// it (the user's `--config` file still applies over it, as on the command line), and
/// [`AS_CONFIGURED`] when the TUI's own configuration is none of them. The second value is the row
/// to preselect: the one matching the TUI's configuration when `--mode` or `--config` was given,
/// else quick_test, so that `t` Enter is never a day-long run by surprise. A mode that does not
/// load with the user's file is left out and logged.
pub fn mode_configs(
    startup: &Config,
    explicit: bool,
    user_file: Option<&Path>,
) -> (Vec<(String, Config)>, usize) {
    let mut list: Vec<(String, Config)> = Vec::new();
    for (name, _) in config::MODES {
        match config::load_with_notes(Some(name), user_file) {
            Ok((cfg, _)) => list.push((name.to_string(), cfg)),
            Err(e) => tracing::warn!("training mode {name} is not offered: {e:#}"),
        }
    }
    let same = |a: &Config| {
        Config {
            mode: String::new(),
            ..a.clone()
        } == Config {
            mode: String::new(),
            ..startup.clone()
        }
    };
    if !explicit {
        return (list, 0);
    }
    match list.iter().position(|(_, c)| same(c)) {
        Some(i) => (list, i),
        None => {
            list.push((AS_CONFIGURED.to_string(), startup.clone()));
            let last = list.len() - 1;
            (list, last)
        }
    }
}

/// The chooser's modes from [`mode_configs`]'s list.
pub fn train_modes(
    list: &[(String, Config)],
    preselect: usize,
    user_file: bool,
    host: String,
) -> TrainModes {
    TrainModes {
        options: list.iter().map(|(n, c)| ModeOption::new(n, c)).collect(),
        preselect,
        user_file,
        host,
        ..TrainModes::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[(String, Config)]) -> Vec<&str> {
        list.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn without_flags_the_modes_are_offered_and_quick_test_preselected() {
        let startup = config::load(None, None).unwrap();
        let (list, pre) = mode_configs(&startup, false, None);
        assert_eq!(
            names(&list),
            ["quick_test", "standard", "production", "extended"]
        );
        assert_eq!(pre, 0);
        let modes = train_modes(&list, pre, false, "vm".into());
        assert_eq!(modes.options[0].timesteps, 245_760);
        assert_eq!(modes.options[1].timesteps, 49_995_776, "whole updates");
    }

    #[test]
    fn an_explicit_mode_is_preselected_and_a_custom_config_gets_its_own_row() {
        let startup = config::load(Some("production"), None).unwrap();
        let (list, pre) = mode_configs(&startup, true, None);
        assert_eq!(list[pre].0, "production");
        assert_eq!(list.len(), 4);

        let mut custom = startup.clone();
        custom.ppo.total_timesteps = 1024;
        let (list, pre) = mode_configs(&custom, true, None);
        assert_eq!(list.len(), 5);
        assert_eq!(list[pre].0, AS_CONFIGURED);
        assert_eq!(list[pre].1, custom);
    }

    #[test]
    fn the_chooser_clamps_and_reports_the_choice() {
        let (list, _) = mode_configs(&config::load(None, None).unwrap(), false, None);
        let mut m = train_modes(&list, 1, false, "vm".into());
        assert!(m.open_for("SYNA"));
        m.step(-5);
        assert_eq!(m.open.as_ref().map(|c| c.selected), Some(0));
        m.step(10);
        assert_eq!(m.open.as_ref().map(|c| c.selected), Some(3));
        assert_eq!(m.take_choice(), Some(("SYNA".into(), "extended".into())));
        assert!(m.open.is_none());
        assert!(!TrainModes::default().open_for("SYNA"), "nothing to offer");
    }
}
