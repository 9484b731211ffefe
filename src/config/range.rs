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
        Err(D::Error::custom(format!("{v} is out of range: {what}")))
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

bounded! {
    positive: f64 = |v: &f64| v.is_finite() && *v > 0.0, "a positive finite number";
    non_negative: f64 = |v: &f64| v.is_finite() && *v >= 0.0, "a finite number ≥ 0";
    finite: f64 = |v: &f64| v.is_finite(), "a finite number";
    fraction: f64 = |v: &f64| (0.0..=1.0).contains(v), "between 0 and 1";
    open_fraction: f64 = |v: &f64| *v > 0.0 && *v < 1.0, "strictly between 0 and 1";
    share: f64 = |v: &f64| *v > 0.0 && *v <= 1.0, "in (0, 1]";
    below_one: f64 = |v: &f64| (0.0..1.0).contains(v), "in [0, 1)";
    cost: f64 = |v: &f64| (0.0..=0.1).contains(v), "a cost between 0 and 0.1 (10 %)";
    discount: f64 = |v: &f64| *v > 0.0 && *v <= 1.0, "in (0, 1]";
    money: f64 = |v: &f64| v.is_finite() && *v > 0.0 && *v <= 1e12, "a positive amount up to 1e12";
    price: f64 = |v: &f64| v.is_finite() && *v > 0.0 && *v <= 1e7, "a positive price up to 1e7";
    volatility: f64 = |v: &f64| v.is_finite() && *v > 0.0 && *v <= 5.0, "in (0, 5] (annualised, 0.25 = 25 %)";
    gap: f64 = |v: &f64| (0.0..=0.2).contains(v), "between 0 and 0.2 (20 % per night)";
    edge: f64 = |v: &f64| (0.0..=0.9).contains(v), "between 0 and 0.9";
    halflife: f64 = |v: &f64| (1.0..=10_000.0).contains(v), "between 1 and 10000 bars";
    take_profit: f64 = |v: &f64| *v > 0.0 && *v <= 10.0, "in (0, 10]";
    factor: f64 = |v: &f64| v.is_finite() && *v >= 1.0 && *v <= 100.0, "a factor between 1 and 100";
    at_least_one: usize = |v: &usize| *v >= 1, "at least 1";
    at_least_two: usize = |v: &usize| *v >= 2, "at least 2";
    window: usize = |v: &usize| (2..=1000).contains(v), "between 2 and 1000 bars";
    lookback_days: usize = |v: &usize| (2..=250).contains(v), "between 2 and 250 days";
    folds: usize = |v: &usize| (1..=100).contains(v), "between 1 and 100";
    concurrency: usize = |v: &usize| (1..=64).contains(v), "between 1 and 64";
    timesteps: u64 = |v: &u64| *v >= 1, "at least 1";
    per_minute: u32 = |v: &u32| (1..=10_000).contains(v), "between 1 and 10000 calls per minute";
    page_limit: u32 = |v: &u32| (1..=10_000).contains(v), "between 1 and 10000 bars (Alpaca's maximum)";
    retries: u32 = |v: &u32| *v <= 20, "at most 20";
    retry_ms: u64 = |v: &u64| (1..=60_000).contains(v), "between 1 and 60000 ms";
    seconds: u64 = |v: &u64| (1..=600).contains(v), "between 1 and 600 seconds";
    width: usize = |v: &usize| (1..=65_536).contains(v), "between 1 and 65536";
    gru_layers: usize = |v: &usize| (1..=8).contains(v), "between 1 and 8 layers";
}

/// Layer widths: at least one, each between 1 and 65536.
pub fn layers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<usize>, D::Error> {
    let v = Vec::<usize>::deserialize(d)?;
    if v.is_empty() || v.iter().any(|w| !(1..=65_536).contains(w)) {
        return Err(D::Error::custom(format!(
            "{v:?} is out of range: list at least one layer width, each between 1 and 65536"
        )));
    }
    Ok(v)
}

/// The pre-split single learning rate (`ppo.lr`), range-checked like the rates that replace it.
pub fn legacy_lr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    discount(d).map(Some)
}

/// A calendar day written `YYYY-MM-DD`.
pub fn date<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d")
        .map_err(|_| D::Error::custom(format!("{s:?} is not a YYYY-MM-DD date")))?;
    Ok(s)
}

/// One of a fixed set of words.
fn one_of<'de, D: Deserializer<'de>>(d: D, allowed: &[&str]) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if allowed.contains(&s.as_str()) {
        Ok(s)
    } else {
        Err(D::Error::custom(format!(
            "{s:?} is not allowed: use one of {}",
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
            "{s:?} is not a device: use auto, cpu, cuda or cuda:N"
        )))
    }
}
