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

/// Generates a portfolio symbol's bars: as [`generate`], plus a common market factor that every
/// portfolio symbol loads on, so the universe co-moves. Each symbol gets its own loading,
/// volatility and price level (derived from the seed and its name, so a factor portfolio has
/// something to rank). The factor's shock at a bar is a function of the seed and the bar's start
/// time only, and its persistent drift a fixed-length sum of earlier bars' shocks, so each symbol
/// can be generated alone, over any range, and still share the same factor path.
pub fn generate_correlated(
    cfg: &SyntheticConfig,
    symbol: &Symbol,
    tf: Timeframe,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Vec<Bar>> {
    let mut p = Rng::derive(cfg.seed, &format!("{}#factor", symbol.name));
    let spread = 0.7 + 0.6 * p.uniform();
    let loading = (cfg.factor_share.sqrt() * spread).min(0.95);
    let model = FactorModel {
        loading,
        idio: (1.0 - loading * loading).sqrt(),
        vol_mult: 0.6 + 0.9 * p.uniform(),
    };
    simulate(cfg, symbol, tf, start, end, Some(model)).map(|s| s.bars)
}

/// A portfolio symbol's exposure to the common factor.
#[derive(Debug, Clone, Copy)]
struct FactorModel {
    /// Correlation of the symbol's shock with the factor's.
    loading: f64,
    /// √(1 − loading²): the idiosyncratic share, so total volatility is unchanged.
    idio: f64,
    /// Scales `annual_vol` for this symbol (0.6–1.5×).
    vol_mult: f64,
}

/// Half-life, in bars, of the common factor's drift. Fixed (not `synthetic.drift_halflife`): the
/// factor's drift is recomputed from a tail of [`FACTOR_TAIL`] shocks at every bar.
const FACTOR_HALFLIFE: f64 = 24.0;

/// Bars of factor history behind its drift: the AR(1) weights φ^k of the drift's half-life have
/// fallen to 3 % by then.
const FACTOR_TAIL: usize = 5 * FACTOR_HALFLIFE as usize;

/// The factor's standard-normal shock at the bar starting at `ts`.
fn factor_shock(seed: u64, ts: DateTime<Utc>) -> f64 {
    let key = (ts.timestamp() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Rng::new(seed ^ key ^ 0x5F4D_4641_4354_4F52).normal()
}

/// The factor at each of `starts` as (drift, shock): the shock at the bar and a unit-variance
/// drift made of the previous [`FACTOR_TAIL`] bars' shocks with AR(1) weights. `earlier` holds
/// the calendar's bar starts before `starts[0]`, oldest first.
fn factor_path(seed: u64, earlier: &[DateTime<Utc>], starts: &[DateTime<Utc>]) -> Vec<(f64, f64)> {
    let phi = drift_phi(FACTOR_HALFLIFE);
    let norm = ((1.0 - phi * phi) / (1.0 - phi.powi(2 * FACTOR_TAIL as i32))).sqrt();
    let all: Vec<f64> = earlier
        .iter()
        .chain(starts)
        .map(|&ts| factor_shock(seed, ts))
        .collect();
    (0..starts.len())
        .map(|k| {
            let at = earlier.len() + k;
            let drift: f64 = (1..=FACTOR_TAIL.min(at))
                .map(|j| phi.powi(j as i32 - 1) * all[at - j])
                .sum();
            (drift * norm, all[at])
        })
        .collect()
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
    let at_midnight =
        |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
    let from = at_midnight(start - Duration::days(1));
    let to = at_midnight(end + Duration::days(2));
    let starts: Vec<DateTime<Utc>> = cal
        .bar_starts(tf, from, to)
        .into_iter()
        .filter(|t| {
            let d = cal.local_date(*t);
            d >= start && d <= end
        })
        .collect();
    let path = match factor {
        None => Vec::new(),
        Some(_) => {
            // Enough calendar days back for FACTOR_TAIL bars, weekends and holidays included.
            let days = (FACTOR_TAIL as f64 / tf.bars_per_day(symbol.class)).ceil() as i64 * 2 + 10;
            let mut earlier: Vec<DateTime<Utc>> = cal
                .bar_starts(tf, at_midnight(start - Duration::days(days)), to)
                .into_iter()
                .filter(|t| cal.local_date(*t) < start)
                .collect();
            earlier.drain(..earlier.len().saturating_sub(FACTOR_TAIL));
            factor_path(cfg.seed, &earlier, &starts)
        }
    };

    let mut rng = Rng::derive(cfg.seed, &symbol.name);
    let vol_mult = factor.map_or(1.0, |f| f.vol_mult);
    let per_bar_vol = cfg.annual_vol * vol_mult / tf.bars_per_year(symbol.class).sqrt();
    let phi = drift_phi(cfg.drift_halflife);
    let drift_noise = (1.0 - phi * phi).sqrt();
    let loading = drift_loading(cfg.edge, phi);
    let shock_scale = (1.0 - loading * loading).sqrt();
    // The factor carries the same edge over its own (fixed) half-life.
    let factor_loading = drift_loading(cfg.edge, drift_phi(FACTOR_HALFLIFE));
    let factor_shock_scale = (1.0 - factor_loading * factor_loading).sqrt();
    let mut regime = 0usize;
    let mut drift = 0.0f64;
    let u = rng.uniform();
    let mut price = match factor {
        None => cfg.start_price * (0.6 + 0.8 * u),
        // A wide spread of price levels (¼× to 4×) gives the size factor something to rank.
        Some(_) => cfg.start_price * 4f64.powf(2.0 * u - 1.0),
    };
    let base_volume = match symbol.class {
        AssetClass::Equity => 40_000.0,
        AssetClass::Crypto => 3.0,
    };

    let mut bars = Vec::with_capacity(starts.len());
    let mut truth = Vec::with_capacity(starts.len());
    let mut prev_day: Option<NaiveDate> = None;
    for (k, ts) in starts.into_iter().enumerate() {
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
        let own_mean = loading * drift;
        let own = own_mean + shock_scale * rng.normal();
        let (mean, ret) = match factor {
            None => (sigma * own_mean, sigma * own),
            Some(f) => {
                let (f_drift, f_shock) = path[k];
                let market_mean = factor_loading * f_drift;
                let market = market_mean + factor_shock_scale * f_shock;
                (
                    sigma * (f.loading * market_mean + f.idio * own_mean),
                    sigma * (f.loading * market + f.idio * own),
                )
            }
        };
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

    /// Single-symbol series are pinned: models, stores and tests made before the portfolio
    /// universe existed must see exactly the same bars. (Changed once, deliberately, when `edge`
    /// became the lag-1 return autocorrelation it names: before, the drift's share was `edge`
    /// itself, an autocorrelation of edge²·φ ≈ 0.01 that no rule could trade after costs.)
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
                "b0b81428f501e3e29b7f70b60516eac644d369704955dd490e7499d191e10506",
                "2f58411ffcf6139ecb6ed7054c2c2322ab31f3bd5a8245c2d9e1a88d1b9204ab",
                "f46035e26d8f20fbbcd654c17446e9ea4d9e07d1cf560ece73f91eb6a2d7cc84",
            ]
        );
    }

    fn log_returns(bars: &[Bar]) -> Vec<f64> {
        bars.windows(2)
            .map(|w| (w[1].close / w[0].close).ln())
            .collect()
    }

    fn correlation(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }

    #[test]
    fn portfolio_symbols_co_move_through_a_common_factor() {
        let cfg = SyntheticConfig::default();
        let (from, to) = (d(2022, 1, 3), d(2023, 12, 29));
        let gen = |name: &str| {
            generate_correlated(&cfg, &Symbol::equity(name), Timeframe::Day, from, to).unwrap()
        };
        let names = ["SYNP01", "SYNP02", "SYNP03", "SYNP04", "SYNP05", "SYNP06"];
        let series: Vec<Vec<Bar>> = names.iter().map(|n| gen(n)).collect();
        assert_eq!(series[0], gen("SYNP01"), "deterministic");
        assert!(series.iter().flatten().all(Bar::is_consistent));
        let rets: Vec<Vec<f64>> = series.iter().map(|b| log_returns(b)).collect();
        assert!(rets
            .iter()
            .all(|r| r.len() == rets[0].len() && r.len() > 450));
        let mut sum = 0.0;
        let mut pairs = 0.0;
        for i in 0..rets.len() {
            for j in i + 1..rets.len() {
                let c = correlation(&rets[i], &rets[j]);
                assert!(c > 0.1, "{} vs {}: correlation {c}", names[i], names[j]);
                sum += c;
                pairs += 1.0;
            }
        }
        assert!(
            sum / pairs > 0.25,
            "mean pairwise correlation {}",
            sum / pairs
        );
        // The single-symbol market has no common factor.
        let a = log_returns(
            &generate(&cfg, &Symbol::equity("SYNA"), Timeframe::Day, from, to).unwrap(),
        );
        let b = log_returns(
            &generate(&cfg, &Symbol::equity("SYNB"), Timeframe::Day, from, to).unwrap(),
        );
        assert!(correlation(&a, &b).abs() < 0.12, "{}", correlation(&a, &b));
        // Without a factor share the portfolio symbols are independent too.
        let indep = SyntheticConfig {
            factor_share: 0.0,
            ..Default::default()
        };
        let g = |n: &str| {
            log_returns(
                &generate_correlated(&indep, &Symbol::equity(n), Timeframe::Day, from, to).unwrap(),
            )
        };
        assert!(correlation(&g("SYNP01"), &g("SYNP02")).abs() < 0.12);
        // Symbols differ in price level and volatility, so factor ranks are not ties.
        let first: Vec<f64> = series.iter().map(|b| b[0].open).collect();
        let spread = first.iter().cloned().fold(0.0, f64::max)
            / first.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread > 1.5, "{first:?}");
    }

    #[test]
    fn the_factor_path_depends_on_bar_times_not_on_the_range() {
        let cal = Calendar::Nyse;
        let t = |y, m, dd| Utc.from_utc_datetime(&d(y, m, dd).and_hms_opt(0, 0, 0).unwrap());
        let all = cal.bar_starts(Timeframe::Day, t(2023, 1, 1), t(2023, 12, 31));
        let (head, tail) = all.split_at(150);
        let whole = factor_path(7, &head[..30], &all[30..]);
        let later = factor_path(7, &head[150 - FACTOR_TAIL..], tail);
        assert_eq!(&whole[120..], &later[..]);
        assert_ne!(factor_path(8, &head[..30], &all[30..]), whole, "seeded");
        // Unit variance, for the drift and the shock alike.
        let var = |xs: Vec<f64>| xs.iter().map(|x| x * x).sum::<f64>() / xs.len() as f64;
        let long = cal.bar_starts(Timeframe::Minute(15), t(2022, 1, 1), t(2023, 12, 31));
        let p = factor_path(7, &long[..FACTOR_TAIL], &long[FACTOR_TAIL..]);
        let (vd, vs) = (
            var(p.iter().map(|x| x.0).collect()),
            var(p.iter().map(|x| x.1).collect()),
        );
        assert!(
            (vd - 1.0).abs() < 0.25 && (vs - 1.0).abs() < 0.05,
            "{vd} {vs}"
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
