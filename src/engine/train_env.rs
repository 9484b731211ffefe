//! What the trainer needs of an env, so one PPO loop drives the single-symbol [`VecEnv`] and the
//! portfolio [`PortfolioEnv`] alike: observe, step, and a state to go back to (early-stop
//! retries, resume).

use super::env::{EnvState, VecEnv};
use super::portfolio_env::PortfolioEnv;
use crate::sim::reward::RewardPart;
use anyhow::Result;
use candle_core::Tensor;

pub trait TrainEnv {
    fn n(&self) -> usize;
    fn obs_dim(&self) -> usize;
    /// Observations [N, obs_dim].
    fn observe(&self) -> Result<Tensor>;
    /// One action per env (u32 [N]), with the policy's normalised entropy per env when
    /// [`TrainEnv::wants_uncertainty`]; rewards [N] and which envs restarted.
    fn step_with(
        &mut self,
        actions: &Tensor,
        uncertainty: Option<&Tensor>,
    ) -> Result<(Tensor, Vec<bool>)>;
    /// Whether the reward pays for the policy's uncertainty (the rollout then computes it).
    fn wants_uncertainty(&self) -> bool {
        false
    }
    /// Training progress in [0, 1], for a reward whose weights follow it.
    fn set_progress(&mut self, _p: f64) -> Result<()> {
        Ok(())
    }
    /// Reward components' statistics since the last call (empty for a single-term reward).
    fn take_reward_parts(&mut self) -> Result<Vec<RewardPart>> {
        Ok(Vec::new())
    }
    /// Episodes ended so far.
    fn episodes(&self) -> u64;
    fn state(&self) -> EnvState;
    fn restore(&mut self, s: EnvState) -> Result<()>;
}

impl TrainEnv for VecEnv {
    fn n(&self) -> usize {
        VecEnv::n(self)
    }
    fn obs_dim(&self) -> usize {
        VecEnv::obs_dim(self)
    }
    fn observe(&self) -> Result<Tensor> {
        VecEnv::observe(self)
    }
    fn step_with(
        &mut self,
        actions: &Tensor,
        uncertainty: Option<&Tensor>,
    ) -> Result<(Tensor, Vec<bool>)> {
        VecEnv::step_with(self, actions, uncertainty)
    }
    fn wants_uncertainty(&self) -> bool {
        VecEnv::wants_uncertainty(self)
    }
    fn set_progress(&mut self, p: f64) -> Result<()> {
        VecEnv::set_progress(self, p)
    }
    fn take_reward_parts(&mut self) -> Result<Vec<RewardPart>> {
        VecEnv::take_reward_parts(self)
    }
    fn episodes(&self) -> u64 {
        VecEnv::episodes(self)
    }
    fn state(&self) -> EnvState {
        VecEnv::state(self)
    }
    fn restore(&mut self, s: EnvState) -> Result<()> {
        VecEnv::restore(self, s)
    }
}

impl TrainEnv for PortfolioEnv {
    fn n(&self) -> usize {
        PortfolioEnv::n(self)
    }
    fn obs_dim(&self) -> usize {
        PortfolioEnv::obs_dim(self)
    }
    fn observe(&self) -> Result<Tensor> {
        PortfolioEnv::observe(self)
    }
    fn step_with(&mut self, actions: &Tensor, _: Option<&Tensor>) -> Result<(Tensor, Vec<bool>)> {
        PortfolioEnv::step(self, actions)
    }
    fn episodes(&self) -> u64 {
        PortfolioEnv::episodes(self)
    }
    fn state(&self) -> EnvState {
        PortfolioEnv::state(self)
    }
    fn restore(&mut self, s: EnvState) -> Result<()> {
        PortfolioEnv::restore(self, s)
    }
}
