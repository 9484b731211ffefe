//! Session calendars: NYSE regular hours in America/New_York with holidays and early closes
//! computed from the exchange's published rules, and crypto's 24/7 UTC clock.

use super::{AssetClass, Timeframe};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;

/// Days the NYSE closed outside its regular holiday rules (national mourning, weather).
const SPECIAL_CLOSURES: &[(i32, u32, u32)] =
    &[(2012, 10, 29), (2012, 10, 30), (2018, 12, 5), (2025, 1, 9)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendar {
    Nyse,
    Crypto,
}

/// One trading session, open and close as UTC instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub date: NaiveDate,
    pub open: DateTime<Utc>,
    pub close: DateTime<Utc>,
    pub early_close: bool,
}

impl Calendar {
    pub fn for_class(class: AssetClass) -> Self {
        match class {
            AssetClass::Equity => Calendar::Nyse,
            AssetClass::Crypto => Calendar::Crypto,
        }
    }

    /// The session on `date` (an exchange-local date), if the market trades that day.
    pub fn session(self, date: NaiveDate) -> Option<Session> {
        match self {
            Calendar::Crypto => {
                let open = Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN));
                Some(Session {
                    date,
                    open,
                    close: open + Duration::days(1),
                    early_close: false,
                })
            }
            Calendar::Nyse => {
                if !nyse_is_trading_day(date) {
                    return None;
                }
                let early_close = nyse_is_early_close(date);
                let close_time = if early_close { (13, 0) } else { (16, 0) };
                Some(Session {
                    date,
                    open: ny_instant(date, 9, 30),
                    close: ny_instant(date, close_time.0, close_time.1),
                    early_close,
                })
            }
        }
    }

    /// Start times of every bar of `tf` that begins in `[from, to)`, in order. Equity bars start
    /// at the open and step by `tf` while inside the session; crypto bars step from UTC midnight.
    pub fn bar_starts(
        self,
        tf: Timeframe,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let step = tf.duration();
        let first = self.local_date(from) - Duration::days(1);
        let last = self.local_date(to);
        let mut date = first;
        while date <= last {
            if let Some(s) = self.session(date) {
                if tf == Timeframe::Day {
                    if s.open >= from && s.open < to {
                        out.push(s.open);
                    }
                } else {
                    let mut t = s.open;
                    while t < s.close {
                        if t >= from && t < to {
                            out.push(t);
                        }
                        t += step;
                    }
                }
            }
            date += Duration::days(1);
        }
        out
    }

    /// The exchange-local calendar date of an instant.
    pub fn local_date(self, ts: DateTime<Utc>) -> NaiveDate {
        match self {
            Calendar::Nyse => ts.with_timezone(&New_York).date_naive(),
            Calendar::Crypto => ts.date_naive(),
        }
    }

    /// The instants at which the exchange-local calendar day `date` begins and ends.
    pub fn day_bounds(self, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = |d: NaiveDate| match self {
            Calendar::Nyse => ny_instant(d, 0, 0),
            Calendar::Crypto => Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)),
        };
        (start(date), start(date + Duration::days(1)))
    }

    /// Minutes since local midnight, and the weekday, in the exchange's time zone.
    pub fn local_clock(self, ts: DateTime<Utc>) -> (u32, Weekday) {
        match self {
            Calendar::Nyse => {
                let l = ts.with_timezone(&New_York);
                (l.hour_minutes(), l.weekday())
            }
            Calendar::Crypto => (ts.hour_minutes(), ts.weekday()),
        }
    }
}

trait HourMinutes {
    fn hour_minutes(&self) -> u32;
}

impl<T: chrono::Timelike> HourMinutes for T {
    fn hour_minutes(&self) -> u32 {
        self.hour() * 60 + self.minute()
    }
}

fn ny_instant(date: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    let naive = date.and_time(NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN));
    // Midnight, 09:30 and 16:00 never fall in a DST gap or fold, so the mapping is unique.
    New_York
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&naive))
}

pub fn nyse_is_trading_day(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !nyse_is_holiday(date)
}

/// Full-day NYSE holidays, by rule (observed dates) plus the special closures table.
pub fn nyse_is_holiday(date: NaiveDate) -> bool {
    let y = date.year();
    let d = |m, day| NaiveDate::from_ymd_opt(y, m, day);
    let mut days: Vec<Option<NaiveDate>> = vec![
        new_years_observed(y),
        nth_weekday(y, 1, Weekday::Mon, 3),
        nth_weekday(y, 2, Weekday::Mon, 3),
        easter(y).map(|e| e - Duration::days(2)),
        last_weekday(y, 5, Weekday::Mon),
        d(7, 4).map(observed),
        nth_weekday(y, 9, Weekday::Mon, 1),
        nth_weekday(y, 11, Weekday::Thu, 4),
        d(12, 25).map(observed),
    ];
    if y >= 2022 {
        days.push(d(6, 19).map(observed));
    }
    days.into_iter().flatten().any(|h| h == date)
        || SPECIAL_CLOSURES
            .iter()
            .any(|&(yy, m, dd)| NaiveDate::from_ymd_opt(yy, m, dd) == Some(date))
}

