//! Work that will not fit: a series is held in memory whole while it is generated, merged or
//! checked, so before generating or fetching one the bar count is estimated from the calendar
//! and compared with the memory the machine has available. Above [`REFUSE_SHARE`] of it the work
//! is refused; above [`WARN_SHARE`] it goes ahead with a warning.

use crate::market::{AssetClass, Timeframe};
use anyhow::{bail, Result};
use chrono::NaiveDate;

/// Peak memory per bar of a series being generated or merged and stored (the bars, their
/// timestamps, the parquet frame, the quality check's sets). Measured with `/usr/bin/time -v`:
/// synthetic 1Min fetches of 1.05 and 2.1 million bars peaked at 233 and 425 MB, about 190 bytes
/// per bar; rounded up for merges, which hold the stored and the new bars at once.
pub const BYTES_PER_BAR: u64 = 256;

/// Refuse when the estimate exceeds this share of available memory.
pub const REFUSE_SHARE: f64 = 0.5;
/// Warn when it exceeds this share.
pub const WARN_SHARE: f64 = 0.125;

/// Assumed when the machine does not say (no `/proc/meminfo`).
const ASSUMED_AVAILABLE: u64 = 4 << 30;

/// Bars of `tf` in the calendar days `start..=end`: sessions × bars per session. Equity
/// sessions are estimated as 252 per 365 days, which is close enough for a memory check and
/// costs nothing for any range.
pub fn estimate_bars(class: AssetClass, tf: Timeframe, start: NaiveDate, end: NaiveDate) -> u64 {
    if end < start {
        return 0;
    }
    let days = (end - start).num_days() as f64 + 1.0;
    let sessions = match class {
        AssetClass::Crypto => days,
        AssetClass::Equity => (days * 252.0 / 365.0).ceil(),
    };
    (sessions * tf.bars_per_day(class)).ceil() as u64
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Refuses `bars` bars of `what` when they cannot fit in `available` bytes; returns a warning
/// when they take a large share of it.
pub fn check(what: &str, bars: u64, available: u64) -> Result<Option<String>> {
    let need = bars.saturating_mul(BYTES_PER_BAR);
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    if need as f64 > REFUSE_SHARE * available as f64 {
        bail!(
            "{what}: about {bars} bars (≈ {:.1} GiB in memory) will not fit: {:.1} GiB is available and at most {:.0} % of it is used. \
Shorten the date range (data.start / data.end, --start / --end) or choose a longer timeframe",
            gib(need),
            gib(available),
            REFUSE_SHARE * 100.0
        );
    }
    if need as f64 > WARN_SHARE * available as f64 {
        return Ok(Some(format!(
            "{what}: about {bars} bars (≈ {:.1} GiB in memory) — a large share of the {:.1} GiB available",
            gib(need),
            gib(available)
        )));
    }
    Ok(None)
}

/// [`check`] for one series of `class` over `start..=end`, against this machine's memory.
pub fn check_range(
    what: &str,
    class: AssetClass,
    tf: Timeframe,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Option<String>> {
    let bars = estimate_bars(class, tf, start, end);
    check(what, bars, mem_available().unwrap_or(ASSUMED_AVAILABLE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, dd: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, dd).unwrap()
    }

    #[test]
    fn estimates_follow_the_calendar() {
        let tf = Timeframe::Minute(15);
        let year = estimate_bars(AssetClass::Equity, tf, d(2024, 1, 1), d(2024, 12, 31));
        assert!((6_500..6_700).contains(&year), "{year}");
        let day = estimate_bars(
            AssetClass::Crypto,
            Timeframe::Minute(1),
            d(2024, 1, 1),
            d(2024, 1, 1),
        );
        assert_eq!(day, 1440);
        assert_eq!(
            estimate_bars(AssetClass::Crypto, tf, d(2024, 1, 2), d(2024, 1, 1)),
            0
        );
        // 1900–2024 of 1-minute equity bars: about 12 million.
        let huge = estimate_bars(
            AssetClass::Equity,
            Timeframe::Minute(1),
            d(1900, 1, 1),
            d(2024, 12, 31),
        );
        assert!((12_000_000..12_600_000).contains(&huge), "{huge}");
    }

    #[test]
    fn refuses_above_half_warns_above_an_eighth() {
        let gib = 1u64 << 30;
        let per_gib = gib / BYTES_PER_BAR;
        assert!(check("x", per_gib, 16 * gib).unwrap().is_none());
        let w = check("x", 3 * per_gib, 16 * gib).unwrap().unwrap();
        assert!(w.contains("3.0 GiB"), "{w}");
        let e = format!(
            "{:#}",
            check("SYNA 1Min", 9 * per_gib, 16 * gib).unwrap_err()
        );
        assert!(
            e.contains("SYNA 1Min") && e.contains("will not fit") && e.contains("16.0 GiB"),
            "{e}"
        );
        assert!(check("x", u64::MAX, 16 * gib).is_err(), "no overflow");
    }
}
