//! The one rule for timestamps brought in from outside files: an epoch number's unit is read
//! from its magnitude — seconds, milliseconds, microseconds or nanoseconds each cover 1971–2100
//! in a band of their own, and the bands do not touch, so a number is in at most one — and a
//! number in none of them is refused rather than guessed (microseconds read as milliseconds put
//! a bar in the year 56316). Every bar, however its time was written, must also fall inside the
//! calendar: from 1900 until a week from now.

use anyhow::{bail, Result};
use chrono::{DateTime, Duration, Utc};

/// The unit of an epoch number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

impl EpochUnit {
    pub fn name(self) -> &'static str {
        match self {
            EpochUnit::Seconds => "seconds",
            EpochUnit::Millis => "milliseconds",
            EpochUnit::Micros => "microseconds",
            EpochUnit::Nanos => "nanoseconds",
        }
    }

    fn per_second(self) -> i64 {
        match self {
            EpochUnit::Seconds => 1,
            EpochUnit::Millis => 1_000,
            EpochUnit::Micros => 1_000_000,
            EpochUnit::Nanos => 1_000_000_000,
        }
    }

    const ALL: [EpochUnit; 4] = [
        EpochUnit::Seconds,
        EpochUnit::Millis,
        EpochUnit::Micros,
        EpochUnit::Nanos,
    ];
}

/// 1971-01-01 and 2100-01-01 in epoch seconds: the span every unit's band covers.
const BAND_LO: i64 = 31_536_000;
const BAND_HI: i64 = 4_102_444_800;

/// The unit whose band holds `n`, if any.
pub fn unit_of(n: i64) -> Option<EpochUnit> {
    EpochUnit::ALL.into_iter().find(|u| {
        let k = u.per_second();
        n >= BAND_LO.saturating_mul(k) && n <= BAND_HI.saturating_mul(k)
    })
}

/// The instant of epoch number `n`, its unit read from its magnitude.
pub fn from_epoch(n: i64) -> Result<(DateTime<Utc>, EpochUnit)> {
    let Some(unit) = unit_of(n) else {
        bail!(
            "{n} is not an epoch time between 1971 and 2100 in seconds, milliseconds, microseconds or nanoseconds (each unit has its own range of magnitudes; this number is in none)"
        );
    };
    let k = unit.per_second();
    let nanos = (n % k) * (1_000_000_000 / k);
    match DateTime::from_timestamp(n / k, nanos as u32) {
        Some(t) => Ok((t, unit)),
        None => bail!("{n} ({}) is not a representable time", unit.name()),
    }
}

/// Refuses an instant outside the calendar a bar can have: before 1900, or more than a week
/// after `now`.
pub fn check_calendar(t: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
    let first = DateTime::from_timestamp(-2_208_988_800, 0).unwrap_or(DateTime::<Utc>::MIN_UTC);
    if t < first || t > now + Duration::days(7) {
        bail!(
            "{} is outside the calendar a bar can have (1900 until a week from now)",
            t.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_is_read_from_its_magnitude() {
        let t = DateTime::parse_from_rfc3339("2024-03-12T13:30:00Z")
            .unwrap()
            .to_utc();
        let s = t.timestamp();
        for (n, unit) in [
            (s, EpochUnit::Seconds),
            (s * 1_000, EpochUnit::Millis),
            (s * 1_000_000, EpochUnit::Micros),
            (s * 1_000_000_000, EpochUnit::Nanos),
        ] {
            assert_eq!(from_epoch(n).unwrap(), (t, unit), "{n}");
        }
        // Between the bands, and below them (a YYYYMMDD number is not an epoch), refused.
        for n in [10_000_000_000, 20240312, 5_000_000_000_000_000, -5] {
            assert!(from_epoch(n).is_err(), "{n}");
        }
    }

    #[test]
    fn bars_far_outside_the_calendar_are_refused() {
        let now = Utc::now();
        assert!(check_calendar(now, now).is_ok());
        assert!(check_calendar(now + Duration::days(30), now).is_err());
        let old = DateTime::parse_from_rfc3339("1850-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        assert!(check_calendar(old, now).is_err());
    }
}
