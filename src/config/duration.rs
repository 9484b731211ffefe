//! How long a training run lasts, from the command line's three ways of saying it (seed 002):
//! `--timesteps N` env-steps in all; `--episodes N` episodes of `env.episode_len` steps, i.e.
//! N × episode_len env-steps (the `n_envs` envs run side by side, so one update of n_envs ×
//! n_steps steps covers n_envs × n_steps / episode_len episodes); `--iterations N` PPO updates of
//! n_envs × n_steps steps each. When several are given the highest priority wins —
//! timesteps > episodes > iterations — and the others are ignored, with a note saying so.
//! Runs are whole updates: `--timesteps` rounds down (at least one), `--episodes` rounds up so
//! that at least N episodes' worth of steps run.

use super::PpoConfig;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrainDuration {
    pub timesteps: Option<u64>,
    pub episodes: Option<u64>,
    pub iterations: Option<u64>,
}

/// The duration applied, in words for the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// Which flag decided: `timesteps`, `episodes` or `iterations`.
    pub by: &'static str,
    pub updates: usize,
    pub notes: Vec<String>,
}

impl TrainDuration {
    pub fn is_empty(&self) -> bool {
        *self == TrainDuration::default()
    }

    /// Sets `ppo.total_timesteps` from the winning flag; None when no flag was given.
    pub fn apply(&self, ppo: &mut PpoConfig, episode_len: usize) -> Option<Resolved> {
        let step = ppo.steps_per_update().max(1);
        let given: Vec<&'static str> = [
            ("timesteps", self.timesteps),
            ("episodes", self.episodes),
            ("iterations", self.iterations),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|_| n))
        .collect();
        let by = *given.first()?;
        let mut notes = Vec::new();
        if given.len() > 1 {
            let ignored: Vec<String> = given[1..].iter().map(|n| format!("--{n}")).collect();
            notes.push(format!(
                "--{by} given: {} ignored (priority: timesteps > episodes > iterations)",
                ignored.join(" and ")
            ));
        }
        match (self.timesteps, self.episodes, self.iterations) {
            (Some(t), _, _) => {
                ppo.total_timesteps = t.max(1);
                if t % step != 0 {
                    notes.push(format!(
                        "--timesteps {t} rounds to {} update(s) of {step} steps (n_envs × n_steps)",
                        ppo.updates()
                    ));
                }
            }
            (None, Some(e), _) => {
                let steps = e.max(1).saturating_mul(episode_len as u64);
                let updates = steps.div_ceil(step).max(1);
                ppo.total_timesteps = updates.saturating_mul(step);
                notes.push(format!(
                    "--episodes {e} = {e} × {episode_len}-step episodes = {steps} env-steps → {updates} update(s) of {step} steps"
                ));
            }
            (None, None, Some(i)) => {
                ppo.total_timesteps = i.max(1).saturating_mul(step);
            }
            (None, None, None) => return None,
        }
        Some(Resolved {
            by,
            updates: ppo.updates(),
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ppo() -> PpoConfig {
        PpoConfig {
            n_envs: 64,
            n_steps: 128,
            ..Default::default()
        }
    }

    #[test]
    fn each_flag_alone() {
        let mut p = ppo();
        let r = TrainDuration {
            iterations: Some(5),
            ..Default::default()
        }
        .apply(&mut p, 256)
        .unwrap();
        assert_eq!(
            (r.by, r.updates, p.total_timesteps),
            ("iterations", 5, 5 * 8192)
        );
        assert!(r.notes.is_empty());

        // 100 episodes × 256 steps = 25,600 steps → 4 updates (rounded up).
        let r = TrainDuration {
            episodes: Some(100),
            ..Default::default()
        }
        .apply(&mut p, 256)
        .unwrap();
        assert_eq!(
            (r.by, r.updates, p.total_timesteps),
            ("episodes", 4, 4 * 8192)
        );
        // 32 episodes fill exactly one update.
        let r = TrainDuration {
            episodes: Some(32),
            ..Default::default()
        }
        .apply(&mut p, 256)
        .unwrap();
        assert_eq!(r.updates, 1);

        let r = TrainDuration {
            timesteps: Some(20_000),
            ..Default::default()
        }
        .apply(&mut p, 256)
        .unwrap();
        assert_eq!(
            (r.by, r.updates, p.total_timesteps),
            ("timesteps", 2, 20_000)
        );
        assert!(
            r.notes[0].contains("rounds to 2 update(s)"),
            "{:?}",
            r.notes
        );

        assert!(TrainDuration::default().apply(&mut p, 256).is_none());
        assert_eq!(p.total_timesteps, 20_000, "no flag changes nothing");
    }

    #[test]
    fn priority_timesteps_then_episodes_then_iterations() {
        let all = TrainDuration {
            timesteps: Some(8192 * 3),
            episodes: Some(1000),
            iterations: Some(7),
        };
        let mut p = ppo();
        let r = all.apply(&mut p, 256).unwrap();
        assert_eq!((r.by, r.updates), ("timesteps", 3));
        assert!(
            r.notes[0].contains("--episodes and --iterations ignored"),
            "{:?}",
            r.notes
        );
        let r = TrainDuration {
            timesteps: None,
            ..all
        }
        .apply(&mut p, 256)
        .unwrap();
        assert_eq!((r.by, r.updates), ("episodes", 32));
        assert!(r.notes[0].contains("--iterations ignored"));
        let r = TrainDuration {
            timesteps: None,
            episodes: None,
            ..all
        }
        .apply(&mut p, 256)
        .unwrap();
        assert_eq!((r.by, r.updates), ("iterations", 7));
    }
}
