//! Data-quality report of one series: coverage against the session calendar, missing bars, zero
//! volume, duplicates, OHLC inconsistencies, outlier returns and staleness.

use super::coverage::Slots;
use crate::market::{AssetClass, Bar, Calendar, Timeframe};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct QualityReport {
    pub bars: usize,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    /// Bars the calendar expects between the first and last bar.
    pub expected: usize,
    pub missing: usize,
    /// The first few missing bar times.
    pub missing_examples: Vec<DateTime<Utc>>,
    /// Bars outside regular sessions (extended hours for equities).
    pub off_session: usize,
    pub coverage: f64,
    pub zero_volume: usize,
    pub duplicates: usize,
    pub ohlc_inconsistent: usize,
    pub outlier_returns: usize,
    /// Whole sessions (equities) or days (crypto) between the last bar and `now`.
    pub stale_sessions: i64,
    pub flags: Vec<String>,
}

/// A source of sessions: the embedded rules, or a table from Alpaca's `/v2/calendar`.
pub type SessionFn<'a> = &'a dyn Fn(NaiveDate) -> Option<crate::market::calendar::Session>;

pub fn check(
    bars: &[Bar],
    class: AssetClass,
    tf: Timeframe,
    sessions: Option<SessionFn>,
    now: DateTime<Utc>,
) -> QualityReport {
    let cal = Calendar::for_class(class);
    let default = move |d: NaiveDate| cal.session(d);
    let sessions: SessionFn = sessions.unwrap_or(&default);
    let mut r = QualityReport {
        bars: bars.len(),
        first: bars.iter().map(|b| b.ts).min(),
        last: bars.iter().map(|b| b.ts).max(),
        ..Default::default()
    };
    let (Some(first), Some(last)) = (r.first, r.last) else {
        r.flags.push("EMPTY".into());
        return r;
    };
    // Expected bars: the calendar's slots between the first and the last bar's (see
    // `coverage` for how 1Day and Alpaca's clock-aligned hours are matched).
    let stamps: Vec<DateTime<Utc>> = bars.iter().map(|b| b.ts).collect();
    let slots = Slots::new(class, tf, Some(sessions)).detect_grid(&stamps);
    let keys: Vec<Option<DateTime<Utc>>> = stamps.iter().map(|t| slots.slot_of(*t)).collect();
    let lo = keys.iter().flatten().min().copied().unwrap_or(first);
    let hi = keys.iter().flatten().max().copied().unwrap_or(last);
    let expected = slots.between(lo, hi);
    let mut present = stamps;
    present.sort();
    let before = present.len();
    present.dedup();
    r.duplicates = before - present.len();
    r.off_session = keys.iter().filter(|k| k.is_none()).count();
    let have: std::collections::BTreeSet<_> = keys.into_iter().flatten().collect();
    let missing: Vec<_> = expected
        .iter()
        .map(|s| s.key)
        .filter(|k| !have.contains(k))
        .collect();
    r.expected = expected.len();
    r.missing = missing.len();
    r.missing_examples = missing.into_iter().take(5).collect();
    r.coverage = if r.expected == 0 {
        1.0
    } else {
        (r.expected - r.missing) as f64 / r.expected as f64
    };
    r.zero_volume = bars.iter().filter(|b| b.volume == 0.0).count();
    r.ohlc_inconsistent = bars.iter().filter(|b| !b.is_consistent()).count();
    r.outlier_returns = outliers(bars);
    // Sessions that opened after the last bar and have already closed.
    let mut d = cal
        .local_date(last)
        .succ_opt()
        .unwrap_or(cal.local_date(last));
    let today = cal.local_date(now);
    while d <= today {
        if sessions(d).is_some_and(|s| s.close <= now) {
            r.stale_sessions += 1;
        }
        d = match d.succ_opt() {
            Some(n) => n,
            None => break,
        };
    }
    let mut flag = |on: bool, name: &str| {
        if on {
            r.flags.push(name.to_string());
        }
    };
    flag(r.coverage < 0.99, "MISSING_BARS");
    flag(r.zero_volume * 100 > r.bars, "ZERO_VOLUME");
    flag(r.duplicates > 0, "DUPLICATES");
    flag(r.ohlc_inconsistent > 0, "OHLC_INCONSISTENT");
    flag(r.outlier_returns > 0, "OUTLIER_RETURNS");
    flag(r.stale_sessions > 1, "STALE");
    r
}

