//! Range checks run while a config file is parsed (`#[serde(deserialize_with = "…")]` on each
//! numeric field), so an out-of-range value fails with the file, line and field, exactly like a
//! syntax error: toml points at the offending value. Checks that relate several fields live in
//! `load::validate`.

use serde::de::{Deserialize, Deserializer, Error};
use std::fmt::Display;

fn check<'de, D, T>(d: D, ok: impl Fn(&T) -> bool, what: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Display,
{
    let v = T::deserialize(d)?;
    if ok(&v) {
        Ok(v)
    } else {
        let shown = crate::jsonl::clip(&v.to_string(), 40);
        Err(D::Error::custom(format!("{shown} is out of range: {what}")))
    }
}

macro_rules! bounded {
    ($($name:ident: $t:ty = $ok:expr, $what:literal;)*) => {$(
        #[doc = concat!("Accepts a value that is ", $what, ".")]
        pub fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
            check::<D, $t>(d, $ok, concat!("it must be ", $what))
        }
    )*};
}

/// More drawn paths than this are refused outright (each costs its generation, features and
/// memory; the memory estimate refuses fewer on a small machine).
pub const MAX_TRAIN_PATHS: usize = 1024;

bounded! {
    fraction: f64 = |v: &f64| (0.0..=1.0).contains(v), "between 0 and 1";
    open_fraction: f64 = |v: &f64| *v > 0.0 && *v < 1.0, "strictly between 0 and 1";
    share: f64 = |v: &f64| *v > 0.0 && *v <= 1.0, "in (0, 1]";
    below_one: f64 = |v: &f64| (0.0..1.0).contains(v), "in [0, 1)";
    cost: f64 = |v: &f64| (0.0..=0.1).contains(v), "a cost between 0 and 0.1 (10 %)";
    discount: f64 = |v: &f64| *v > 0.0 && *v <= 1.0, "in (0, 1]";
    money: f64 = |v: &f64| v.is_finite() && *v >= 1.0 && *v <= 1e12, "an amount between 1 and 1e12";
    price: f64 = |v: &f64| v.is_finite() && *v > 0.0 && *v <= 1e7, "a positive price up to 1e7";
    volatility: f64 = |v: &f64| v.is_finite() && *v > 0.0 && *v <= 5.0, "in (0, 5] (annualised, 0.25 = 25 %)";
    gap: f64 = |v: &f64| (0.0..=0.2).contains(v), "between 0 and 0.2 (20 % per night)";
    edge: f64 = |v: &f64| (0.0..=0.9).contains(v), "between 0 and 0.9";
    halflife: f64 = |v: &f64| (1.0..=10_000.0).contains(v), "between 1 and 10000 bars";
    take_profit: f64 = |v: &f64| *v > 0.0 && *v <= 10.0, "in (0, 10]";
    factor: f64 = |v: &f64| v.is_finite() && *v >= 1.0 && *v <= 100.0, "a factor between 1 and 100";
    window: usize = |v: &usize| (2..=1000).contains(v), "between 2 and 1000 bars";
    lookback_days: usize = |v: &usize| (2..=250).contains(v), "between 2 and 250 days";
    folds: usize = |v: &usize| (1..=100).contains(v), "between 1 and 100";
    train_paths: usize = |v: &usize| (1..=MAX_TRAIN_PATHS).contains(v), "between 1 and 1024 paths";
    redraw_every: usize = |v: &usize| *v <= 1_000_000, "0 (never) or between 1 and 1,000,000 updates";
    augment_paths: usize = |v: &usize| *v <= 64, "between 0 and 64 copies";
    validation_paths: usize = |v: &usize| *v <= 64, "between 0 and 64 paths";
    concurrency: usize = |v: &usize| (1..=64).contains(v), "between 1 and 64";
    per_minute: u32 = |v: &u32| (1..=10_000).contains(v), "between 1 and 10000 calls per minute";
    page_limit: u32 = |v: &u32| (1..=10_000).contains(v), "between 1 and 10000 bars (Alpaca's maximum)";
    retries: u32 = |v: &u32| *v <= 20, "at most 20";
    retry_ms: u64 = |v: &u64| (1..=60_000).contains(v), "between 1 and 60000 ms";
    seconds: u64 = |v: &u64| (1..=600).contains(v), "between 1 and 600 seconds";
    width: usize = |v: &usize| (1..=65_536).contains(v), "between 1 and 65536";
    gru_layers: usize = |v: &usize| (1..=8).contains(v), "between 1 and 8 layers";
    n_envs: usize = |v: &usize| (1..=65_536).contains(v), "between 1 and 65536 environments";
    n_steps: usize = |v: &usize| (1..=1_048_576).contains(v), "between 1 and 1048576 steps";
    minibatch: usize = |v: &usize| (2..=16_777_216).contains(v), "between 2 and 16777216 samples";
    epochs: usize = |v: &usize| (1..=1000).contains(v), "between 1 and 1000 epochs";
    critic_epochs: usize = |v: &usize| *v <= 1000, "between 0 and 1000 epochs (0 turns them off)";
    every: usize = |v: &usize| (1..=1_000_000).contains(v), "between 1 and 1000000";
    few: usize = |v: &usize| *v <= 100, "between 0 and 100";
    episode_len: usize = |v: &usize| (2..=1_000_000).contains(v), "between 2 and 1000000 steps";
    replay_bars: usize = |v: &usize| (1..=10_000_000).contains(v), "between 1 and 10000000 bars";
    chunks: usize = |v: &usize| (1..=1000).contains(v), "between 1 and 1000";
    min_trades: usize = |v: &usize| (1..=1_000_000).contains(v), "between 1 and 1000000 trades";
    min_days: usize = |v: &usize| (2..=100_000).contains(v), "between 2 and 100000 days";
    total_steps: u64 = |v: &u64| (1..=10_000_000_000_000).contains(v), "between 1 and 1e13 env-steps";
    reward_scale: f64 = |v: &f64| v.is_finite() && *v > 0.0 && *v <= 1e6, "in (0, 1e6]";
    loss_coef: f64 = |v: &f64| v.is_finite() && (0.0..=1000.0).contains(v), "between 0 and 1000";
    entropy_coef: f64 = |v: &f64| v.is_finite() && (0.0..=10.0).contains(v), "between 0 and 10";
    grad_norm: f64 = |v: &f64| v.is_finite() && *v > 0.0 && *v <= 1e6, "in (0, 1e6]";
    commission: f64 = |v: &f64| v.is_finite() && (0.0..=10_000.0).contains(v), "between 0 and 10000 (dollars per order)";
    per_second: f64 = |v: &f64| v.is_finite() && (0.0..=1e6).contains(v), "between 0 and 1e6 (0 = as fast as possible)";
    threshold: f64 = |v: &f64| v.is_finite() && v.abs() <= 1e6, "a finite number between -1e6 and 1e6";
    ratio: f64 = |v: &f64| v.is_finite() && (0.0..=1e6).contains(v), "between 0 and 1e6";
}

