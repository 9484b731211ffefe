//! The configuration tree. Defaults here mirror `configs/default.toml` (a test holds them equal).

use super::range;
use super::PpoConfig;
use crate::market::{Symbol, Timeframe};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Which mode file was applied on top of the defaults (informational).
    pub mode: String,
    pub universe: UniverseConfig,
    pub data: DataConfig,
    pub synthetic: SyntheticConfig,
    pub features: FeaturesConfig,
    pub env: EnvConfig,
    pub ppo: PpoConfig,
    pub gating: GatingConfig,
    pub backtest: BacktestConfig,
    pub walk_forward: WalkForwardConfig,
    pub live: LiveConfig,
    pub portfolio: super::PortfolioConfig,
    pub sweep: super::SweepConfig,
    pub slurm: super::SlurmConfig,
    pub notify: super::NotifyConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UniverseConfig {
    pub equities: Vec<String>,
    pub crypto: Vec<String>,
}

impl Default for UniverseConfig {
    fn default() -> Self {
        UniverseConfig {
            equities: vec!["SYNA".into(), "SYNB".into(), "SYNC".into()],
            crypto: vec!["SYNX/USD".into()],
        }
    }
}

impl UniverseConfig {
    pub fn symbols(&self) -> Vec<Symbol> {
        let eq = self.equities.iter().map(|s| Symbol::equity(s));
        eq.chain(self.crypto.iter().map(|s| Symbol::crypto(s)))
            .collect()
    }

    /// The configured symbol of that name, or — for data outside the universe (fetched from
    /// Alpaca, imported) — the name parsed as written (`BTC/USD` is crypto). A name that cannot
    /// name a series (empty, `.`, control characters, …) is an error.
    pub fn resolve(&self, name: &str) -> anyhow::Result<Symbol> {
        match self.find(name) {
            Ok(sym) => Ok(sym),
            Err(_) => Symbol::from_user(name),
        }
    }