/// 13:00 ET closes: July 3, the day after Thanksgiving, and Christmas Eve, when they trade.
pub fn nyse_is_early_close(date: NaiveDate) -> bool {
    if !nyse_is_trading_day(date) {
        return false;
    }
    let y = date.year();
    let day_after_thanksgiving = nth_weekday(y, 11, Weekday::Thu, 4).map(|t| t + Duration::days(1));
    [
        NaiveDate::from_ymd_opt(y, 7, 3),
        day_after_thanksgiving,
        NaiveDate::from_ymd_opt(y, 12, 24),
    ]
    .into_iter()
    .flatten()
    .any(|e| e == date)
}

/// A Saturday holiday is observed on Friday, a Sunday one on Monday.
fn observed(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => date - Duration::days(1),
        Weekday::Sun => date + Duration::days(1),
        _ => date,
    }
}

/// NYSE does not close on Friday Dec 31 when Jan 1 is a Saturday.
fn new_years_observed(y: i32) -> Option<NaiveDate> {
    let d = NaiveDate::from_ymd_opt(y, 1, 1)?;
    match d.weekday() {
        Weekday::Sat => None,
        Weekday::Sun => Some(d + Duration::days(1)),
        _ => Some(d),
    }
}

fn nth_weekday(y: i32, m: u32, wd: Weekday, n: u32) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(y, m, wd, n as u8)
}

fn last_weekday(y: i32, m: u32, wd: Weekday) -> Option<NaiveDate> {
    nth_weekday(y, m, wd, 5).or_else(|| nth_weekday(y, m, wd, 4))
}

/// Gregorian Easter Sunday (the anonymous computus).
fn easter(y: i32) -> Option<NaiveDate> {
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(y, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn known_2024_holidays_and_early_closes() {
        for (m, d) in [
            (1, 1),
            (1, 15),
            (2, 19),
            (3, 29),
            (5, 27),
            (6, 19),
            (7, 4),
            (9, 2),
            (11, 28),
            (12, 25),
        ] {
            assert!(
                nyse_is_holiday(date(2024, m, d)),
                "2024-{m}-{d} should be a holiday"
            );
        }
        for (m, d) in [(7, 3), (11, 29), (12, 24)] {
            assert!(
                nyse_is_early_close(date(2024, m, d)),
                "2024-{m}-{d} should close early"
            );
        }
        assert!(!nyse_is_holiday(date(2024, 3, 28)));
        assert!(!nyse_is_early_close(date(2024, 12, 23)));
    }

    #[test]
    fn observed_rules() {
        // 2021-12-24 (Fri) observes Christmas; 2022-01-01 (Sat) gives no Friday holiday.
        assert!(nyse_is_holiday(date(2021, 12, 24)));
        assert!(!nyse_is_holiday(date(2021, 12, 31)));
        // 2026-07-04 is a Saturday: Friday the 3rd is the holiday, no early close on the 2nd.
        assert!(nyse_is_holiday(date(2026, 7, 3)));
        assert!(!nyse_is_early_close(date(2026, 7, 2)));
        assert!(nyse_is_holiday(date(2025, 1, 9)));
        assert!(
            !nyse_is_holiday(date(2021, 6, 18)),
            "Juneteenth starts in 2022"
        );
    }

    #[test]
    fn nyse_15min_bars_in_a_day_and_half_day() {
        let cal = Calendar::Nyse;
        let tf = Timeframe::Minute(15);
        let s = cal.session(date(2024, 3, 12)).unwrap(); // EDT: 13:30Z open
        assert_eq!(s.open.to_rfc3339(), "2024-03-12T13:30:00+00:00");
        let bars = cal.bar_starts(tf, s.open, s.open + Duration::days(1));
        assert_eq!(bars.len(), 26);
        let half = cal.session(date(2024, 11, 29)).unwrap();
        let bars = cal.bar_starts(tf, half.open, half.close);
        assert_eq!(bars.len(), 14);
        assert!(cal.session(date(2024, 3, 16)).is_none(), "Saturday");
    }

    #[test]
    fn crypto_trades_through_the_weekend() {
        let cal = Calendar::Crypto;
        let sat = cal.session(date(2024, 3, 16)).unwrap();
        let bars = cal.bar_starts(
            Timeframe::Minute(15),
            sat.open,
            sat.open + Duration::days(2),
        );
        assert_eq!(bars.len(), 192);
        assert_eq!(bars[0].to_rfc3339(), "2024-03-16T00:00:00+00:00");
    }
}
