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
}
