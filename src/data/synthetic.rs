//! The built-in synthetic market: deterministic from a seed, on the real session calendars, with
//! volatility regimes, intraday volume and volatility seasonality, overnight gaps, and a planted
//! persistent drift whose strength (`synthetic.edge`) a policy can learn to exploit.
//!
//! The drift is a unit-variance AR(1) state `d` with coefficient φ = 0.5^(1/`drift_halflife`);
//! a bar's log return is σ·(a·d + √(1−a²)·ε) with ε ~ N(0, 1), so its variance stays σ² and the
//! lag-1 autocorrelation of returns is a²·φ. `edge` is that autocorrelation: a = √(edge / φ).

use crate::config::SyntheticConfig;
use crate::market::{AssetClass, Bar, Calendar, Symbol, Timeframe};
use crate::rng::Rng;
use anyhow::{bail, Result};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

/// Regime volatility multipliers (calm, normal, stressed) and per-bar switching odds.
const REGIME_VOL: [f64; 3] = [0.75, 1.0, 1.6];
const REGIME_STAY: f64 = 0.995;

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
    generate_with_truth(cfg, symbol, tf, start, end).map(|s| s.bars)
}

/// [`generate`] with the per-bar drift it planted: the same bars, from the same draws.
pub fn generate_with_truth(
    cfg: &SyntheticConfig,
    symbol: &Symbol,
    tf: Timeframe,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<SyntheticSeries> {
    if end < start {
        bail!("synthetic market: end {end} is before start {start}");
    }
    let cal = Calendar::for_class(symbol.class);
    let from = Utc.from_utc_datetime(
        &(start - Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default(),
    );
    let to = Utc.from_utc_datetime(
        &(end + Duration::days(2))
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default(),
    );
    let starts: Vec<DateTime<Utc>> = cal
        .bar_starts(tf, from, to)
        .into_iter()
        .filter(|t| {
            let d = cal.local_date(*t);
            d >= start && d <= end
        })
        .collect();

    let mut rng = Rng::derive(cfg.seed, &symbol.name);
    let per_bar_vol = cfg.annual_vol / tf.bars_per_year(symbol.class).sqrt();
    let phi = drift_phi(cfg.drift_halflife);
    let drift_noise = (1.0 - phi * phi).sqrt();
    let loading = drift_loading(cfg.edge, phi);
    let shock_scale = (1.0 - loading * loading).sqrt();
    let mut regime = 0usize;
    let mut drift = 0.0f64;
    let mut price = cfg.start_price * (0.6 + 0.8 * rng.uniform());
    let base_volume = match symbol.class {
        AssetClass::Equity => 40_000.0,
        AssetClass::Crypto => 3.0,
    };

    let mut bars = Vec::with_capacity(starts.len());
    let mut truth = Vec::with_capacity(starts.len());
    let mut prev_day: Option<NaiveDate> = None;
    for ts in starts {
        if rng.uniform() > REGIME_STAY {
            regime = rng.below(3);
        }
        let (minute, _) = cal.local_clock(ts);
        let season = intraday_season(symbol.class, minute);
        let sigma = per_bar_vol * REGIME_VOL[regime] * season;
        drift = phi * drift + drift_noise * rng.normal();

        let day = cal.local_date(ts);
        let mut open = price;
        if symbol.class == AssetClass::Equity && prev_day.is_some_and(|d| d != day) {
            open *= (cfg.gap_vol * rng.normal()).exp();
        }
        prev_day = Some(day);
        // The drift adds variance; scale the shock so total volatility stays at `sigma`.
        let mean = sigma * loading * drift;
        let ret = mean + sigma * shock_scale * rng.normal();
        let close = open * ret.exp();
        let high = open.max(close) * (0.5 * sigma * rng.normal().abs()).exp();
        let low = open.min(close) * (-0.5 * sigma * rng.normal().abs()).exp();
        let mut volume =
            base_volume * season * season * REGIME_VOL[regime] * (0.4 * rng.normal()).exp();
        if symbol.class == AssetClass::Equity {
            volume = volume.round().max(1.0);
        }
        bars.push(Bar {
            ts,
            open,
            high,
            low,
            close,
            volume,
        });
        truth.push(mean);
        price = close;
    }
    Ok(SyntheticSeries { bars, drift: truth })
}

/// U-shaped intraday activity for equities (busy open and close); a mild day/night cycle in UTC
/// for crypto.
fn intraday_season(class: AssetClass, minute_of_day: u32) -> f64 {
    match class {
        AssetClass::Equity => {
            // Mean over the session is 1, so `annual_vol` keeps its meaning.
            let u = ((minute_of_day as f64 - 570.0) / 390.0).clamp(0.0, 1.0);
            (0.75 + (2.0 * u - 1.0).powi(2)) / (0.75 + 1.0 / 3.0)
        }
        AssetClass::Crypto => {
            let phase = minute_of_day as f64 / 1440.0 * std::f64::consts::TAU;
            1.0 + 0.25 * (phase - 2.5).sin()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, dd: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, dd).unwrap()
    }

    #[test]
    fn deterministic_consistent_and_on_calendar() {
        let cfg = SyntheticConfig::default();
        let sym = Symbol::equity("SYNA");
        let tf = Timeframe::Minute(15);
        let a = generate(&cfg, &sym, tf, d(2024, 11, 25), d(2024, 12, 3)).unwrap();
        let b = generate(&cfg, &sym, tf, d(2024, 11, 25), d(2024, 12, 3)).unwrap();
        assert_eq!(a, b);
        // Mon–Wed full (3×26), Thanksgiving closed, Friday half day (14), Mon–Tue (2×26).
        assert_eq!(a.len(), 3 * 26 + 14 + 2 * 26);
        assert!(a.iter().all(Bar::is_consistent));
        assert!(a.windows(2).all(|w| w[0].ts < w[1].ts));
        let other = generate(
            &cfg,
            &Symbol::equity("SYNB"),
            tf,
            d(2024, 11, 25),
            d(2024, 12, 3),
        )
        .unwrap();
        assert_ne!(a[10].close, other[10].close);
    }

    #[test]
    fn crypto_runs_all_week_with_fractional_volume() {
        let cfg = SyntheticConfig::default();
        let bars = generate(
            &cfg,
            &Symbol::crypto("SYNX/USD"),
            Timeframe::Minute(15),
            d(2024, 3, 16),
            d(2024, 3, 17),
        )
        .unwrap();
        assert_eq!(bars.len(), 192);
        assert!(bars.iter().any(|b| b.volume.fract() != 0.0));
    }

    #[test]
    fn planted_edge_shows_as_return_persistence() {
        // With a strong edge, the sign of the last 8 bars' return predicts the next bar's more
        // often than chance; with none it does not.
        let score = |edge: f64| {
            let cfg = SyntheticConfig {
                edge,
                ..Default::default()
            };
            let bars = generate(
                &cfg,
                &Symbol::crypto("SYNX/USD"),
                Timeframe::Minute(15),
                d(2024, 1, 1),
                d(2024, 6, 30),
            )
            .unwrap();
            let c: Vec<f64> = bars.iter().map(|b| b.close).collect();
            let (mut hit, mut n) = (0.0, 0.0);
            for t in 8..c.len() - 1 {
                let past = c[t] / c[t - 8] - 1.0;
                let next = c[t + 1] / c[t] - 1.0;
                hit += f64::from(past.signum() == next.signum());
                n += 1.0;
            }
            hit / n
        };
        assert!(score(0.4) > 0.55, "{}", score(0.4));
        assert!((score(0.0) - 0.5).abs() < 0.02, "{}", score(0.0));
    }

    fn crypto_year(cfg: &SyntheticConfig) -> SyntheticSeries {
        // Crypto: no overnight gaps, so close-to-close returns are the generator's own.
        generate_with_truth(
            cfg,
            &Symbol::crypto("SYNX/USD"),
            Timeframe::Minute(15),
            d(2024, 1, 1),
            d(2024, 12, 31),
        )
        .unwrap()
    }

    fn lag1_autocorrelation(bars: &[Bar]) -> f64 {
        let r: Vec<f64> = bars
            .windows(2)
            .map(|w| (w[1].close / w[0].close).ln())
            .collect();
        let m = r.iter().sum::<f64>() / r.len() as f64;
        let var: f64 = r.iter().map(|x| (x - m).powi(2)).sum();
        let cov: f64 = r.windows(2).map(|w| (w[0] - m) * (w[1] - m)).sum();
        cov / var
    }

    #[test]
    fn edge_is_the_lag1_autocorrelation_of_returns() {
        for (edge, halflife) in [
            (0.0, 24.0),
            (0.05, 24.0),
            (0.10, 24.0),
            (0.10, 96.0),
            (0.3, 24.0),
        ] {
            let cfg = SyntheticConfig {
                edge,
                drift_halflife: halflife,
                ..Default::default()
            };
            let ac = lag1_autocorrelation(&crypto_year(&cfg).bars);
            assert!(
                (ac - edge).abs() < 0.02,
                "edge {edge}, half-life {halflife}: autocorrelation {ac:.4}"
            );
        }
    }

    #[test]
    fn the_truth_is_the_drift_behind_the_same_bars() {
        let cfg = SyntheticConfig::default();
        let s = crypto_year(&cfg);
        let sym = Symbol::crypto("SYNX/USD");
        let tf = Timeframe::Minute(15);
        let plain = generate(&cfg, &sym, tf, d(2024, 1, 1), d(2024, 12, 31)).unwrap();
        assert_eq!(s.bars, plain, "the truth must not change the bars");
        assert_eq!(s.drift.len(), s.bars.len());
        // The next bar's return has the sign of the drift at the decision bar, on average.
        let (mut up, mut down) = (Vec::new(), Vec::new());
        for t in 0..s.bars.len() - 1 {
            let next = (s.bars[t + 1].close / s.bars[t].close).ln();
            if s.drift[t] > 0.0 {
                up.push(next)
            } else {
                down.push(next)
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(
            mean(&up) > 0.0 && mean(&down) < 0.0,
            "{} {}",
            mean(&up),
            mean(&down)
        );
        // A random walk plants nothing.
        let none = crypto_year(&SyntheticConfig {
            edge: 0.0,
            ..Default::default()
        });
        assert!(none.drift.iter().all(|&m| m == 0.0));
    }

    #[test]
    fn the_strongest_edge_a_half_life_allows() {
        // φ = 0.5 for a one-bar half-life: at most 0.95 × 0.5 of autocorrelation.
        assert!((max_edge(1.0) - 0.475).abs() < 1e-12);
        assert!(max_edge(24.0) > 0.9);
        assert!((drift_loading(0.1, 0.5) - 0.2f64.sqrt()).abs() < 1e-12);
    }
}
