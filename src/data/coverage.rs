//! Which bars a series should have: the calendar's bar *slots* for a timeframe, and the slot a
//! stored bar fills. The quality report (coverage) and the refresh planner (gaps) share it.
//!
//! Providers disagree on where a bar starts, and both conventions must count as present:
//! - **1Day**: Alpaca stamps a stock's daily bar at midnight New York time, while `data resample`
//!   and the synthetic market stamp it at the 09:30 open. A daily slot is a session; any bar on
//!   that exchange-local date fills it.
//! - **Intraday**: Alpaca aligns bars to the clock (an hour bar starts on the hour: 13:00Z covers
//!   09:00–10:00 New York time in summer), while `data resample` and the synthetic market anchor
//!   them at the open (09:30–10:30, …, 15:30–16:00). For 1Hour the two grids differ, so the grid
//!   is detected from the stored bars; for 15Min (or any step dividing 30 minutes) they agree.

use super::quality::SessionFn;
use crate::market::calendar::Session;
use crate::market::{AssetClass, Calendar, Timeframe};
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Where intraday bars start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grid {
    /// At the session open, then every timeframe step while in session.
    Session,
    /// On multiples of the timeframe since the Unix epoch (UTC clock alignment): every such bar
    /// that overlaps the session.
    Clock,
}

/// One bar the calendar expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The slot's canonical start (for 1Day, the session open).
    pub key: DateTime<Utc>,
    /// The times at which a provider may stamp this bar: `[start, end)`.
    pub span: (DateTime<Utc>, DateTime<Utc>),
}

/// The slots of one timeframe on one calendar.
pub struct Slots<'a> {
    cal: Calendar,
    sessions: Option<SessionFn<'a>>,
    tf: Timeframe,
    grid: Grid,
}

impl<'a> Slots<'a> {
    /// Slots on the embedded calendar of `class`, or on `sessions` (Alpaca's calendar) when
    /// given; the session grid until [`Slots::detect_grid`] says otherwise.
    pub fn new(class: AssetClass, tf: Timeframe, sessions: Option<SessionFn<'a>>) -> Self {
        Slots {
            cal: Calendar::for_class(class),
            sessions,
            tf,
            grid: Grid::Session,
        }
    }

    pub fn grid(&self) -> Grid {
        self.grid
    }

    /// Picks the grid on which more of `stamps` (bar starts) lie exactly.
    pub fn detect_grid(mut self, stamps: &[DateTime<Utc>]) -> Self {
        if self.tf == Timeframe::Day {
            return self;
        }
        let step = self.tf.minutes() * 60;
        let (mut on_session, mut on_clock) = (0usize, 0usize);
        // The most recent bars are enough to tell, and keep this cheap on long series.
        for &t in stamps.iter().rev().take(5000) {
            if t.timestamp().rem_euclid(step) == 0 {
                on_clock += 1;
            }
            if let Some(s) = self.session(self.cal.local_date(t)) {
                if t >= s.open && t < s.close && (t - s.open).num_seconds() % step == 0 {
                    on_session += 1;
                }
            }
        }
        if on_clock > on_session {
            self.grid = Grid::Clock;
        }
        self
    }

    fn session(&self, d: NaiveDate) -> Option<Session> {
        match self.sessions {
            Some(f) => f(d),
            None => self.cal.session(d),
        }
    }

    fn step(&self) -> Duration {
        self.tf.duration()
    }

    /// The slots of one session, in order.
    fn of_session(&self, s: &Session, out: &mut Vec<Slot>) {
        if self.tf == Timeframe::Day {
            out.push(Slot {
                key: s.open,
                span: self.cal.day_bounds(s.date),
            });
            return;
        }
        let step = self.step();
        let mut t = match self.grid {
            Grid::Session => s.open,
            Grid::Clock => floor(s.open, step),
        };
        while t < s.close {
            out.push(Slot {
                key: t,
                span: (t, t + step),
            });
            t += step;
        }
    }

