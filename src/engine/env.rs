//! The vectorized trading env: `sim::Account::step_action` for N envs at once on candle tensors.
//! Account state lives on the device; only bar indices (and the random restarts that move them)
//! live on the host. Observations are gathered windows of the feature matrix plus the account block.

use super::env_exits::Exits;
use super::env_reward::{SeedReward, StepTensors};
use crate::features::{FeatureMatrix, FeatureSpec};
use crate::rng::Rng;
use crate::sim::reward::RewardPart;
use crate::sim::{Rules, SeedParams};
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use std::ops::Range;

/// Level change per action; CLOSE's entry is unused (its mask zeroes the level).
const DELTA: [f32; 8] = [0.0, 0.25, 0.5, 0.75, -0.25, -0.5, -0.75, 0.0];
const CLOSE_MASK: [f32; 8] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];

pub struct VecEnv {
    device: Device,
    n: usize,
    window: usize,
    obs_dim: usize,
    ep_len: usize,
    rules: Rules,
    reward_scale: f64,
    feat: Tensor,
    closes: Tensor,
    arange_w: Tensor,
    delta: Tensor,
    close_mask: Tensor,
    /// Valid bar indices for the env's clock, one `(lo, hi)` per path (rows of `feat` laid end
    /// to end, in order): `t` in `lo..hi`, and `t + 1` is always a bar of the same path.
    segments: Vec<(usize, usize)>,
    t: Vec<u32>,
    steps: Vec<usize>,
    level: Tensor,
    qty: Tensor,
    cash: Tensor,
    equity: Tensor,
    peak: Tensor,
    rng: Rng,
    /// Episodes ended so far.
    episodes: u64,
    /// The seed reward, when chosen (`with_seed_reward`); else the step's P&L × reward_scale.
    seed: Option<SeedReward>,
    /// Episodes open at a random level (`with_random_starts`) instead of flat.
    random_starts: bool,
    /// The verdicts' stop-loss / take-profit, when training under them (`with_exits`).
    exits: Option<Exits>,
    /// Share of training over which costs rise from nothing to full (`with_cost_ramp`; 0: full
    /// from the start), and the share of the costs charged now (follows `set_progress`).
    cost_ramp: f64,
    cost_scale: f64,
}

/// The env's state between two steps, for checkpoints: bar clocks and the restart generator on
/// the host, account (and reward) tensors on the device.
#[derive(Clone)]
pub struct EnvState {
    pub t: Vec<u32>,
    pub steps: Vec<usize>,
    pub rng: Rng,
    /// A second random stream, for envs that keep one (the portfolio env's slippage draws).
    pub aux_rng: Option<Rng>,
    pub episodes: u64,
    pub tensors: Vec<(String, Tensor)>,
}

/// One path the env trains on: its features, closes, and the bar range episodes may use.
pub struct EnvPath<'a> {
    pub fm: &'a FeatureMatrix,
    pub closes: &'a [f64],
    pub range: Range<usize>,
}

