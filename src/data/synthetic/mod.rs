//! The built-in synthetic market: deterministic from a seed, on the real session calendars, with
//! volatility regimes, intraday volume and volatility seasonality, overnight gaps, and a planted
//! persistent drift whose strength (`synthetic.edge`) a policy can learn to exploit.
//!
//! The drift is a unit-variance AR(1) state `d` with coefficient φ = 0.5^(1/`drift_halflife`);
//! a bar's log return is σ·(a·d + √(1−a²)·ε) with ε ~ N(0, 1), so its variance stays σ² and the
//! lag-1 autocorrelation of returns is a²·φ. `edge` is that autocorrelation: a = √(edge / φ).
//!
//! σ varies by bar (intraday season, bar length, regime) around a scale that [`calibration`]
//! solves so that daily close-to-close returns have a standard deviation of `annual_vol` / √252
//! (crypto: / √365), the drift's autocorrelation within the day and the overnight gap included.

mod calibration;
#[cfg(test)]
mod tests;

use crate::config::SyntheticConfig;
use crate::market::{AssetClass, Bar, Calendar, Symbol, Timeframe};
use crate::rng::Rng;
use anyhow::{bail, Result};
use calibration::{DriftParts, Scale};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

pub const SOURCE: &str = "synthetic";

/// Bars with the generator's hidden drift: what an ideal trader would know (benchmarks only).
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSeries {
    pub bars: Vec<Bar>,
    /// Per bar, the expected log return the drift adds to that bar (σ·a·d): the next bar's
    /// expectation is φ times it, so its sign is the side worth holding at the bar's close.
    pub drift: Vec<f64>,
}

/// Most of a bar's variance the drift may take; the rest stays noise.
const MAX_DRIFT_SHARE: f64 = 0.95;

/// The drift's share of a bar's return (a, with a² of its variance) for a lag-1 return
/// autocorrelation of `edge` and AR coefficient `phi`.
pub fn drift_loading(edge: f64, phi: f64) -> f64 {
    (edge / phi).clamp(0.0, MAX_DRIFT_SHARE).sqrt()
}

/// The largest `edge` a half-life can produce (config validation refuses more).
pub fn max_edge(halflife: f64) -> f64 {
    MAX_DRIFT_SHARE * drift_phi(halflife)
}

/// AR(1) coefficient of the drift for a half-life in bars.
pub fn drift_phi(halflife: f64) -> f64 {
    0.5f64.powf(1.0 / halflife.max(1e-9))
}