    /// The slots whose key lies in `[from, to]`, in order.
    pub fn between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Slot> {
        let mut out = Vec::new();
        if to < from {
            return out;
        }
        let last = self.cal.local_date(to) + Duration::days(1);
        let mut d = self.cal.local_date(from) - Duration::days(1);
        while d <= last {
            if let Some(s) = self.session(d) {
                let n = out.len();
                self.of_session(&s, &mut out);
                // Drop this session's slots outside the range (only at the two ends).
                let mut keep = n;
                for i in n..out.len() {
                    if out[i].key >= from && out[i].key <= to {
                        out[keep] = out[i];
                        keep += 1;
                    }
                }
                out.truncate(keep);
            }
            d = match d.succ_opt() {
                Some(n) => n,
                None => break,
            };
        }
        out
    }

    /// The key of the slot a bar starting at `ts` fills; `None` outside every session (for
    /// equities: extended hours, weekends, holidays).
    pub fn slot_of(&self, ts: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let s = self.session(self.cal.local_date(ts))?;
        if self.tf == Timeframe::Day {
            return Some(s.open);
        }
        let step = self.step();
        match self.grid {
            Grid::Session => (ts >= s.open && ts < s.close).then(|| {
                let k = (ts - s.open).num_seconds().div_euclid(step.num_seconds());
                s.open + step * k as i32
            }),
            Grid::Clock => {
                let key = floor(ts, step);
                (key < s.close && key + step > s.open).then_some(key)
            }
        }
    }
}

/// `t` rounded down to a multiple of `step` since the Unix epoch.
fn floor(t: DateTime<Utc>, step: Duration) -> DateTime<Utc> {
    let s = step.num_seconds().max(1);
    let secs = t.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(s), 0).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, m: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, mi, 0).unwrap()
    }

    #[test]
    fn daily_slots_accept_midnight_and_open_stamps() {
        let s = Slots::new(AssetClass::Equity, Timeframe::Day, None);
        // Alpaca: midnight New York (04:00Z in summer, 05:00Z in winter); ours: the open.
        assert_eq!(
            s.slot_of(utc(2024, 7, 1, 4, 0)),
            Some(utc(2024, 7, 1, 13, 30))
        );
        assert_eq!(
            s.slot_of(utc(2024, 1, 2, 5, 0)),
            Some(utc(2024, 1, 2, 14, 30))
        );
        assert_eq!(
            s.slot_of(utc(2024, 1, 2, 14, 30)),
            Some(utc(2024, 1, 2, 14, 30))
        );
        assert_eq!(s.slot_of(utc(2024, 7, 4, 4, 0)), None, "Independence Day");
        let week = s.between(utc(2024, 7, 1, 0, 0), utc(2024, 7, 5, 23, 0));
        assert_eq!(week.len(), 4, "Mon–Fri less the 4th");
        assert_eq!(week[0].span, (utc(2024, 7, 1, 4, 0), utc(2024, 7, 2, 4, 0)));
    }

    #[test]
    fn hourly_grids_are_told_apart() {
        let day = (utc(2024, 7, 1, 0, 0), utc(2024, 7, 1, 23, 59));
        let clock: Vec<_> = (13..20).map(|h| utc(2024, 7, 1, h, 0)).collect();
        let ours: Vec<_> = (13..20).map(|h| utc(2024, 7, 1, h, 30)).collect();
        let s = Slots::new(AssetClass::Equity, Timeframe::Hour(1), None).detect_grid(&clock);
        assert_eq!(s.grid(), Grid::Clock);
        let keys: Vec<_> = s.between(day.0, day.1).iter().map(|x| x.key).collect();
        assert_eq!(keys, clock, "09:00–16:00 ET hours that overlap the session");
        // Extended hours (08:00 ET) are outside every slot.
        assert_eq!(s.slot_of(utc(2024, 7, 1, 12, 0)), None);
        let s = Slots::new(AssetClass::Equity, Timeframe::Hour(1), None).detect_grid(&ours);
        assert_eq!(s.grid(), Grid::Session);
        let keys: Vec<_> = s.between(day.0, day.1).iter().map(|x| x.key).collect();
        assert_eq!(keys, ours, "09:30-anchored, the last one half an hour");
    }
}
