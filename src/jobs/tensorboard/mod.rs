//! TensorBoard for every training run: its `update` and `validation` events, as they happen, also
//! go to `events.out.tfevents.*` in the run directory, under the scalar names Stable-Baselines3
//! and CleanRL users read (`rollout/ep_rew_mean`, `train/approx_kl`, …, `time/fps`) with the env
//! step as x, plus the validation figures (`eval/*`). `events.jsonl` stays the source: `quantdeck
//! export` writes the file for runs made before this (or again, from scratch).

pub mod tfevents;

use crate::jobs::{Event, EventRecord, RunDir};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tfevents::{What, Writer};

/// One event file's worth of output from one job event.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Scalars {
        step: i64,
        wall: f64,
        values: Vec<(&'static str, f32)>,
    },
    /// The run went back to an earlier update: readers drop the points at and after `step`.
    Restart { step: i64, wall: f64 },
}

/// Turns a training run's events into TensorBoard points. The x axis is env-steps; a validation
/// or restart (which name an update) is placed at that update's env-steps.
#[derive(Debug, Clone)]
pub struct Mapper {
    episode_len: usize,
    steps_per_update: Option<u64>,
    pending_restart: Option<(usize, f64)>,
}

impl Mapper {
    /// `episode_len`: env-steps per episode (episodes have a fixed length), which turns the mean
    /// reward per step into the mean episode return.
    pub fn new(episode_len: usize) -> Mapper {
        Mapper {
            episode_len: episode_len.max(1),
            steps_per_update: None,
            pending_restart: None,
        }
    }

    pub fn on(&mut self, rec: &EventRecord) -> Vec<Out> {
        let wall = rec.at.timestamp_micros() as f64 / 1e6;
        let mut out = Vec::new();
        match &rec.event {
            Event::Update(m) => {
                if m.update > 0 {
                    self.steps_per_update = Some(m.timesteps / m.update as u64);
                }
                if let Some((from, at)) = self.pending_restart.take() {
                    out.extend(self.restart(from, at));
                }
                let mut values = vec![
                    (
                        "rollout/ep_rew_mean",
                        m.mean_reward * self.episode_len as f64,
                    ),
                    ("rollout/step_rew_mean", m.mean_reward),
                    ("train/approx_kl", m.approx_kl),
                    ("train/clip_fraction", m.clip_fraction),
                    ("train/entropy_loss", -m.entropy),
                    ("train/policy_gradient_loss", m.policy_loss),
                    ("train/value_loss", m.value_loss),
                    ("train/explained_variance", m.explained_variance),
                    ("train/learning_rate", m.lr),
                    ("train/critic_learning_rate", m.critic_lr),
                    ("train/ent_coef", m.ent_coef),
                    ("time/fps", m.sps),
                    ("time/episodes", m.episodes as f64),
                ];
                if let Some(c) = m.critic_loss {
                    values.push(("train/critic_only_value_loss", c));
                }
                out.push(scalars(m.timesteps as i64, wall, values));
            }
            Event::Validation(v) => {
                if let Some(spu) = self.steps_per_update {
                    let mut values = vec![
                        ("eval/sharpe", v.sharpe),
                        ("eval/profit_factor", v.profit_factor),
                        ("eval/max_drawdown", v.max_drawdown),
                        ("eval/return", v.total_return),
                        ("eval/fitness", v.fitness),
                        ("eval/trades", v.trades as f64),
                    ];
                    if let Some(w) = v.win_rate {
                        values.push(("eval/win_rate", w));
                    }
                    out.push(scalars((v.update as u64 * spu) as i64, wall, values));
                }
            }
            Event::Restart { from_update, .. } => {
                // A resumed process knows its steps per update only from its first update.
                match self.steps_per_update {
                    Some(_) => out.extend(self.restart(*from_update, wall)),
                    None => self.pending_restart = Some((*from_update, wall)),
                }
            }
            _ => {}
        }
        out
    }

    fn restart(&self, from_update: usize, wall: f64) -> Option<Out> {
        let spu = self.steps_per_update?;
        // Points up to the update resumed from stay; everything after it is superseded.
        Some(Out::Restart {
            step: (from_update as u64 * spu + 1) as i64,
            wall,
        })
    }
}

fn scalars(step: i64, wall: f64, values: Vec<(&'static str, f64)>) -> Out {
    Out::Scalars {
        step,
        wall,
        values: values
            .into_iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| (k, v as f32))
            .collect(),
    }
}

fn write(w: &mut Writer, o: &Out) -> Result<()> {
    let e = match o {
        Out::Scalars { step, wall, values } => tfevents::Event {
            wall_time: *wall,
            step: *step,
            what: What::Scalars(values.iter().map(|(k, v)| (k.to_string(), *v)).collect()),
        },
        Out::Restart { step, wall } => tfevents::Event {
            wall_time: *wall,
            step: *step,
            what: What::SessionStart,
        },
    };
    w.write(&e)
}