/// Generates `symbol`'s bars for the calendar days `start..=end` (exchange-local dates).
pub fn generate(
    cfg: &SyntheticConfig,
    symbol: &Symbol,
    tf: Timeframe,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Vec<Bar>> {
    simulate(cfg, symbol, tf, start, end, None).map(|s| s.bars)
}

/// [`generate`] with the per-bar drift it planted: the same bars, from the same draws.
pub fn generate_with_truth(
    cfg: &SyntheticConfig,
    symbol: &Symbol,
    tf: Timeframe,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<SyntheticSeries> {
    simulate(cfg, symbol, tf, start, end, None)
}

/// The market seed of training path `k` (0-based): derived from the stored market's seed, so a
/// run's paths are fixed by its configuration (a resume redraws the same ones), and never the
/// stored market's own seed, whose path validates and evaluates.
pub fn path_seed(seed: u64, k: usize) -> u64 {
    stream_seed(seed, "training", k)
}

/// The market seed of validation path `k` (0-based): a stream of its own, so no validation path
/// is ever a training path of any generation, nor the stored market.
pub fn validation_path_seed(seed: u64, k: usize) -> u64 {
    stream_seed(seed, "validation", k)
}

/// Path `k` of the `stream` paths derived from `seed`: never `seed` itself.
fn stream_seed(seed: u64, stream: &str, k: usize) -> u64 {
    let s = Rng::derive(seed, &format!("{stream} path #{k}")).next_u64();
    if s == seed {
        s ^ 1
    } else {
        s
    }
}

/// Validation path `k` of `symbol`'s market over the days `start..=end`: [`generate`] with the
/// same parameters and [`validation_path_seed`]'s seed.
pub fn generate_validation_path(
    cfg: &SyntheticConfig,
    symbol: &Symbol,
    tf: Timeframe,
    (start, end): (NaiveDate, NaiveDate),
    k: usize,
) -> Result<Vec<Bar>> {
    generate_seeded(
        cfg,
        validation_path_seed(cfg.seed, k),
        symbol,
        tf,
        start,
        end,
    )
}

/// Training path `k` of `symbol`'s market over the days `start..=end`: [`generate`] with the
/// same parameters and [`path_seed`]'s seed.
pub fn generate_path(
    cfg: &SyntheticConfig,
    symbol: &Symbol,
    tf: Timeframe,
    start: NaiveDate,
    end: NaiveDate,
    k: usize,
) -> Result<Vec<Bar>> {
    generate_seeded(cfg, path_seed(cfg.seed, k), symbol, tf, start, end)
}

/// [`generate`] with `cfg`'s parameters and another seed: one more path of the same market.
fn generate_seeded(
    cfg: &SyntheticConfig,
    seed: u64,
    symbol: &Symbol,
    tf: Timeframe,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Vec<Bar>> {
    let cfg = SyntheticConfig {
        seed,
        ..cfg.clone()
    };
    generate(&cfg, symbol, tf, start, end)
}

/// Generates a portfolio symbol's bars: as [`generate`], plus a common market factor that every
/// portfolio symbol loads on, so the universe co-moves. Each symbol gets its own loading,
/// volatility and price level (derived from the seed and its name, so a factor portfolio has
/// something to rank). The factor's shock and drift innovation at a bar are functions of the seed
/// and the bar's start time only, and its persistent drift a fixed-length sum of recent
/// innovations, so each symbol can be generated alone, over any range, and still share the same
/// factor path.
pub fn generate_correlated(
    cfg: &SyntheticConfig,
    symbol: &Symbol,
    tf: Timeframe,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Vec<Bar>> {
    let model = FactorModel::of(cfg, symbol);
    simulate(cfg, symbol, tf, start, end, Some(model)).map(|s| s.bars)
}

/// A portfolio symbol's volatility relative to `annual_vol`: its daily returns' realised
/// volatility is `annual_vol` × this (0.6–1.5).
pub fn portfolio_vol_mult(cfg: &SyntheticConfig, symbol: &Symbol) -> f64 {
    FactorModel::of(cfg, symbol).vol_mult
}

/// A portfolio symbol's exposure to the common factor.
#[derive(Debug, Clone, Copy)]
struct FactorModel {
    /// Correlation of the symbol's shock with the factor's.
    loading: f64,
    /// √(1 − loading²): the idiosyncratic share, so total volatility is unchanged.
    idio: f64,
    /// Scales `annual_vol` (and the overnight gap) for this symbol (0.6–1.5×): its realised
    /// volatility is `annual_vol` × `vol_mult`.
    vol_mult: f64,
}

impl FactorModel {
    /// `symbol`'s exposure, derived from the seed and its name.
    fn of(cfg: &SyntheticConfig, symbol: &Symbol) -> Self {
        let mut p = Rng::derive(cfg.seed, &format!("{}#factor", symbol.name));
        let spread = 0.7 + 0.6 * p.uniform();
        let loading = (cfg.factor_share.sqrt() * spread).min(0.95);
        FactorModel {
            loading,
            idio: (1.0 - loading * loading).sqrt(),
            vol_mult: 0.6 + 0.9 * p.uniform(),
        }
    }
}

/// Half-life, in bars, of the common factor's drift. Fixed (not `synthetic.drift_halflife`): the
/// factor's drift is recomputed from a tail of [`FACTOR_TAIL`] innovations at every bar.
const FACTOR_HALFLIFE: f64 = 24.0;

/// Bars of factor history behind its drift: the AR(1) weights φ^k of the drift's half-life have
/// fallen to 3 % by then.
const FACTOR_TAIL: usize = 5 * FACTOR_HALFLIFE as usize;

/// The factor's standard-normal (shock, drift innovation) at the bar starting at `ts`:
/// independent, as the single-symbol drift's are, so the factor's own return autocorrelation is
/// the drift's alone.
fn factor_draws(seed: u64, ts: DateTime<Utc>) -> (f64, f64) {
    let key = (ts.timestamp() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = Rng::new(seed ^ key ^ 0x5F4D_4641_4354_4F52);
    (rng.normal(), rng.normal())
}

/// The factor at each of `starts` as (drift, shock): the shock at the bar and a unit-variance
/// drift made of the last [`FACTOR_TAIL`] bars' innovations (this bar's included) with AR(1)
/// weights. `earlier` holds the calendar's bar starts before `starts[0]`, oldest first.
fn factor_path(seed: u64, earlier: &[DateTime<Utc>], starts: &[DateTime<Utc>]) -> Vec<(f64, f64)> {
    let phi = drift_phi(FACTOR_HALFLIFE);
    let norm = ((1.0 - phi * phi) / (1.0 - phi.powi(2 * FACTOR_TAIL as i32))).sqrt();
    let all: Vec<(f64, f64)> = earlier
        .iter()
        .chain(starts)
        .map(|&ts| factor_draws(seed, ts))
        .collect();
    (0..starts.len())
        .map(|k| {
            let at = earlier.len() + k;
            let drift: f64 = (0..FACTOR_TAIL.min(at + 1))
                .map(|j| phi.powi(j as i32) * all[at - j].1)
                .sum();
            (drift * norm, all[at].0)
        })
        .collect()
}

/// Bar starts of the exchange-local days `start..=end`.
fn range_starts(
    cal: Calendar,
    tf: Timeframe,
    start: NaiveDate,
    end: NaiveDate,
) -> Vec<DateTime<Utc>> {
    cal.bar_starts(
        tf,
        at_midnight(start - Duration::days(1)),
        at_midnight(end + Duration::days(2)),
    )
    .into_iter()
    .filter(|t| (start..=end).contains(&cal.local_date(*t)))
    .collect()
}

fn at_midnight(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// The factor's (drift, shock) at each of `starts`, from the calendar's bars before `start`.
fn factor_for(
    seed: u64,
    class: AssetClass,
    tf: Timeframe,
    start: NaiveDate,
    starts: &[DateTime<Utc>],
) -> Vec<(f64, f64)> {
    let cal = Calendar::for_class(class);
    // Enough calendar days back for FACTOR_TAIL bars, weekends and holidays included.
    let days = (FACTOR_TAIL as f64 / tf.bars_per_day(class)).ceil() as i64 * 2 + 10;
    let mut earlier: Vec<DateTime<Utc>> = cal
        .bar_starts(
            tf,
            at_midnight(start - Duration::days(days)),
            at_midnight(start),
        )
        .into_iter()
        .filter(|t| cal.local_date(*t) < start)
        .collect();
    earlier.drain(..earlier.len().saturating_sub(FACTOR_TAIL));
    factor_path(seed, &earlier, starts)
}

/// The drift-carrying parts of a unit bar return, for the calibration: the symbol's own drift
/// and, for a portfolio symbol, the factor's.
fn drift_parts(cfg: &SyntheticConfig, factor: Option<FactorModel>) -> DriftParts {
    let phi = drift_phi(cfg.drift_halflife);
    let own = drift_loading(cfg.edge, phi).powi(2);
    match factor {
        None => [(own, phi), (0.0, 0.0)],
        Some(f) => {
            // The factor's drift is a truncated AR(1); at the lags inside a session the
            // truncation changes its autocorrelation by under 1 %.
            let f_phi = drift_phi(FACTOR_HALFLIFE);
            let market = drift_loading(cfg.edge, f_phi).powi(2);
            [
                (f.loading.powi(2) * market, f_phi),
                (f.idio.powi(2) * own, phi),
            ]
        }
    }
}

fn simulate(
    cfg: &SyntheticConfig,
    symbol: &Symbol,
    tf: Timeframe,
    start: NaiveDate,
    end: NaiveDate,
    factor: Option<FactorModel>,
) -> Result<SyntheticSeries> {
    if end < start {
        bail!("synthetic market: end {end} is before start {start}");
    }
    let cal = Calendar::for_class(symbol.class);
    let starts = range_starts(cal, tf, start, end);
    let path = match factor {
        None => Vec::new(),
        Some(_) => factor_for(cfg.seed, symbol.class, tf, start, &starts),
    };
    let vol_mult = factor.map_or(1.0, |f| f.vol_mult);
    let scale = calibration::calibrate(
        cfg.annual_vol * vol_mult,
        cfg.gap_vol * vol_mult,
        symbol.class,
        tf,
        &drift_parts(cfg, factor),
    );
    let mut walk = Walk::new(cfg, symbol, tf, factor, scale);
    let mut bars = Vec::with_capacity(starts.len());
    let mut truth = Vec::with_capacity(starts.len());
    let mut session: Option<(NaiveDate, DateTime<Utc>)> = None;
    for (k, ts) in starts.into_iter().enumerate() {
        let day = cal.local_date(ts);
        let new_day = session.is_some_and(|(d, _)| d != day);
        let close = match session {
            Some((d, close)) if d == day => close,
            _ => {
                let close = cal.session(day).map_or(ts + tf.duration(), |s| s.close);
                session = Some((day, close));
                close
            }
        };
        // A session's last bar may be cut short by the close; a day bar spans the session.
        let minutes = tf.minutes().min((close - ts).num_minutes()) as f64;
        let (bar, mean) = walk.step(ts, cal.local_clock(ts).0, minutes, new_day, path.get(k));
        bars.push(bar);
        truth.push(mean);
    }
    Ok(SyntheticSeries { bars, drift: truth })
}

/// A symbol's generator state as it walks its bars.
struct Walk {
    rng: Rng,
    class: AssetClass,
    scale: Scale,
    /// Odds per bar that the regime is not redrawn.
    stay: f64,
    phi: f64,
    /// √(1 − φ²): keeps the drift at unit variance.
    drift_noise: f64,
    /// The drift's loading a, and √(1 − a²) on the noise, so a unit return has unit variance.
    loading: f64,
    shock_scale: f64,
    factor: Option<FactorModel>,
    /// The same for the factor, which carries the same edge over its own (fixed) half-life.
    factor_loading: f64,
    factor_shock_scale: f64,
    regime: usize,
    drift: f64,
    price: f64,
    base_volume: f64,
}

impl Walk {
    fn new(
        cfg: &SyntheticConfig,
        symbol: &Symbol,
        tf: Timeframe,
        factor: Option<FactorModel>,
        scale: Scale,
    ) -> Self {
        let mut rng = Rng::derive(cfg.seed, &symbol.name);
        let u = rng.uniform();
        let price = match factor {
            None => cfg.start_price * (0.6 + 0.8 * u),
            // A wide spread of price levels (¼× to 4×) gives the size factor something to rank.
            Some(_) => cfg.start_price * 4f64.powf(2.0 * u - 1.0),
        };
        // Start in the stationary state (regimes equally likely, unit-variance drift), so the
        // first weeks are as volatile as the rest.
        let regime = rng.below(calibration::REGIMES);
        let drift = rng.normal();
        let phi = drift_phi(cfg.drift_halflife);
        let loading = drift_loading(cfg.edge, phi);
        let factor_loading = drift_loading(cfg.edge, drift_phi(FACTOR_HALFLIFE));
        Walk {
            rng,
            class: symbol.class,
            scale,
            stay: calibration::regime_stay(symbol.class, tf),
            phi,
            drift_noise: (1.0 - phi * phi).sqrt(),
            loading,
            shock_scale: (1.0 - loading * loading).sqrt(),
            factor,
            factor_loading,
            factor_shock_scale: (1.0 - factor_loading * factor_loading).sqrt(),
            regime,
            drift,
            price,
            base_volume: match symbol.class {
                AssetClass::Equity => 40_000.0,
                AssetClass::Crypto => 3.0,
            },
        }
    }

    /// The bar starting at `ts`, `minute` local minutes after midnight and `minutes` long, and
    /// the expected log return the drift adds to it. `market` is the factor's (drift, shock).
    fn step(
        &mut self,
        ts: DateTime<Utc>,
        minute: u32,
        minutes: f64,
        new_day: bool,
        market: Option<&(f64, f64)>,
    ) -> (Bar, f64) {
        if self.rng.uniform() > self.stay {
            self.regime = self.rng.below(calibration::REGIMES);
        }
        let middle = minute as f64 + minutes / 2.0;
        let season = calibration::intraday_season(self.class, middle);
        let regime_vol = calibration::regime_vol(self.regime);
        let sigma =
            self.scale.per_bar * calibration::bar_weight(self.class, middle, minutes) * regime_vol;
        self.drift = self.phi * self.drift + self.drift_noise * self.rng.normal();

        let mut open = self.price;
        if self.class == AssetClass::Equity && new_day {
            open *= (self.scale.gap * self.rng.normal()).exp();
        }
        let own_mean = self.loading * self.drift;
        let own = own_mean + self.shock_scale * self.rng.normal();
        let (mean, ret) = match (self.factor, market) {
            (Some(f), Some(&(f_drift, f_shock))) => {
                let market_mean = self.factor_loading * f_drift;
                let market = market_mean + self.factor_shock_scale * f_shock;
                (
                    sigma * (f.loading * market_mean + f.idio * own_mean),
                    sigma * (f.loading * market + f.idio * own),
                )
            }
            _ => (sigma * own_mean, sigma * own),
        };
        let close = open * ret.exp();
        let high = open.max(close) * (0.5 * sigma * self.rng.normal().abs()).exp();
        let low = open.min(close) * (-0.5 * sigma * self.rng.normal().abs()).exp();
        let mut volume =
            self.base_volume * season * season * regime_vol * (0.4 * self.rng.normal()).exp();
        if self.class == AssetClass::Equity {
            volume = volume.round().max(1.0);
        }
        self.price = close;
        let bar = Bar {
            ts,
            open,
            high,
            low,
            close,
            volume,
        };
        (bar, mean)
    }
}
