//! What a run trains on — one series ([`TrainData`]) or a universe ([`PortfolioTrainData`]) —
//! as the trainer sees it: the env it builds, the action space, and the provenance its model
//! files record.

use super::checkpoint::{ModelMeta, FORMAT};
use super::drawn::{DrawnPath, TrainPaths};
use super::env::{EnvPath, VecEnv};
use super::gru::GruSpec;
use super::memory::{MemEstimate, NetShape};
use super::portfolio_env::PortfolioEnv;
use super::ppo::{PortfolioTrainData, TrainData};
use super::state::NetLayout;
use super::train_env::TrainEnv;
use crate::config::{Config, EnvExits, EnvStart, RewardKind};
use crate::features::{events::EventTable, FeatureSpec};
use crate::sim::portfolio::{Regime, N_REGIMES};
use crate::sim::{Rules, SeedParams, ACTION_MEANINGS, N_ACTIONS};
use anyhow::{bail, Result};
use candle_core::Device;
use chrono::{DateTime, Utc};

#[derive(Clone, Copy)]
pub(super) enum TrainSet<'a> {
    /// A series, and the drawn paths its episodes come from (none: its training range).
    Series(&'a TrainData, &'a TrainPaths),
    Portfolio(&'a PortfolioTrainData),
}

impl TrainSet<'_> {
    /// The symbol, or the portfolio's name.
    pub fn name(&self) -> &str {
        match self {
            TrainSet::Series(d, _) => &d.symbol.name,
            TrainSet::Portfolio(d) => &d.name,
        }
    }

    pub fn sha256(&self) -> &str {
        match self {
            TrainSet::Series(d, _) => &d.sha256,
            TrainSet::Portfolio(d) => &d.sha256,
        }
    }

    pub fn n_actions(&self) -> usize {
        match self {
            TrainSet::Series(..) => N_ACTIONS,
            TrainSet::Portfolio(_) => N_REGIMES,
        }
    }

    pub fn obs_dim(&self) -> usize {
        match self {
            TrainSet::Series(d, _) => d.spec.obs_dim(),
            TrainSet::Portfolio(d) => d.spec.obs_dim(),
        }
    }

    /// A portfolio model records no per-symbol feature layout; this stands in for it (unused:
    /// `ModelMeta::portfolio` is the layout).
    fn feature_spec(&self, cfg: &Config) -> FeatureSpec {
        match self {
            TrainSet::Series(d, _) => d.spec.clone(),
            TrainSet::Portfolio(_) => {
                FeatureSpec::current(cfg.features.window, &EventTable::default())
            }
        }
    }

    /// The observation as a GRU reads it — (steps, values per step, tail): a portfolio's steps
    /// are the window's bars (every symbol's and the market's features), a single series' its
    /// window's feature rows (oldest first, as `VecEnv::observe` lays them out); the account
    /// block is the tail either way.
    pub fn sequence_shape(&self) -> (usize, usize, usize) {
        match self {
            TrainSet::Series(d, _) => (d.spec.window, d.spec.n_features(), d.spec.account.len()),
            TrainSet::Portfolio(d) => (d.spec.seq_len(), d.spec.step_dim(), d.spec.tail_dim()),
        }
    }

    /// Bytes of the training data in memory (features, closes, bars), for the memory estimate.
    pub fn data_bytes(&self) -> f64 {
        match self {
            TrainSet::Series(d, paths) => {
                let drawn: f64 = paths.paths.iter().map(DrawnPath::bytes).sum();
                d.fm.values.len() as f64 * 4.0 + d.bars.len() as f64 * 64.0 + drawn
            }
            TrainSet::Portfolio(d) => {
                let (_, step_dim, _) = self.sequence_shape();
                d.tape.n_bars as f64 * (step_dim as f64 * 4.0 + 64.0)
            }
        }
    }

    /// Estimates the run's memory before anything is allocated and refuses one that cannot fit in
    /// this machine's available memory (and, on CUDA, the GPU's); a warning when it takes a large
    /// share (see `memory`).
    pub fn check_memory(&self, cfg: &Config, device: &Device) -> Result<Option<String>> {
        let p = &cfg.ppo;
        let net = NetShape::of(p, self.obs_dim(), self.n_actions(), || self.gru_spec(cfg));
        let est = MemEstimate::of(p, &net, self.obs_dim(), self.data_bytes());
        let host = crate::data::budget::mem_available().map_or(4e9, |b| b as f64);
        let mut note = est.check("this machine (MemAvailable)", host)?;
        if device.is_cuda() {
            let index = p
                .device
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if let Some(gpu) = super::sizing::probe(index) {
                let vram = gpu.vram_mib as f64 * (1u64 << 20) as f64;
                note = note.or(est.check(&format!("the GPU ({})", gpu.name), vram)?);
            }
        }
        Ok(note)
    }

    pub fn gru_spec(&self, cfg: &Config) -> GruSpec {
        GruSpec::from_config(&cfg.ppo, self.sequence_shape(), self.n_actions())
    }

    pub fn layout(&self, cfg: &Config) -> NetLayout {
        let mut l = NetLayout::mlp(
            &self.feature_spec(cfg),
            &cfg.ppo.hidden_dims,
            self.n_actions(),
        );
        if let TrainSet::Portfolio(d) = self {
            l.obs_dim = d.spec.obs_dim();
            l.portfolio = Some(d.spec.clone());
        }
        l.for_encoder(&cfg.ppo, self.sequence_shape())
    }

    /// Updates between two draws of the training paths (`synthetic.redraw_every`); 0: the run
    /// trains on one set of paths throughout.
    pub fn redraw_every(&self, cfg: &Config) -> usize {
        match self {
            TrainSet::Series(
                _,
                TrainPaths {
                    drawer: Some(_), ..
                },
            ) => cfg.synthetic.redraw_every,
            _ => 0,
        }
    }

    /// The env over the training range, `cfg.ppo.n_envs` wide, on generation `generation` of
    /// the drawn paths (`drawn::generation`; a new generation's envs start afresh, from a
    /// stream of their own).
    pub fn env(
        &self,
        cfg: &Config,
        device: &Device,
        generation: usize,
    ) -> Result<Box<dyn TrainEnv>> {
        let p = &cfg.ppo;
        match self {
            TrainSet::Series(data, train_paths) => {
                series_env(cfg, device, data, train_paths, generation)
            }
            TrainSet::Portfolio(data) => {
                if data.train.is_empty() || data.validation.is_empty() {
                    bail!(
                        "{} portfolio bars are too few to split into training and validation ranges",
                        data.tape.n_bars
                    );
                }
                let env = PortfolioEnv::new(
                    &data.spec,
                    &data.features,
                    &data.tape,
                    data.rules,
                    data.train.clone(),
                    cfg.portfolio.episode_len,
                    p.n_envs,
                    p.seed,
                    device,
                )?;
                Ok(Box::new(env))
            }
        }
    }

    fn ts(&self, i: usize) -> DateTime<Utc> {
        match self {
            TrainSet::Series(d, _) => d.bars[i].ts,
            TrainSet::Portfolio(d) => d.tape.ts[i],
        }
    }

    fn len(&self) -> usize {
        match self {
            TrainSet::Series(d, _) => d.bars.len(),
            TrainSet::Portfolio(d) => d.tape.n_bars,
        }
    }

    /// A model file's metadata, everything but the training position and network size.
    pub fn meta(&self, cfg: &Config) -> ModelMeta {
        let (train, val, class, timeframe, source, portfolio, meanings) = match self {
            TrainSet::Series(d, _) => (
                &d.train,
                &d.validation,
                d.symbol.class,
                d.timeframe,
                d.source.clone(),
                None,
                ACTION_MEANINGS.iter().map(|s| s.to_string()).collect(),
            ),
            TrainSet::Portfolio(d) => (
                &d.train,
                &d.validation,
                d.tape.class,
                d.spec.timeframe,
                d.source.clone(),
                Some(d.spec.clone()),
                Regime::ALL.iter().map(|r| r.name().to_string()).collect(),
            ),
        };
        ModelMeta {
            format: FORMAT.to_string(),
            quantdeck_version: env!("CARGO_PKG_VERSION").to_string(),
            symbol: self.name().to_string(),
            class,
            timeframe,
            source,
            feature_spec: self.feature_spec(cfg),
            action_meanings: meanings,
            obs_dim: self.obs_dim(),
            hidden_dims: cfg.ppo.hidden_dims.clone(),
            n_actions: self.n_actions(),
            param_count: 0,
            train_first: self.ts(train.start),
            train_last: self.ts(train.end.saturating_sub(1)),
            val_first: Some(self.ts(val.start)),
            val_last: Some(self.ts(val.end - 1)),
            data_first: self.ts(0),
            data_last: self.ts(self.len() - 1),
            data_sha256: self.sha256().to_string(),
            update: 0,
            timesteps: 0,
            created: Utc::now(),
            config: cfg.clone(),
            portfolio,
            gru: None,
        }
    }
}