/// Layer widths: one to 16 layers, each between 1 and 65536.
pub fn layers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<usize>, D::Error> {
    let v = Vec::<usize>::deserialize(d)?;
    if v.is_empty() || v.len() > 16 || v.iter().any(|w| !(1..=65_536).contains(w)) {
        return Err(D::Error::custom(format!(
            "{} is out of range: list 1 to 16 layer widths, each between 1 and 65536",
            crate::jsonl::clip(&format!("{v:?}"), 60)
        )));
    }
    Ok(v)
}

/// The pre-split single learning rate (`ppo.lr`), range-checked like the rates that replace it.
pub fn legacy_lr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    discount(d).map(Some)
}

/// The days a date setting may name: market data exists in neither the 1800s nor the 2200s.
pub const FIRST_DAY: (i32, u32, u32) = (1900, 1, 1);
pub const LAST_DAY: (i32, u32, u32) = (2100, 12, 31);

/// A calendar day written `YYYY-MM-DD` (`2024-2-1` too), kept in the canonical form
/// `2024-02-01` so that every later use reads one spelling; between 1900 and 2100.
pub fn date<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let shown = crate::jsonl::clip(&s, 40);
    let day = chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d")
        .map_err(|_| D::Error::custom(format!("{shown:?} is not a YYYY-MM-DD date")))?;
    let (first, last) = (FIRST_DAY, LAST_DAY);
    let in_range = chrono::NaiveDate::from_ymd_opt(first.0, first.1, first.2)
        .zip(chrono::NaiveDate::from_ymd_opt(last.0, last.1, last.2))
        .is_some_and(|(a, b)| (a..=b).contains(&day));
    if !in_range {
        return Err(D::Error::custom(format!(
            "{shown:?} is out of range: a day between {}-01-01 and {}-12-31",
            first.0, last.0
        )));
    }
    Ok(day.format("%Y-%m-%d").to_string())
}

/// One of a fixed set of words.
fn one_of<'de, D: Deserializer<'de>>(d: D, allowed: &[&str]) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if allowed.contains(&s.as_str()) {
        Ok(s)
    } else {
        Err(D::Error::custom(format!(
            "{:?} is not allowed: use one of {}",
            crate::jsonl::clip(&s, 40),
            allowed.join(", ")
        )))
    }
}

pub fn feed<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    one_of(d, &["iex", "sip", "delayed_sip", "otc"])
}

pub fn stream_feed<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    one_of(d, &["iex", "sip", "delayed_sip", "test"])
}

pub fn adjustment<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    one_of(d, &["raw", "split", "dividend", "spin-off", "all"])
}

/// `auto`, `cpu`, `cuda` or `cuda:N`.
pub fn device<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = matches!(s.as_str(), "auto" | "cpu" | "cuda")
        || s.strip_prefix("cuda:")
            .is_some_and(|n| n.parse::<usize>().is_ok());
    if ok {
        Ok(s)
    } else {
        Err(D::Error::custom(format!(
            "{:?} is not a device: use auto, cpu, cuda or cuda:N",
            crate::jsonl::clip(&s, 40)
        )))
    }
}

/// Most symbols `env.pool_symbols` may list.
pub const MAX_POOL: usize = 64;

/// `env.pool_symbols`: symbol names (as `Symbol::from_user` reads them), each once, at most
/// [`MAX_POOL`].
pub fn pool_symbols<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    if names.len() > MAX_POOL {
        return Err(D::Error::custom(format!(
            "{} symbols: at most {MAX_POOL}",
            names.len()
        )));
    }
    let mut seen: Vec<String> = Vec::with_capacity(names.len());
    for n in &names {
        let sym =
            crate::market::Symbol::from_user(n).map_err(|e| D::Error::custom(format!("{e:#}")))?;
        let key = sym.name.to_ascii_uppercase();
        if seen.contains(&key) {
            return Err(D::Error::custom(format!(
                "{:?} is listed twice",
                crate::jsonl::clip(n, 40)
            )));
        }
        seen.push(key);
    }
    Ok(names)
}