/// The episode length of a run's configuration (portfolio runs have their own).
pub fn episode_len(cfg: &crate::config::Config, portfolio: bool) -> usize {
    if portfolio {
        cfg.portfolio.episode_len
    } else {
        cfg.env.episode_len
    }
}

/// An observer for a training job's sink: writes the run's event file as events come. The file
/// is created at the first point (a run that fails before training leaves none). Errors are
/// logged once and never stop training.
pub fn observer(dir: &Path, episode_len: usize) -> impl Fn(&EventRecord) + Send + Sync + 'static {
    let state = Mutex::new((Mapper::new(episode_len), None::<Writer>, false));
    let dir = dir.to_path_buf();
    move |rec: &EventRecord| {
        let Ok(mut s) = state.lock() else { return };
        let (mapper, writer, failed) = &mut *s;
        let outs = mapper.on(rec);
        if outs.is_empty() || *failed {
            return;
        }
        let res = (|| -> Result<()> {
            if writer.is_none() {
                *writer = Some(Writer::create(&dir, "")?);
            }
            if let Some(w) = writer.as_mut() {
                for o in &outs {
                    write(w, o)?;
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            *failed = true;
            tracing::warn!("TensorBoard file not written in {}: {e:#}", dir.display());
        }
    }
}

/// Writes a run's TensorBoard file from its `events.jsonl` (the older event files of the run are
/// removed first: they would duplicate every point). Returns the file and how many points.
pub fn export(run: &RunDir, episode_len: usize) -> Result<(PathBuf, usize)> {
    let text = std::fs::read_to_string(run.events_path())
        .with_context(|| format!("cannot read {}", run.events_path().display()))?;
    let mut mapper = Mapper::new(episode_len);
    let outs: Vec<Out> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<EventRecord>(l).ok())
        .flat_map(|r| mapper.on(&r))
        .collect();
    for old in event_files(&run.path) {
        std::fs::remove_file(&old).with_context(|| format!("cannot remove {}", old.display()))?;
    }
    let mut w = Writer::create(&run.path, "")?;
    let mut points = 0;
    for o in &outs {
        write(&mut w, o)?;
        if let Out::Scalars { values, .. } = o {
            points += values.len();
        }
    }
    Ok((w.path, points))
}

/// The TensorBoard event files in a directory.
pub fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("events.out.tfevents."))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ppo::UpdateMetrics;
    use crate::eval::ValidationMetrics;

    fn rec(event: Event) -> EventRecord {
        EventRecord {
            seq: 0,
            at: chrono::Utc::now(),
            run_id: "train-x".into(),
            event,
        }
    }

    fn update(update: usize) -> Event {
        Event::Update(UpdateMetrics {
            update,
            updates: 10,
            timesteps: update as u64 * 512,
            mean_reward: 0.01,
            entropy: 2.0,
            sps: 1000.0,
            ..Default::default()
        })
    }

    #[test]
    fn updates_validations_and_restarts_map_to_sb3_scalars_at_env_steps() {
        let mut m = Mapper::new(64);
        let out = m.on(&rec(update(1)));
        let Out::Scalars { step, values, .. } = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(*step, 512);
        let get = |k: &str| values.iter().find(|(t, _)| *t == k).map(|(_, v)| *v);
        assert_eq!(get("rollout/ep_rew_mean"), Some(0.64));
        assert_eq!(get("train/entropy_loss"), Some(-2.0));
        assert_eq!(get("time/fps"), Some(1000.0));
        for k in [
            "train/approx_kl",
            "train/clip_fraction",
            "train/policy_gradient_loss",
            "train/value_loss",
            "train/explained_variance",
            "train/learning_rate",
        ] {
            assert!(get(k).is_some(), "{k}");
        }
        let v = ValidationMetrics {
            update: 2,
            sharpe: 1.5,
            profit_factor: f64::INFINITY,
            ..Default::default()
        };
        m.on(&rec(update(2)));
        let out = m.on(&rec(Event::Validation(v)));
        let Out::Scalars { step, values, .. } = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(*step, 1024);
        assert!(values.contains(&("eval/sharpe", 1.5)));
        // A non-finite figure is left out rather than written as inf.
        assert!(!values.iter().any(|(k, _)| *k == "eval/profit_factor"));
        // A restart drops what came after its update.
        let out = m.on(&rec(Event::Restart {
            from_update: 1,
            reason: crate::engine::ppo::RestartReason::Resume {
                checkpoint: String::new(),
            },
        }));
        assert!(matches!(out[..], [Out::Restart { step: 513, .. }]));
    }

    #[test]
    fn a_resumed_process_places_its_restart_once_it_knows_the_update_size() {
        let mut m = Mapper::new(64);
        let restart = Event::Restart {
            from_update: 4,
            reason: crate::engine::ppo::RestartReason::Resume {
                checkpoint: String::new(),
            },
        };
        assert!(m.on(&rec(restart)).is_empty());
        let out = m.on(&rec(update(5)));
        assert!(matches!(out[0], Out::Restart { step: 2049, .. }), "{out:?}");
        assert!(matches!(out[1], Out::Scalars { step: 2560, .. }));
    }
}