    /// Finds a configured symbol by name (case-insensitive); an invalid name, or one outside the
    /// universe, is an error (the latter lists the universe).
    pub fn find(&self, name: &str) -> anyhow::Result<Symbol> {
        crate::market::symbol::validate_name(name)?;
        let all = self.symbols();
        all.iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .cloned()
            .ok_or_else(|| {
                let names: Vec<_> = all.iter().map(|s| s.name.as_str()).collect();
                anyhow::anyhow!(
                    "unknown symbol {name:?}: the universe is [{}] (set [universe] in your config)",
                    names.join(", ")
                )
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// The built-in deterministic synthetic market.
    Synthetic,
    /// Alpaca market data (needs keys).
    Alpaca,
    /// Only what is already in the store (fetched earlier or imported).
    Store,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    pub source: DataSource,
    pub timeframe: Timeframe,
    /// First and last calendar day of history (inclusive), `YYYY-MM-DD`.
    #[serde(deserialize_with = "range::date")]
    pub start: String,
    #[serde(deserialize_with = "range::date")]
    pub end: String,
    /// Chronological split: the first `train` share trains, the next `validation` share picks
    /// checkpoints, the rest is out-of-sample for gating, walk-forward and paper replay.
    #[serde(deserialize_with = "range::open_fraction")]
    pub train_split: f64,
    #[serde(deserialize_with = "range::open_fraction")]
    pub validation_split: f64,
    /// Alpaca stock feed: `iex` (free) or `sip` (paid subscription).
    #[serde(deserialize_with = "range::feed")]
    pub feed: String,
    /// Alpaca price adjustment: raw, split, dividend, spin-off or all. `split` by default, so a
    /// stock split is not a crash to training or to the live warm-up.
    #[serde(deserialize_with = "range::adjustment")]
    pub adjustment: String,
    /// Market-data calls per minute (200 on the free plan, 10,000 on the paid one).
    #[serde(deserialize_with = "range::per_minute")]
    pub rate_limit_per_minute: u32,
    /// Retries of one request (429, 5xx, timeouts, broken bodies) before the fetch fails.
    #[serde(deserialize_with = "range::retries")]
    pub max_retries: u32,
    /// First backoff delay; doubles per retry, with jitter, capped at 30 s.
    #[serde(deserialize_with = "range::retry_ms")]
    pub retry_base_ms: u64,
    #[serde(deserialize_with = "range::seconds")]
    pub timeout_s: u64,
    /// Bars per page (1–10,000; counts across symbols on multi-symbol requests).
    #[serde(deserialize_with = "range::page_limit")]
    pub page_limit: u32,
    /// Requests in flight at once (all within the rate limit).
    #[serde(deserialize_with = "range::concurrency")]
    pub concurrency: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            source: DataSource::Synthetic,
            timeframe: Timeframe::Minute(15),
            start: "2024-01-02".into(),
            end: "2024-12-31".into(),
            train_split: 0.70,
            validation_split: 0.15,
            feed: "iex".into(),
            adjustment: "split".into(),
            rate_limit_per_minute: 200,
            max_retries: 6,
            retry_base_ms: 500,
            timeout_s: 30,
            page_limit: 10_000,
            concurrency: 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    pub seed: u64,
    /// Strength of the planted edge: the lag-1 autocorrelation of bar returns. 0 = random walk.
    #[serde(deserialize_with = "range::edge")]
    pub edge: f64,
    /// Half-life of the planted drift, in bars: how long a trend lasts (longer = fewer
    /// reversals, so a trader pays costs less often for the same edge).
    #[serde(deserialize_with = "range::halflife")]
    pub drift_halflife: f64,
    /// The realised annualised volatility of daily close-to-close log returns (× √252; crypto
    /// × √365), whatever the timeframe; regimes run at 0.75 : 1 : 1.6 around it.
    #[serde(deserialize_with = "range::volatility")]
    pub annual_vol: f64,
    /// Standard deviation of the overnight gap, as a fraction of price: part of `annual_vol`,
    /// capped at half of a session's variance.
    #[serde(deserialize_with = "range::gap")]
    pub gap_vol: f64,
    #[serde(deserialize_with = "range::price")]
    pub start_price: f64,
    /// Share of a portfolio symbol's variance that comes from the common market factor
    /// (`portfolio.synthetic_symbols` only; other symbols are independent random walks).
    #[serde(deserialize_with = "range::below_one")]
    pub factor_share: f64,
    /// Independent paths of this market (same parameters, seeds derived from `seed` and the
    /// path's number) that training draws its episodes from, instead of the stored path's
    /// training bars: the stored path then only validates and evaluates. 1 = train on the
    /// stored path, as on real data (which has one path and ignores this). Default 8: the
    /// learning bench's ablation (README, *Does it learn?*).
    #[serde(deserialize_with = "range::train_paths")]
    pub train_paths: usize,
    /// Updates between two draws of the training paths (0 = never): every `redraw_every`
    /// updates the `train_paths` paths are replaced by as many new ones (the next numbers of
    /// the same market), so a long run sees many paths and memorises none.
    #[serde(deserialize_with = "range::redraw_every")]
    pub redraw_every: usize,
    /// Paths of this market (own seed stream, never trained on) every validation scores after
    /// the stored validation range, over its days: checkpoints are chosen on 1 + this ranges.
    /// 0 = the stored range alone, as on real data (which ignores this).
    #[serde(deserialize_with = "range::validation_paths")]
    pub validation_paths: usize,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            seed: 7,
            edge: 0.10,
            drift_halflife: 24.0,
            annual_vol: 0.25,
            gap_vol: 0.006,
            start_price: 100.0,
            factor_share: 0.4,
            train_paths: 8,
            redraw_every: 0,
            validation_paths: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeaturesConfig {
    /// Bars in the observation window (the seed uses 100).
    #[serde(deserialize_with = "range::window")]
    pub window: usize,
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        FeaturesConfig { window: 2 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvConfig {
    #[serde(deserialize_with = "range::money")]
    pub initial_cash: f64,
    /// Share of the account kept out of the market (seed: 30 %).
    #[serde(deserialize_with = "range::below_one")]
    pub cash_buffer: f64,
    /// Base position as a share of the deployable account (seed: 15 %).
    #[serde(deserialize_with = "range::share")]
    pub base_position: f64,
    /// Hard cap of one position as a share of the account (seed: 20 %).
    #[serde(deserialize_with = "range::share")]
    pub max_position: f64,
    /// Which costs a training trade pays: the `[backtest]` account's (default) or this section's
    /// own slippage below.
    pub costs: EnvCosts,
    #[serde(deserialize_with = "range::cost")]
    pub slippage_equity: f64,
    #[serde(deserialize_with = "range::cost")]
    pub slippage_crypto: f64,
    pub allow_short_equity: bool,
    /// Steps per episode before a random restart.
    #[serde(deserialize_with = "range::episode_len")]
    pub episode_len: usize,
    /// Reward = P&L as a fraction of equity × this scale (`reward = "pnl"` only).
    #[serde(deserialize_with = "range::reward_scale")]
    pub reward_scale: f64,
    /// `pnl` (the step's P&L) or `seed` (the seed's v4.1 curriculum of eight components).
    pub reward: RewardKind,
    /// Other symbols whose bars up to the trained symbol's last training bar the policy also
    /// trains on (one policy over their scale-free features; validation and evaluation stay on
    /// the trained symbol). Empty: the trained symbol alone.
    #[serde(deserialize_with = "range::pool_symbols")]
    pub pool_symbols: Vec<String>,
    /// Augmented copies of the trained symbol's training bars that train beside them (0: none;
    /// not with drawn synthetic paths, which replace the stored path): each copy's bar returns
    /// scaled by one factor drawn log-uniformly from [1 / (1 + augment_vol), 1 + augment_vol]
    /// and its closes given `augment_noise` × the bar's own absolute return of Gaussian noise.
    #[serde(deserialize_with = "range::augment_paths")]
    pub augment_paths: usize,
    #[serde(deserialize_with = "range::fraction")]
    pub augment_vol: f64,
    #[serde(deserialize_with = "range::fraction")]
    pub augment_noise: f64,
    /// How a training episode opens: flat, or holding a random level (exploring starts).
    pub start: EnvStart,
    /// Whether training applies `[backtest]`'s stop-loss and take-profit, as every verdict does.
    pub exits: EnvExits,
    /// Share of the updates over which a training trade's costs rise linearly from nothing to
    /// their full value (0: full costs from the start): a cost curriculum, so that the first
    /// updates' random trades do not teach the policy to stay out before it has seen the drift.
    /// Default 0.5: the learning bench's ablation (README, *Does it learn?*).
    #[serde(deserialize_with = "range::fraction")]
    pub cost_ramp: f64,
}

/// The exits a training position is subject to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvExits {
    /// None: the policy alone closes its positions.
    None,
    /// `[backtest]`'s stop-loss and take-profit close a position before the policy's action, as
    /// in every backtest and in paper trading, so the policy learns under the rules it is
    /// traded by (README: *Does it learn?*, the exits ablation).
    #[default]
    AsTraded,
}

/// The position a training episode opens with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvStart {
    /// No position, as every verdict's account starts.
    #[default]
    Flat,
    /// A level drawn uniformly from those the actions reach (multiples of 0.25 from −1, or 0
    /// where shorts are not allowed, to 1; flat among them), given rather than bought: a policy
    /// that has learnt early to stay out still sees what holding pays.
    Random,
}

/// Which costs the training env charges a trade.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvCosts {
    /// What every verdict charges (the `[backtest]` account): its slippage plus its commission as
    /// a share of a full-size order, on every asset class. A policy trained to pay more than it is
    /// graded at learns to trade less than it should (README: *Does it learn?*).
    #[default]
    Backtest,
    /// `env.slippage_equity` / `env.slippage_crypto` (the seed's 0.1 % / 0.25 %), no commission.
    Own,
}

/// Which reward the training env pays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardKind {
    /// The step's equity change as a share of equity, × `env.reward_scale`.
    #[default]
    Pnl,
    /// The seed's v4.1 curriculum (`sim::reward`): direction, magnitude, P&L, stop/take-profit,
    /// exploration, slippage, drawdown and differential-Sharpe components with weights that move
    /// with training progress.
    Seed,
}

impl RewardKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RewardKind::Pnl => "pnl",
            RewardKind::Seed => "seed",
        }
    }
}

