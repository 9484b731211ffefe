//! Resampling to a longer timeframe (first open, max high, min low, last close, summed volume).
//! Equity buckets are anchored at the session open (09:30 ET: hours 09:30–10:30 … 15:30–16:00,
//! one bar per session for 1Day) and never span two sessions; crypto buckets are UTC-aligned.

use crate::market::{AssetClass, Bar, Calendar, Timeframe};
use anyhow::{bail, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Resampled bars, and how many input bars fell outside any regular session (equities only; they
/// are left out).
/// The bucket of the target timeframe a bar belongs to: its start, its end (the session close
/// cuts an equity bucket short) and its day. `None` for an equity bar outside any regular session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub day: NaiveDate,
    pub index: i64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Where `ts` falls in `to` bars: sessions anchor equity buckets (09:30 ET), UTC days anchor
/// crypto ones. The one rule both [`resample`] and the live bar builder use.
pub fn bucket_of(ts: DateTime<Utc>, class: AssetClass, to: Timeframe) -> Option<Bucket> {
    let (day, anchor, close) = match class {
        AssetClass::Crypto => {
            let day = ts.date_naive();
            let anchor = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
            (day, anchor, anchor + Duration::days(1))
        }
        AssetClass::Equity => {
            let cal = Calendar::for_class(class);
            let day = cal.local_date(ts);
            let s = cal.session(day)?;
            if ts < s.open || ts >= s.close {
                return None;
            }
            (day, s.open, s.close)
        }
    };
    let index = if to == Timeframe::Day {
        0
    } else {
        (ts - anchor).num_minutes().div_euclid(to.minutes())
    };
    let start = anchor + Duration::minutes(index * to.minutes());
    let end = if to == Timeframe::Day {
        close
    } else {
        (start + Duration::minutes(to.minutes())).min(close)
    };
    Some(Bucket {
        day,
        index,
        start,
        end,
    })
}

pub fn resample(
    bars: &[Bar],
    class: AssetClass,
    from: Timeframe,
    to: Timeframe,
) -> Result<(Vec<Bar>, usize)> {
    if to.minutes() <= from.minutes() || to.minutes() % from.minutes() != 0 {
        bail!("cannot resample {from} to {to}: the target must be a whole multiple of the source");
    }
    let mut out: Vec<Bar> = Vec::new();
    let mut key: Option<(NaiveDate, i64)> = None;
    let mut outside = 0;
    for b in bars {
        let Some(bk) = bucket_of(b.ts, class, to) else {
            outside += 1;
            continue;
        };
        match (key, out.last_mut()) {
            (Some(k), Some(last)) if k == (bk.day, bk.index) => {
                last.high = last.high.max(b.high);
                last.low = last.low.min(b.low);
                last.close = b.close;
                last.volume += b.volume;
            }
            _ => {
                key = Some((bk.day, bk.index));
                out.push(Bar { ts: bk.start, ..*b });
            }
        }
    }
    Ok((out, outside))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SyntheticConfig;
    use crate::data::synthetic;
    use crate::market::Symbol;

    #[test]
    fn equity_hours_follow_the_session_and_days_aggregate_exactly() {
        let d = |m, dd| NaiveDate::from_ymd_opt(2024, m, dd).unwrap();
        let bars = synthetic::generate(
            &SyntheticConfig::default(),
            &Symbol::equity("SYNA"),
            Timeframe::Minute(15),
            d(11, 27),
            d(11, 29),
        )
        .unwrap();
        let (hours, outside) = resample(
            &bars,
            AssetClass::Equity,
            Timeframe::Minute(15),
            Timeframe::Hour(1),
        )
        .unwrap();
        assert_eq!(outside, 0);
        // Full day: 7 buckets (6 full hours + 15:30–16:00); half day 09:30–13:00: 4 buckets.
        assert_eq!(hours.len(), 7 + 4);
        assert_eq!(hours[0].ts.to_rfc3339(), "2024-11-27T14:30:00+00:00");
        assert_eq!(hours[6].ts.to_rfc3339(), "2024-11-27T20:30:00+00:00");
        let (days, _) = resample(
            &bars,
            AssetClass::Equity,
            Timeframe::Minute(15),
            Timeframe::Day,
        )
        .unwrap();
        assert_eq!(days.len(), 2);
        assert_eq!(days[0].open, bars[0].open);
        assert_eq!(days[0].close, bars[25].close);
        assert_eq!(
            days[0].volume,
            bars[..26].iter().map(|b| b.volume).sum::<f64>()
        );
        assert_eq!(
            days[0].high,
            bars[..26].iter().map(|b| b.high).fold(f64::MIN, f64::max)
        );
        assert!(resample(
            &bars,
            AssetClass::Equity,
            Timeframe::Hour(1),
            Timeframe::Minute(15)
        )
        .is_err());
    }

    #[test]
    fn crypto_buckets_are_utc_aligned() {
        let d = |m, dd| NaiveDate::from_ymd_opt(2024, m, dd).unwrap();
        let bars = synthetic::generate(
            &SyntheticConfig::default(),
            &Symbol::crypto("SYNX/USD"),
            Timeframe::Minute(15),
            d(3, 16),
            d(3, 17),
        )
        .unwrap();
        let (hours, _) = resample(
            &bars,
            AssetClass::Crypto,
            Timeframe::Minute(15),
            Timeframe::Hour(1),
        )
        .unwrap();
        assert_eq!(hours.len(), 48);
        assert!(hours.iter().all(|b| b.ts.timestamp() % 3600 == 0));
    }
}