/// Close-to-close log returns further than 10 robust deviations (1.4826 × MAD) from the median.
fn outliers(bars: &[Bar]) -> usize {
    let mut rets: Vec<f64> = bars
        .windows(2)
        .filter(|w| w[0].close > 0.0 && w[1].close > 0.0)
        .map(|w| (w[1].close / w[0].close).ln())
        .collect();
    if rets.len() < 20 {
        return 0;
    }
    let med = median(&mut rets.clone());
    let mad = median(&mut rets.iter().map(|r| (r - med).abs()).collect::<Vec<_>>()) * 1.4826;
    if mad <= 0.0 {
        return 0;
    }
    rets.retain(|r| ((r - med) / mad).abs() > 10.0);
    rets.len()
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SyntheticConfig;
    use crate::data::synthetic;
    use crate::market::Symbol;
    use chrono::TimeZone;

    #[test]
    fn finds_each_kind_of_problem() {
        let d = |m, dd| NaiveDate::from_ymd_opt(2024, m, dd).unwrap();
        let sym = Symbol::equity("SYNA");
        let tf = Timeframe::Minute(15);
        let clean =
            synthetic::generate(&SyntheticConfig::default(), &sym, tf, d(3, 4), d(3, 8)).unwrap();
        let friday_close = Utc.with_ymd_and_hms(2024, 3, 8, 21, 0, 0).unwrap();
        let r = check(&clean, sym.class, tf, None, friday_close);
        assert_eq!((r.expected, r.missing, r.coverage), (130, 0, 1.0));
        assert!(r.flags.is_empty(), "{:?}", r.flags);

        let mut bad = clean.clone();
        bad.remove(40);
        bad.remove(10);
        bad[5].volume = 0.0;
        bad[6].high = bad[6].low * 0.5;
        // A consistent bar at three times the price: an outlier return, not bad OHLC.
        let b = &mut bad[70];
        (b.open, b.high, b.low, b.close) = (b.open * 3.0, b.high * 3.0, b.low * 3.0, b.close * 3.0);
        bad.push(bad[100]);
        let later = Utc.with_ymd_and_hms(2024, 3, 14, 21, 0, 0).unwrap();
        let r = check(&bad, sym.class, tf, None, later);
        assert_eq!(r.missing, 2);
        assert_eq!(r.missing_examples[0], clean[10].ts);
        assert_eq!(r.zero_volume, 1);
        assert_eq!(r.ohlc_inconsistent, 1);
        assert_eq!(r.duplicates, 1);
        assert!(r.outlier_returns >= 1);
        assert_eq!(
            r.stale_sessions, 4,
            "Mon 11 – Thu 14 closed since the last bar"
        );
        for f in [
            "MISSING_BARS",
            "DUPLICATES",
            "OHLC_INCONSISTENT",
            "OUTLIER_RETURNS",
            "STALE",
        ] {
            assert!(r.flags.contains(&f.to_string()), "{f} in {:?}", r.flags);
        }
    }

    /// Bars stamped the way Alpaca stamps them: daily at midnight New York time, hourly on the
    /// clock hour with extended hours (04:00–20:00 New York) around the session.
    fn alpaca_style(tf: Timeframe, from: NaiveDate, to: NaiveDate) -> Vec<Bar> {
        let ny = chrono_tz::America::New_York;
        let mut out = Vec::new();
        let mut d = from;
        while d <= to {
            if Calendar::Nyse.session(d).is_some() {
                let hours: Vec<u32> = if tf == Timeframe::Day {
                    vec![0]
                } else {
                    (4..20).collect()
                };
                for h in hours {
                    let ts = ny
                        .from_local_datetime(&d.and_hms_opt(h, 0, 0).unwrap())
                        .unwrap()
                        .with_timezone(&Utc);
                    out.push(Bar {
                        ts,
                        open: 10.0,
                        high: 11.0,
                        low: 9.0,
                        close: 10.0,
                        volume: 5.0,
                    });
                }
            }
            d = d.succ_opt().unwrap();
        }
        out
    }

    #[test]
    fn daily_and_hourly_coverage_accept_alpaca_and_our_own_stamps() {
        let d = |m, dd| NaiveDate::from_ymd_opt(2024, m, dd).unwrap();
        let sym = Symbol::equity("SYNA");
        // Across the March DST change and the Thanksgiving holiday and half day.
        for (from, to) in [(d(3, 1), d(3, 28)), (d(11, 20), d(12, 6))] {
            let sessions = (0..=(to - from).num_days())
                .filter(|k| {
                    Calendar::Nyse
                        .session(from + chrono::Duration::days(*k))
                        .is_some()
                })
                .count();
            let now = Utc.from_utc_datetime(&to.and_hms_opt(23, 0, 0).unwrap());

            let daily = alpaca_style(Timeframe::Day, from, to);
            assert_eq!(daily.len(), sessions);
            let r = check(&daily, sym.class, Timeframe::Day, None, now);
            assert_eq!((r.expected, r.missing, r.off_session), (sessions, 0, 0));
            assert!(r.flags.is_empty(), "{:?}", r.flags);
            let mut holed = daily.clone();
            let gone = holed.remove(5);
            let r = check(&holed, sym.class, Timeframe::Day, None, now);
            assert_eq!(r.missing, 1);
            assert_eq!(
                Calendar::Nyse.local_date(r.missing_examples[0]),
                Calendar::Nyse.local_date(gone.ts)
            );

            // Ours: the synthetic market's 15-minute bars resampled (09:30-anchored).
            let fine = synthetic::generate(
                &SyntheticConfig::default(),
                &sym,
                Timeframe::Minute(15),
                from,
                to,
            )
            .unwrap();
            for tf in [Timeframe::Day, Timeframe::Hour(1)] {
                let (ours, _) =
                    crate::data::resample::resample(&fine, sym.class, Timeframe::Minute(15), tf)
                        .unwrap();
                let r = check(&ours, sym.class, tf, None, now);
                assert_eq!((r.missing, r.off_session, r.coverage), (0, 0, 1.0), "{tf}");
            }

            let hourly = alpaca_style(Timeframe::Hour(1), from, to);
            let r = check(&hourly, sym.class, Timeframe::Hour(1), None, now);
            // 09:00–15:00 overlap a full session (7 hours), 09:00–12:00 a half day (4).
            let half_days = (0..=(to - from).num_days())
                .filter(|k| {
                    Calendar::Nyse
                        .session(from + chrono::Duration::days(*k))
                        .is_some_and(|s| s.early_close)
                })
                .count();
            assert_eq!(r.expected, 7 * sessions - 3 * half_days);
            assert_eq!((r.missing, r.coverage), (0, 1.0));
            assert_eq!(r.off_session, hourly.len() - r.expected, "extended hours");
            let mut holed = hourly.clone();
            holed.retain(|b| b.ts != alpaca_style(Timeframe::Hour(1), from, from)[6].ts);
            assert_eq!(
                check(&holed, sym.class, Timeframe::Hour(1), None, now).missing,
                1
            );
        }
    }
}