impl Default for EnvConfig {
    fn default() -> Self {
        EnvConfig {
            initial_cash: 1000.0,
            cash_buffer: 0.30,
            base_position: 0.15,
            max_position: 0.20,
            costs: EnvCosts::Backtest,
            slippage_equity: 0.001,
            slippage_crypto: 0.0025,
            allow_short_equity: true,
            episode_len: 256,
            reward_scale: 1000.0,
            reward: RewardKind::Pnl,
            pool_symbols: Vec::new(),
            augment_paths: 0,
            augment_vol: 0.3,
            augment_noise: 0.0,
            start: EnvStart::Flat,
            exits: EnvExits::AsTraded,
            cost_ramp: 0.5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateThresholds {
    #[serde(deserialize_with = "range::threshold")]
    pub fitness: f64,
    #[serde(deserialize_with = "range::ratio")]
    pub profit_factor: f64,
    #[serde(deserialize_with = "range::fraction")]
    pub consistency: f64,
    #[serde(deserialize_with = "range::fraction")]
    pub max_drawdown: f64,
}

impl Default for GateThresholds {
    fn default() -> Self {
        GateThresholds {
            fitness: 0.35,
            profit_factor: 1.4,
            consistency: 0.70,
            max_drawdown: 0.10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatingConfig {
    pub approved: GateThresholds,
    pub review: GateThresholds,
    /// FITNESS_DECLINE fires when the final fitness is this share below the peak.
    #[serde(deserialize_with = "range::fraction")]
    pub decline_tolerance: f64,
    /// UNSTABLE_TRAINING fires when late validations swing by more than this share of the peak.
    #[serde(deserialize_with = "range::ratio")]
    pub instability: f64,
    /// Chunks of the validation range whose returns define consistency.
    #[serde(deserialize_with = "range::chunks")]
    pub consistency_chunks: usize,
    /// An evaluation with fewer round-trip trades than this is insufficient: reported, never scored.
    #[serde(deserialize_with = "range::min_trades")]
    pub min_trades: usize,
    /// …or spanning fewer days (sessions) than this.
    #[serde(deserialize_with = "range::min_days")]
    pub min_days: usize,
}

impl GatingConfig {
    pub fn evidence(&self) -> crate::eval::Evidence {
        crate::eval::Evidence {
            min_trades: self.min_trades,
            min_days: self.min_days,
        }
    }
}

impl Default for GatingConfig {
    fn default() -> Self {
        GatingConfig {
            approved: GateThresholds::default(),
            review: GateThresholds {
                fitness: 0.10,
                profit_factor: 1.1,
                consistency: 0.50,
                max_drawdown: 0.20,
            },
            decline_tolerance: 0.05,
            instability: 0.10,
            consistency_chunks: 10,
            min_trades: 10,
            min_days: 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BacktestConfig {
    #[serde(deserialize_with = "range::money")]
    pub initial_cash: f64,
    /// Position size as a share of equity at full size.
    #[serde(deserialize_with = "range::share")]
    pub position_size: f64,
    #[serde(deserialize_with = "range::commission")]
    pub commission: f64,
    #[serde(deserialize_with = "range::cost")]
    pub slippage: f64,
    #[serde(deserialize_with = "range::share")]
    pub stop_loss: f64,
    #[serde(deserialize_with = "range::take_profit")]
    pub take_profit: f64,
    /// Drawdown at which new positions are halved, and at which new entries stop for good.
    #[serde(deserialize_with = "range::share")]
    pub drawdown_halve: f64,
    #[serde(deserialize_with = "range::share")]
    pub drawdown_halt: f64,
}

impl BacktestConfig {
    /// What a full-size order pays per unit traded: the slippage plus the commission as a share
    /// of the order (0.05 % + $1 / $10,000 = 0.06 % by default) — what training charges a trade
    /// under `env.costs = "backtest"`.
    pub fn cost_per_unit(&self) -> f64 {
        self.slippage + self.commission / (self.initial_cash * self.position_size)
    }
}

impl Default for BacktestConfig {
    fn default() -> Self {
        BacktestConfig {
            initial_cash: 100_000.0,
            position_size: 0.10,
            commission: 1.0,
            slippage: 0.0005,
            stop_loss: 0.02,
            take_profit: 0.04,
            drawdown_halve: 0.10,
            drawdown_halt: 0.15,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalkForwardConfig {
    #[serde(deserialize_with = "range::folds")]
    pub folds: usize,
    /// Sharpe standard deviation across folds below which a mostly positive model goes LIVE.
    #[serde(deserialize_with = "range::ratio")]
    pub max_sharpe_std: f64,
}

impl Default for WalkForwardConfig {
    fn default() -> Self {
        WalkForwardConfig {
            folds: 5,
            max_sharpe_std: 1.0,
        }
    }
}

/// Which broker paper trading uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerChoice {
    /// The built-in simulated broker over replayed bars (no keys).
    Sim,
    /// Alpaca paper trading (needs paper keys).
    Alpaca,
}

/// How live bars reach the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BarSource {
    /// Alpaca's market-data websocket (REST polling takes over when it is unavailable).
    Stream,
    /// Poll the REST bars endpoint only.
    Poll,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    pub broker: BrokerChoice,
    /// Permit Alpaca's live (real-money) host. Even then `paper` asks for confirmation.
    pub allow_live: bool,
    /// Stock bar stream: `iex` (free), `sip` (paid), or `test` (the symbol FAKEPACA, at all hours).
    #[serde(deserialize_with = "range::stream_feed")]
    pub feed: String,
    pub bars: BarSource,
    #[serde(deserialize_with = "range::seconds")]
    pub poll_interval_s: u64,
    /// Replay speed of the simulated feed, in bars per second (0 = as fast as possible).
    #[serde(deserialize_with = "range::per_second")]
    pub bars_per_second: f64,
    /// Bars to replay when `--bars` is not given.
    #[serde(deserialize_with = "range::replay_bars")]
    pub replay_bars: usize,
    /// Minimum softmax probability of the chosen action; below it the model holds (seed: 0.40).
    #[serde(deserialize_with = "range::fraction")]
    pub confidence_threshold: f64,
    /// The same for a portfolio model's regime (default 0: act on every choice); validation and
    /// walk-forward grade the model under it too. A 12-way softmax seldom puts 40 % on one
    /// regime, so the seed's 0.40 — set for the 8 sizing actions — would hold almost always.
    #[serde(deserialize_with = "range::fraction")]
    pub portfolio_confidence_threshold: f64,
    /// Share of equity never allocated (seed: 30 %): at most 70 % is ever in positions.
    #[serde(deserialize_with = "range::below_one")]
    pub cash_buffer: f64,
    /// Cap of one position, as a share of equity (seed: 20 %).
    #[serde(deserialize_with = "range::share")]
    pub max_position: f64,
    /// Cap of total gross exposure, as a share of equity (seed: < 80 %).
    #[serde(deserialize_with = "range::share")]
    pub max_exposure: f64,
    /// No new entries for the rest of the day once equity falls this far below the day's start.
    #[serde(deserialize_with = "range::share")]
    pub daily_loss_limit: f64,
    /// No new entry in a symbol within this many seconds (bar time) of its last trade (seed: 60).
    pub cooldown_s: u64,
    /// An order with no terminal update for this long is looked up over REST.
    #[serde(deserialize_with = "range::seconds")]
    pub order_timeout_s: u64,
    /// Trade in the extended sessions (limit + day + extended_hours orders). Off by default.
    pub extended_hours: bool,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            broker: BrokerChoice::Sim,
            allow_live: false,
            feed: "iex".into(),
            bars: BarSource::Stream,
            poll_interval_s: 15,
            bars_per_second: 20.0,
            replay_bars: 500,
            confidence_threshold: 0.40,
            portfolio_confidence_threshold: 0.0,
            cash_buffer: 0.30,
            max_position: 0.20,
            max_exposure: 0.80,
            daily_loss_limit: 0.05,
            cooldown_s: 60,
            order_timeout_s: 30,
            extended_hours: false,
        }
    }
}