/// A series' env (see [`TrainSet::env`]): its drawn paths' generation `generation` (or its
/// training range), under the configured reward, exits, cost ramp and starts.
fn series_env(
    cfg: &Config,
    device: &Device,
    data: &TrainData,
    train_paths: &TrainPaths,
    generation: usize,
) -> Result<Box<dyn TrainEnv>> {
    let p = &cfg.ppo;
    let fresh = match (&train_paths.drawer, generation) {
        (Some(d), g) if g > 0 => d.draw(g)?,
        _ => Vec::new(),
    };
    // The fresh generation stands in for the first one; pooled series stay.
    let paths: Vec<&DrawnPath> = fresh
        .iter()
        .chain(train_paths.paths.iter().skip(fresh.len()))
        .collect();
    let seed = p.seed ^ (generation as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    if data.train.is_empty() || data.validation.is_empty() {
        bail!(
            "{} bars are too few to split into training and validation ranges",
            data.bars.len()
        );
    }
    let closes: Vec<f64> = data.bars.iter().map(|b| b.close).collect();
    let rules = Rules::training(&cfg.env, &cfg.backtest, data.symbol.class);
    let sources: Vec<EnvPath> = if paths.is_empty() {
        vec![EnvPath {
            fm: &data.fm,
            closes: &closes,
            range: data.train.clone(),
        }]
    } else {
        paths
            .iter()
            .map(|p| EnvPath {
                fm: &p.fm,
                closes: &p.closes,
                range: 0..p.closes.len(),
            })
            .collect()
    };
    let mut env = VecEnv::over_paths(
        &data.spec,
        &sources,
        rules,
        cfg.env.episode_len,
        cfg.env.reward_scale,
        p.n_envs,
        seed,
        device,
    )?;
    if cfg.env.reward == RewardKind::Seed {
        let bt = &cfg.backtest;
        env = env.with_seed_reward(SeedParams::new(bt.stop_loss, bt.take_profit))?;
    }
    if cfg.env.exits == EnvExits::AsTraded {
        let bt = &cfg.backtest;
        env = env.with_exits(bt.stop_loss, bt.take_profit)?;
    }
    if cfg.env.cost_ramp > 0.0 {
        env = env.with_cost_ramp(cfg.env.cost_ramp);
    }
    if cfg.env.start == EnvStart::Random {
        env = env.with_random_starts()?;
    }
    Ok(Box::new(env))
}