impl VecEnv {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spec: &FeatureSpec,
        fm: &FeatureMatrix,
        closes: &[f64],
        range: Range<usize>,
        rules: Rules,
        ep_len: usize,
        reward_scale: f64,
        n: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let path = EnvPath { fm, closes, range };
        Self::over_paths(spec, &[path], rules, ep_len, reward_scale, n, seed, device)
    }

    /// [`VecEnv::new`] over several paths: each episode starts on a random one of them (at a
    /// random bar) and ends before that path does, so no observation or step spans two paths.
    #[allow(clippy::too_many_arguments)]
    pub fn over_paths(
        spec: &FeatureSpec,
        paths: &[EnvPath],
        rules: Rules,
        ep_len: usize,
        reward_scale: f64,
        n: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let mut segments = Vec::with_capacity(paths.len());
        let (mut values, mut all_closes) = (Vec::new(), Vec::new());
        let mut n_features = 0;
        for p in paths {
            let offset = all_closes.len();
            let lo = p.range.start.max(p.fm.first_observable(spec.window));
            let hi = p.range.end.min(p.fm.len()).saturating_sub(1);
            if hi <= lo + 1 {
                bail!(
                    "not enough bars to train: the training range {}..{} leaves {} usable bars after the {}-bar warm-up and window",
                    p.range.start,
                    p.range.end,
                    hi.saturating_sub(lo),
                    p.fm.first_observable(spec.window)
                );
            }
            if p.closes.len() != p.fm.len() {
                bail!(
                    "a training path has {} closes for {} feature rows",
                    p.closes.len(),
                    p.fm.len()
                );
            }
            if n_features != 0 && p.fm.n_features != n_features {
                bail!("training paths differ in their features");
            }
            segments.push((offset + lo, offset + hi));
            n_features = p.fm.n_features;
            values.extend_from_slice(&p.fm.values);
            all_closes.extend(p.closes.iter().map(|&c| c as f32));
        }
        let Some(shortest) = segments.iter().map(|(lo, hi)| hi - lo).min() else {
            bail!("no path to train on");
        };
        let rows = all_closes.len();
        let feat = Tensor::from_vec(values, (rows, n_features), device)?;
        let closes = Tensor::from_vec(all_closes, rows, device)?;
        let init = rules.initial_cash as f32;
        let full = |v: f32| Tensor::full(v, n, device);
        let mut env = VecEnv {
            device: device.clone(),
            n,
            window: spec.window,
            obs_dim: spec.obs_dim(),
            ep_len: ep_len.min(shortest),
            rules,
            reward_scale,
            feat,
            closes,
            arange_w: Tensor::arange(0u32, spec.window as u32, device)?.unsqueeze(0)?,
            delta: Tensor::new(&DELTA, device)?,
            close_mask: Tensor::new(&CLOSE_MASK, device)?,
            segments,
            t: vec![0; n],
            steps: vec![0; n],
            level: full(0.0)?,
            qty: full(0.0)?,
            cash: full(init)?,
            equity: full(init)?,
            peak: full(init)?,
            rng: Rng::derive(seed, "env"),
            episodes: 0,
            seed: None,
            random_starts: false,
            exits: None,
            cost_ramp: 0.0,
            cost_scale: 1.0,
        };
        for i in 0..n {
            env.t[i] = env.random_start();
        }
        Ok(env)
    }

    /// Pays the seed's curriculum reward (`sim::reward`) instead of the step's P&L.
    pub fn with_seed_reward(mut self, prm: SeedParams) -> Result<Self> {
        self.seed = Some(SeedReward::new(
            prm,
            self.rules.slippage,
            self.n,
            &self.device,
        )?);
        Ok(self)
    }

    /// Trains under the stop-loss and take-profit every verdict applies (`env.exits =
    /// "as_traded"`): see `env_exits`. Call before [`VecEnv::with_random_starts`].
    pub fn with_exits(mut self, stop_loss: f64, take_profit: f64) -> Result<Self> {
        self.exits = Some(Exits::new(stop_loss, take_profit, self.n, &self.device)?);
        Ok(self)
    }

    /// Charges costs that rise linearly from nothing at the start of training to their full
    /// value at `ramp` of it (`env.cost_ramp`; [`VecEnv::set_progress`] moves them).
    pub fn with_cost_ramp(mut self, ramp: f64) -> Self {
        self.cost_ramp = ramp;
        self.cost_scale = cost_scale(ramp, 0.0);
        self
    }

    /// Opens every episode (the first ones too) at a level drawn uniformly from those the actions
    /// reach, flat among them (`env.start = "random"`). The position is given at the episode's
    /// first close, not bought, so equity is unchanged and no cost is paid: exploring starts, so
    /// that a policy that learnt early to stay out still sees what holding pays.
    pub fn with_random_starts(mut self) -> Result<Self> {
        self.random_starts = true;
        self.open_at_random_levels(&vec![true; self.n])?;
        Ok(self)
    }

    /// Sets the envs marked in `which` (just reset: flat, equity = initial cash) to a random
    /// level at the current close, sized as `step` sizes a position.
    fn open_at_random_levels(&mut self, which: &[bool]) -> Result<()> {
        let lowest: i32 = if self.rules.allow_short { -4 } else { 0 };
        let choices = (4 - lowest + 1) as usize;
        let levels: Vec<f32> = which
            .iter()
            .map(|&w| match w {
                true => (lowest + self.rng.below(choices) as i32) as f32 * 0.25,
                false => 0.0,
            })
            .collect();
        let mask: Vec<f32> = which.iter().map(|&w| f32::from(u8::from(w))).collect();
        let mask = Tensor::from_vec(mask, self.n, &self.device)?;
        let keep = (1.0 - &mask)?;
        let level = Tensor::from_vec(levels, self.n, &self.device)?;
        let price = self.closes.index_select(&self.t_tensor(0)?, 0)?;
        let qty = level
            .affine(self.rules.full_position, 0.0)?
            .mul(&self.equity)?
            .div(&price)?;
        self.cash = (&self.cash - qty.mul(&price)?)?;
        self.qty = (self.qty.mul(&keep)? + qty)?;
        if let Some(x) = &mut self.exits {
            let opened = level.ne(0f64)?.to_dtype(DType::F32)?;
            x.open_at(&opened, &price)?;
        }
        self.level = (self.level.mul(&keep)? + level)?;
        Ok(())
    }

    /// Whether the reward wants the policy's uncertainty at each step (`step_with`).
    pub fn wants_uncertainty(&self) -> bool {
        self.seed.is_some()
    }

    /// Training progress in [0, 1], for a reward whose weights follow it.
    pub fn set_progress(&mut self, p: f64) -> Result<()> {
        self.cost_scale = cost_scale(self.cost_ramp, p);
        match &mut self.seed {
            Some(s) => s.set_progress(p),
            None => Ok(()),
        }
    }

    /// The reward components' statistics since the last call (empty for the P&L reward).
    pub fn take_reward_parts(&mut self) -> Result<Vec<RewardPart>> {
        match &mut self.seed {
            Some(s) => s.take_stats(),
            None => Ok(Vec::new()),
        }
    }

    /// Episodes ended so far.
    pub fn episodes(&self) -> u64 {
        self.episodes
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Bar index each env is at (for tests and diagnostics).
    pub fn clock(&self) -> &[u32] {
        &self.t
    }

    /// A random path (drawn only when there are several, so one path's stream is unchanged) and
    /// a random start on it that leaves room for a whole episode.
    fn random_start(&mut self) -> u32 {
        let k = match self.segments.len() {
            1 => 0,
            n => self.rng.below(n),
        };
        let (lo, hi) = self.segments[k];
        let span = hi - lo - self.ep_len;
        (lo + self.rng.below(span + 1)) as u32
    }

    /// Bar indices shifted by `offset`, as a device tensor. (Index arithmetic stays on the host:
    /// candle's `affine` on u32 cannot subtract.)
    fn t_tensor(&self, offset: i64) -> Result<Tensor> {
        let v: Vec<u32> = self.t.iter().map(|&t| (t as i64 + offset) as u32).collect();
        Ok(Tensor::from_vec(v, self.n, &self.device)?)
    }

    /// Observations [N, obs_dim]: each env's window of feature rows, then its account block.
    pub fn observe(&self) -> Result<Tensor> {
        let start = self.t_tensor(1 - self.window as i64)?;
        let idx = start
            .unsqueeze(1)?
            .broadcast_add(&self.arange_w)?
            .flatten_all()?;
        let rows = self
            .feat
            .index_select(&idx, 0)?
            .reshape((self.n, self.obs_dim - 3))?;
        let init = self.rules.initial_cash;
        let pnl = ((&self.equity / init)? - 1.0)?.affine(10.0, 0.0)?.tanh()?;
        let dd = (1.0 - (&self.equity / &self.peak)?)?.relu()?;
        let account = Tensor::stack(&[&self.level, &pnl, &dd], 1)?;
        Ok(Tensor::cat(&[&rows, &account], 1)?)
    }

    /// Applies one action per env (u32 [N]); returns rewards [N] and which envs restarted.
    pub fn step(&mut self, actions: &Tensor) -> Result<(Tensor, Vec<bool>)> {
        self.step_with(actions, None)
    }

    /// [`VecEnv::step`], with the policy's normalised entropy per env (f32 [N]) for a reward
    /// that pays for exploration.
    pub fn step_with(
        &mut self,
        actions: &Tensor,
        uncertainty: Option<&Tensor>,
    ) -> Result<(Tensor, Vec<bool>)> {
        let price = self.closes.index_select(&self.t_tensor(0)?, 0)?;
        let next = self.closes.index_select(&self.t_tensor(1)?, 0)?;
        let lo = if self.rules.allow_short { -1.0f32 } else { 0.0 };
        let delta = self.delta.index_select(actions, 0)?;
        let keep = (1.0 - self.close_mask.index_select(actions, 0)?)?;
        let mut level_new = (&self.level + delta)?.clamp(lo, 1.0f32)?.mul(&keep)?;
        if let Some(x) = &self.exits {
            // An exit closes the position before the action, whatever the policy chose.
            level_new = level_new.mul(&(1.0 - x.hit(&price, &self.qty)?)?)?;
        }
        let traded = (&level_new - &self.level)?
            .abs()?
            .gt(1e-6f64)?
            .to_dtype(DType::F32)?;
        let target = level_new
            .affine(self.rules.full_position, 0.0)?
            .mul(&self.equity)?
            .div(&price)?;
        let qty_new = (traded.mul(&target)? + (1.0 - &traded)?.mul(&self.qty)?)?;
        let dq = (&qty_new - &self.qty)?;
        let slippage = self.rules.slippage * self.cost_scale;
        let cost = (dq.abs()?.mul(&price)?.affine(slippage, 0.0)?
            + traded.affine(self.rules.commission * self.cost_scale, 0.0)?)?;
        let cash = ((&self.cash - dq.mul(&price)?)? - &cost)?;
        if let Some(x) = &mut self.exits {
            x.after_fill(&price, &self.qty, &qty_new, &dq, slippage)?;
        }
        let equity = (&cash + qty_new.mul(&next)?)?;
        let peak = self.peak.maximum(&equity)?;
        let reward = match &mut self.seed {
            None => ((&equity - &self.equity)? / &self.equity)?.affine(self.reward_scale, 0.0)?,
            Some(seed) => seed.step(&StepTensors {
                price: &price,
                next: &next,
                qty_old: &self.qty,
                qty_new: &qty_new,
                dq: &dq,
                level_new: &level_new,
                cost: &cost,
                equity_before: &self.equity,
                equity: &equity,
                peak: &peak,
                uncertainty,
            })?,
        };
        self.peak = peak;
        self.level = level_new;
        self.qty = qty_new;
        self.cash = cash;
        self.equity = equity;

        let mut dones = vec![false; self.n];
        for ((t, steps), done) in self.t.iter_mut().zip(&mut self.steps).zip(&mut dones) {
            *t += 1;
            *steps += 1;
            let end = segment_of(&self.segments, *t as usize).map_or(0, |(_, hi)| hi);
            *done = *steps >= self.ep_len || *t as usize + 1 >= end;
        }
        self.episodes += dones.iter().filter(|d| **d).count() as u64;
        if dones.iter().any(|d| *d) {
            for (i, _) in dones.iter().enumerate().filter(|(_, d)| **d) {
                self.t[i] = self.random_start();
                self.steps[i] = 0;
            }
            self.reset_where(&dones)?;
            if self.random_starts {
                self.open_at_random_levels(&dones)?;
            }
        }
        Ok((reward, dones))
    }

    fn reset_where(&mut self, dones: &[bool]) -> Result<()> {
        let m: Vec<f32> = dones.iter().map(|&d| if d { 1.0 } else { 0.0 }).collect();
        let m = Tensor::from_vec(m, self.n, &self.device)?;
        let keep = (1.0 - &m)?;
        let init = m.affine(self.rules.initial_cash, 0.0)?;
        self.level = self.level.mul(&keep)?;
        self.qty = self.qty.mul(&keep)?;
        self.cash = (self.cash.mul(&keep)? + &init)?;
        self.equity = (self.equity.mul(&keep)? + &init)?;
        self.peak = (self.peak.mul(&keep)? + &init)?;
        if let Some(x) = &mut self.exits {
            x.restart_flat(&keep)?;
        }
        if let Some(seed) = &mut self.seed {
            seed.reset_where(&keep)?;
        }
        Ok(())
    }

    /// The state between steps (cheap: tensors are shared, not copied).
    pub fn state(&self) -> EnvState {
        let mut tensors: Vec<(String, Tensor)> = [
            ("level", &self.level),
            ("qty", &self.qty),
            ("cash", &self.cash),
            ("equity", &self.equity),
            ("peak", &self.peak),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
        if let Some(x) = &self.exits {
            tensors.push(("exit_entry".to_string(), x.entry().clone()));
        }
        if let Some(seed) = &self.seed {
            tensors.extend(seed.tensors().into_iter().map(|(n, t)| (n.to_string(), t)));
        }
        EnvState {
            t: self.t.clone(),
            steps: self.steps.clone(),
            rng: self.rng.clone(),
            aux_rng: None,
            episodes: self.episodes,
            tensors,
        }
    }

    /// Continues from a saved state of an env built the same way (same data, envs and reward).
    pub fn restore(&mut self, s: EnvState) -> Result<()> {
        if s.t.len() != self.n || s.steps.len() != self.n {
            bail!(
                "the saved env state holds {} envs, this env {}",
                s.t.len(),
                self.n
            );
        }
        let mut want: Vec<String> = self.state().tensors.into_iter().map(|(n, _)| n).collect();
        for (name, t) in s.tensors {
            if t.dims() != [self.n] {
                bail!(
                    "saved env tensor {name} has shape {:?}, expected [{}]",
                    t.dims(),
                    self.n
                );
            }
            let t = t.to_device(&self.device)?;
            match name.as_str() {
                "level" => self.level = t,
                "qty" => self.qty = t,
                "cash" => self.cash = t,
                "equity" => self.equity = t,
                "peak" => self.peak = t,
                "exit_entry" if self.exits.is_some() => {
                    if let Some(x) = &mut self.exits {
                        x.set_entry(t);
                    }
                }
                other => {
                    let known = self
                        .seed
                        .as_mut()
                        .is_some_and(|seed| seed.restore(other, t));
                    if !known {
                        bail!("the saved env state holds {other:?}, which this env's reward does not use");
                    }
                }
            }
            want.retain(|n| *n != name);
        }
        if want.iter().any(|n| n == "exit_entry") {
            bail!("the saved env state has no entry prices: the run was trained without env.exits; continue it with env.exits = \"none\"");
        }
        if !want.is_empty() {
            bail!("the saved env state lacks {}", want.join(", "));
        }
        let inside = |t: usize| segment_of(&self.segments, t).is_some_and(|(_, hi)| t + 1 < hi);
        if !s.t.iter().all(|&t| inside(t as usize)) {
            bail!("the saved env clocks fall outside this env's bars");
        }
        self.t = s.t;
        self.steps = s.steps;
        self.rng = s.rng;
        self.episodes = s.episodes;
        Ok(())
    }

    /// Account equity per env (for tests and diagnostics).
    pub fn equity(&self) -> Result<Vec<f32>> {
        Ok(self.equity.to_vec1::<f32>()?)
    }
}

/// The share of the costs charged at training progress `p` (in [0, 1]) when they ramp up over
/// the first `ramp` of training.
fn cost_scale(ramp: f64, p: f64) -> f64 {
    if ramp <= 0.0 {
        1.0
    } else {
        (p / ramp).clamp(0.0, 1.0)
    }
}

/// The `(lo, hi)` of the path whose clock range holds bar `t` (`lo <= t`), if any.
fn segment_of(segments: &[(usize, usize)], t: usize) -> Option<(usize, usize)> {
    let k = segments.partition_point(|&(lo, _)| lo <= t);
    k.checked_sub(1)
        .map(|k| segments[k])
        .filter(|&(_, hi)| t < hi)
}
