//! The exchange clock for every bar (America/New_York for both classes; crypto's sessions and
//! hours are UTC days and hours) and the temporal block built from it. Time-zone offsets are
//! looked up once per UTC hour and sessions once per day: DST changes on the hour, so this is
//! exact and keeps 140k bars cheap.

use super::events::{self, EventTable};
use crate::market::{AssetClass, Bar, Calendar};
use chrono::{DateTime, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::America::New_York;

/// Per-bar clock facts, all derived from the bar's start time.
pub struct Clock {
    /// Minutes since New York midnight.
    pub et_minute: Vec<u32>,
    /// Monday = 0 … Sunday = 6, in New York.
    pub et_weekday: Vec<u32>,
    /// Position of the bar's start in its session, in [0, 1] (equities: open → close, half days
    /// included; crypto: the UTC day).
    pub session_phase: Vec<f64>,
    /// The clock hour a bar starts in (New York hours for equities, UTC hours for crypto), as a
    /// running hour number, and the session it belongs to (equities: the New York date; crypto:
    /// one endless session). Hourly context groups bars by these.
    pub hour_id: Vec<i64>,
    pub session_id: Vec<i64>,
    /// Minute within the clock hour, 0..60.
    pub minute_in_hour: Vec<u32>,
    pub events: Vec<u8>,
}

const DAY: i64 = 86_400;

impl Clock {
    pub fn new(class: AssetClass, bars: &[Bar], table: &EventTable) -> Self {
        let n = bars.len();
        let cal = Calendar::for_class(class);
        let mut c = Clock {
            et_minute: Vec::with_capacity(n),
            et_weekday: Vec::with_capacity(n),
            session_phase: Vec::with_capacity(n),
            hour_id: Vec::with_capacity(n),
            session_id: Vec::with_capacity(n),
            minute_in_hour: Vec::with_capacity(n),
            events: Vec::with_capacity(n),
        };
        let (mut off_hour, mut offset) = (i64::MIN, 0i64);
        let mut day_cache: (i64, u8, Option<(i64, i64)>) = (i64::MIN, 0, None);
        for b in bars {
            let ts = b.ts.timestamp();
            let utc_hour = ts.div_euclid(3600);
            if utc_hour != off_hour {
                off_hour = utc_hour;
                offset = ny_offset(b.ts);
            }
            let local = ts + offset;
            let day = local.div_euclid(DAY);
            let sec_of_day = local.rem_euclid(DAY);
            if day != day_cache.0 {
                let date = date_from_days(day);
                let session = match (class, date) {
                    (AssetClass::Equity, Some(d)) => cal
                        .session(d)
                        .map(|s| (s.open.timestamp(), s.close.timestamp())),
                    _ => None,
                };
                let ev = date.map(|d| table.flags(d)).unwrap_or(0);
                day_cache = (day, ev, session);
            }
            c.et_minute.push((sec_of_day / 60) as u32);
            // 1970-01-01 was a Thursday (3 with Monday = 0).
            c.et_weekday.push((day + 3).rem_euclid(7) as u32);
            c.events.push(day_cache.1);
            match class {
                AssetClass::Equity => {
                    let phase = match day_cache.2 {
                        Some((open, close)) if close > open => {
                            ((ts - open) as f64 / (close - open) as f64).clamp(0.0, 1.0)
                        }
                        _ => 0.5,
                    };
                    c.session_phase.push(phase);
                    c.hour_id.push(local.div_euclid(3600));
                    c.session_id.push(day);
                    c.minute_in_hour.push((local.rem_euclid(3600) / 60) as u32);
                }
                AssetClass::Crypto => {
                    c.session_phase.push(ts.rem_euclid(DAY) as f64 / DAY as f64);
                    c.hour_id.push(utc_hour);
                    c.session_id.push(0);
                    c.minute_in_hour.push((ts.rem_euclid(3600) / 60) as u32);
                }
            }
        }
        c
    }
}

fn ny_offset(ts: DateTime<Utc>) -> i64 {
    New_York
        .offset_from_utc_datetime(&ts.naive_utc())
        .fix()
        .local_minus_utc() as i64
}

fn date_from_days(days: i64) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(days))
}

/// Intraday activity prior by New York hour, 0.1–1.0 (the seed's hour_weight; its exact table is
/// not published): equities follow the U-shaped session (busy open and close, quiet lunch, 0.1
/// outside regular hours); crypto peaks in the US session too and is quieter overnight.
fn hour_weight(class: AssetClass, minute: u32) -> f64 {
    let h = minute / 60;
    let session = match minute {
        570..=599 => Some(1.0),
        600..=659 => Some(0.8),
        660..=719 => Some(0.6),
        720..=779 => Some(0.4),
        780..=839 => Some(0.5),
        840..=899 => Some(0.7),
        900..=959 => Some(1.0),
        _ => None,
    };
    match (class, session) {
        (_, Some(w)) => w,
        (AssetClass::Equity, None) => 0.1,
        (AssetClass::Crypto, None) => match h {
            0..=2 => 0.3,
            3..=8 => 0.4,
            9 => 0.6,
            16..=19 => 0.4,
            _ => 0.3,
        },
    }
}

/// The temporal block, 7 columns from `col`: tod_sin, tod_cos, day_of_week, session_phase,
/// hour_weight, fomc_day, jobs_day.
pub fn fill_temporal(
    clock: &Clock,
    class: AssetClass,
    out: &mut [f32],
    nf: usize,
    col: usize,
    from: usize,
) {
    for t in from..clock.et_minute.len() {
        let row = &mut out[t * nf + col..t * nf + col + 7];
        let m = clock.et_minute[t];
        let phase = m as f64 / 1440.0 * std::f64::consts::TAU;
        let ev = clock.events[t];
        // Seed v4.4: CPI, GDP and retail-sales days are 1.2 × busier.
        let boost = if ev & (events::CPI | events::GDP | events::RETAIL) != 0 {
            1.2
        } else {
            1.0
        };
        row[0] = phase.sin() as f32;
        row[1] = phase.cos() as f32;
        row[2] = ((clock.et_weekday[t] as f64 - 3.0) / 3.0) as f32;
        row[3] = (2.0 * clock.session_phase[t] - 1.0) as f32;
        row[4] = (hour_weight(class, m) * boost) as f32;
        row[5] = f32::from(ev & events::FOMC != 0);
        row[6] = f32::from(ev & events::NFP != 0);
    }
}
