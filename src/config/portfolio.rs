//! `[portfolio]`: one policy over a whole universe (issue 10). The universe, its data range and
//! timeframe, the observation shape, the episode, and the frictions every rebalance pays.

use super::{range, DataSource};
use crate::market::{AssetClass, Symbol, Timeframe};
use anyhow::{anyhow, bail, Result};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The name of the implicit cash asset; no symbol may take it.
pub const CASH: &str = "CASH";

/// The seed's expanded universe (seed 002 §8): three ETFs and nine large caps.
pub const SEED_UNIVERSE: [&str; 12] = [
    "SPY", "QQQ", "IWM", "AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META", "GOOGL", "AMD", "NFLX",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortfolioConfig {
    /// The universe with real data (`data.source` = `alpaca` or `store`). CASH is implicit.
    pub symbols: Vec<String>,
    /// The universe on the synthetic market: correlated equities sharing a common factor
    /// (`synthetic.factor_share`), generated on demand without keys.
    pub synthetic_symbols: Vec<String>,
    /// Bar length. Daily by default: the factor scores are defined over days, and the seed's
    /// portfolio trainer steps once a day.
    pub timeframe: Timeframe,
    /// First and last calendar day of portfolio history (inclusive). Separate from `data.start`
    /// / `data.end`: 256-step daily episodes need years of bars, not the single-symbol year.
    #[serde(deserialize_with = "range::date")]
    pub start: String,
    #[serde(deserialize_with = "range::date")]
    pub end: String,
    /// Days of history behind each factor score (momentum, volatility, Sharpe).
    #[serde(deserialize_with = "range::lookback_days")]
    pub factor_lookback_days: usize,
    /// Bars per observation window (the sequence a GRU encoder reads).
    #[serde(deserialize_with = "range::window")]
    pub window: usize,
    /// Steps per episode before a random restart (seed: 256).
    #[serde(deserialize_with = "range::episode_len")]
    pub episode_len: usize,
    #[serde(deserialize_with = "range::money")]
    pub initial_cash: f64,
    /// Reward = log portfolio return per step × this scale (100: about percent).
    #[serde(deserialize_with = "range::reward_scale")]
    pub reward_scale: f64,
    /// Slippage is drawn per trade, uniformly in [0, slippage_max] of the traded value.
    #[serde(deserialize_with = "range::cost")]
    pub slippage_max: f64,
    /// Bid-ask spread paid on the traded value.
    #[serde(deserialize_with = "range::cost")]
    pub spread: f64,
    /// Square-root market impact: cost = impact · √(trade value / portfolio value) · trade value.
    #[serde(deserialize_with = "range::fraction")]
    pub impact: f64,
}

impl Default for PortfolioConfig {
    fn default() -> Self {
        PortfolioConfig {
            symbols: SEED_UNIVERSE.iter().map(|s| s.to_string()).collect(),
            synthetic_symbols: (1..=12).map(|i| format!("SYNP{i:02}")).collect(),
            timeframe: Timeframe::Day,
            start: "2016-01-04".into(),
            end: "2024-12-31".into(),
            factor_lookback_days: 20,
            window: 32,
            episode_len: 256,
            initial_cash: 100_000.0,
            reward_scale: 100.0,
            slippage_max: 0.0005,
            spread: 0.0002,
            impact: 0.01,
        }
    }
}

impl PortfolioConfig {
    /// The names of the universe that `source` trades on.
    pub fn names(&self, source: DataSource) -> &[String] {
        match source {
            DataSource::Synthetic => &self.synthetic_symbols,
            DataSource::Alpaca | DataSource::Store => &self.symbols,
        }
    }

    /// The universe for `source`, as symbols (`BTC/USD` is crypto, as everywhere).
    pub fn universe(&self, source: DataSource) -> Result<Vec<Symbol>> {
        self.names(source)
            .iter()
            .map(|n| Symbol::from_user(n))
            .collect()
    }

    /// Whether `symbol` is one of the synthetic universe's (generated with the common factor).
    pub fn is_synthetic_member(&self, symbol: &Symbol) -> bool {
        self.synthetic_symbols
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&symbol.name))
    }

    /// `start ..= end` as dates.
    pub fn days(&self) -> Result<(NaiveDate, NaiveDate)> {
        let p = |s: &str, f: &str| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| anyhow!("portfolio.{f} = {s:?} is not a YYYY-MM-DD date"))
        };
        Ok((p(&self.start, "start")?, p(&self.end, "end")?))
    }

    /// The factor lookback in bars of `timeframe`: days × bars per day (a day of 15-minute equity
    /// bars is 26 bars), at least 2.
    pub fn lookback_bars(&self, class: AssetClass) -> usize {
        let per_day = self.timeframe.bars_per_day(class);
        ((self.factor_lookback_days as f64 * per_day).round() as usize).max(2)
    }
}

/// Problems with one universe list: empty, too long, invalid or duplicate names, CASH, or a
/// mix of asset classes (a panel lives on one session calendar).
pub fn check_universe(names: &[String]) -> Result<()> {
    if names.is_empty() {
        bail!("list at least one symbol");
    }
    if names.len() > MAX_SYMBOLS {
        bail!("{} symbols: at most {MAX_SYMBOLS}", names.len());
    }
    let mut seen: Vec<String> = Vec::with_capacity(names.len());
    let mut class = None;
    for n in names {
        let sym = Symbol::from_user(n)?;
        if sym.name.eq_ignore_ascii_case(CASH) {
            bail!("{n:?} is reserved: cash is always part of the portfolio, do not list it");
        }
        let key = sym.name.to_ascii_uppercase();
        if seen.contains(&key) {
            bail!("{n:?} is listed twice");
        }
        seen.push(key);
        match class {
            None => class = Some(sym.class),
            Some(c) if c != sym.class => bail!(
                "{n:?} is {} but earlier symbols are {}: one universe trades on one session calendar",
                sym.class.as_str(),
                c.as_str()
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

/// The largest universe a config may name.
pub const MAX_SYMBOLS: usize = 1000;
