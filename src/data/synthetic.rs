//! The built-in synthetic market: deterministic from a seed, on the real session calendars, with
//! volatility regimes, intraday volume and volatility seasonality, overnight gaps, and a planted
//! persistent drift whose strength (`synthetic.edge`) a policy can learn to exploit.

use crate::config::SyntheticConfig;
use crate::market::{AssetClass, Bar, Calendar, Symbol, Timeframe};
use crate::rng::Rng;
use anyhow::{bail, Result};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

/// Regime volatility multipliers (calm, normal, stressed) and per-bar switching odds.
const REGIME_VOL: [f64; 3] = [0.75, 1.0, 1.6];
const REGIME_STAY: f64 = 0.995;
/// Half-life, in bars, of the planted drift.
const DRIFT_HALFLIFE: f64 = 24.0;

pub const SOURCE: &str = "synthetic";

/// Generates `symbol`'s bars for the calendar days `start..=end` (exchange-local dates).
pub fn generate(
    cfg: &SyntheticConfig,
    symbol: &Symbol,
    tf: Timeframe,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Vec<Bar>> {
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
    let phi = 0.5f64.powf(1.0 / DRIFT_HALFLIFE);
    let drift_noise = (1.0 - phi * phi).sqrt();
    let shock_scale = (1.0 - cfg.edge.powi(2).min(0.9)).sqrt();
    let mut regime = 0usize;
    let mut drift = 0.0f64;
    let mut price = cfg.start_price * (0.6 + 0.8 * rng.uniform());
    let base_volume = match symbol.class {
        AssetClass::Equity => 40_000.0,
        AssetClass::Crypto => 3.0,
    };

    let mut bars = Vec::with_capacity(starts.len());
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
        let ret = sigma * (cfg.edge * drift + shock_scale * rng.normal());
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
        price = close;
    }
    Ok(bars)
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

    /// Single-symbol series are pinned: models, stores and tests made before the portfolio
    /// universe existed must see exactly the same bars.
    #[test]
    fn single_symbol_output_is_pinned() {
        let cfg = SyntheticConfig::default();
        let hash = |sym: Symbol, tf| {
            crate::data::store::hash_bars(
                &generate(&cfg, &sym, tf, d(2024, 1, 2), d(2024, 2, 29)).unwrap(),
            )
        };
        let got = [
            hash(Symbol::equity("SYNA"), Timeframe::Minute(15)),
            hash(Symbol::equity("SYNB"), Timeframe::Day),
            hash(Symbol::crypto("SYNX/USD"), Timeframe::Hour(1)),
        ];
        assert_eq!(
            got,
            [
                "daf835c65ce6975a9fd83292b38cfdebae4c34fe12afc7afab27bda97bdf5830",
                "98bb0eb5df23870290ceb06f8e19de12a87b22c372240f2004d3b4af63ff0bf9",
                "7210bef8f1b7f12c9b93ef58b2ebb761a21e66e6d1a8944b4af9b0dedd30e244",
            ]
        );
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
}
