//! Builds the model's bars (e.g. 15Min) from Alpaca's 1Min bars with the project's resampling
//! rule (`data::resample::bucket_of`: session-anchored for equities, UTC for crypto). A bucket
//! closes when its last minute arrives or when a minute of a later bucket does — by the data, not
//! by the local clock, so an accelerated or replayed feed behaves like a live one. A revised
//! minute (`updatedBars`) replaces the first version while its bucket is open; a revision of a
//! bucket already closed is reported so the caller can log it.

use crate::data::resample::{bucket_of, Bucket};
use crate::market::{AssetClass, Bar, Timeframe};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct BarBuilder {
    class: AssetClass,
    tf: Timeframe,
    open: Option<Bucket>,
    minutes: BTreeMap<DateTime<Utc>, Bar>,
    last_closed: Option<DateTime<Utc>>,
}

/// What one minute did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pushed {
    /// Model bars that closed (oldest first; at most two: the open one and, if the minute was its
    /// bucket's last, the minute's own).
    pub closed: Vec<Bar>,
    /// The minute revised or arrived after its bucket had closed: it changed nothing.
    pub late: bool,
    /// The minute lies outside any regular session (equities): ignored.
    pub outside: bool,
}

impl BarBuilder {
    pub fn new(class: AssetClass, tf: Timeframe) -> Self {
        BarBuilder {
            class,
            tf,
            open: None,
            minutes: BTreeMap::new(),
            last_closed: None,
        }
    }

    /// The start of the newest closed model bar.
    pub fn last_closed(&self) -> Option<DateTime<Utc>> {
        self.last_closed
    }

    /// Bars before `t` count as already closed (history warmed from the store).
    pub fn resume_after(&mut self, t: DateTime<Utc>) {
        self.last_closed = Some(t);
    }

    fn aggregate(&self, bk: &Bucket) -> Option<Bar> {
        let mut it = self.minutes.values();
        let first = *it.next()?;
        let mut bar = Bar {
            ts: bk.start,
            ..first
        };
        for m in it {
            bar.high = bar.high.max(m.high);
            bar.low = bar.low.min(m.low);
            bar.close = m.close;
            bar.volume += m.volume;
        }
        Some(bar)
    }

    fn close_open(&mut self, out: &mut Vec<Bar>) {
        if let Some(bk) = self.open.take() {
            if let Some(bar) = self.aggregate(&bk) {
                self.last_closed = Some(bk.start);
                out.push(bar);
            }
            self.minutes.clear();
        }
    }

    /// Adds a 1Min bar (a new one, or a revision of one already seen).
    /// Whether the bar starting at `closed` is the bucket right before the one holding
    /// `minute`: still the newest closed bar when `minute` arrives.
    pub fn just_before(&self, closed: DateTime<Utc>, minute: DateTime<Utc>) -> bool {
        let (Some(a), Some(b)) = (
            bucket_of(closed, self.class, self.tf),
            bucket_of(minute, self.class, self.tf),
        ) else {
            return false;
        };
        a.end == b.start
    }

    pub fn push(&mut self, minute: Bar) -> Pushed {
        let mut p = Pushed::default();
        let Some(bk) = bucket_of(minute.ts, self.class, self.tf) else {
            p.outside = true;
            return p;
        };
        if self.last_closed.is_some_and(|t| bk.start <= t) {
            p.late = true;
            return p;
        }
        if self.open.is_some_and(|o| bk.start > o.start) {
            self.close_open(&mut p.closed);
        }
        if self.open.is_some_and(|o| bk.start < o.start) {
            // An older bucket than the open one that was never closed: too late to use.
            p.late = true;
            return p;
        }
        self.open = Some(bk);
        self.minutes.insert(minute.ts, minute);
        if minute.ts + Duration::minutes(1) >= bk.end {
            self.close_open(&mut p.closed);
        }
        p
    }

    /// Closes the open bucket if `now` is past its end (a live feed whose last minute had no
    /// trades). Never used on replayed or accelerated feeds.
    pub fn close_if_due(&mut self, now: DateTime<Utc>) -> Option<Bar> {
        let due = self.open.is_some_and(|o| now >= o.end);
        if !due {
            return None;
        }
        let mut out = Vec::new();
        self.close_open(&mut out);
        out.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn m(h: u32, min: u32, c: f64) -> Bar {
        Bar {
            ts: Utc.with_ymd_and_hms(2024, 3, 5, h, min, 0).unwrap(),
            open: c,
            high: c + 1.0,
            low: c - 1.0,
            close: c,
            volume: 10.0,
        }
    }

    #[test]
    fn fifteen_minute_bars_close_on_their_last_minute() {
        // 14:30 UTC = 09:30 ET (EST): the session's first 15-minute bucket is 14:30–14:45.
        let mut b = BarBuilder::new(AssetClass::Equity, Timeframe::Minute(15));
        for min in 30..44 {
            assert!(b.push(m(14, min, min as f64)).closed.is_empty());
        }
        let p = b.push(m(14, 44, 44.0));
        assert_eq!(p.closed.len(), 1);
        let bar = p.closed[0];
        assert_eq!(bar.ts, m(14, 30, 0.0).ts);
        assert_eq!(
            (bar.open, bar.close, bar.high, bar.low),
            (30.0, 44.0, 45.0, 29.0)
        );
        assert_eq!(bar.volume, 150.0);
        // A revision of a closed minute changes nothing and is reported.
        assert!(b.push(m(14, 40, 99.0)).late);
    }

    #[test]
    fn a_missing_last_minute_closes_on_the_next_bucket() {
        let mut b = BarBuilder::new(AssetClass::Equity, Timeframe::Minute(15));
        b.push(m(14, 30, 1.0));
        b.push(m(14, 31, 2.0));
        // A revision while the bucket is open replaces the minute.
        b.push(Bar {
            close: 3.0,
            high: 9.0,
            ..m(14, 31, 2.0)
        });
        let p = b.push(m(14, 47, 5.0));
        assert_eq!(p.closed.len(), 1);
        assert_eq!(p.closed[0].close, 3.0);
        assert_eq!(p.closed[0].high, 9.0);
        // Before the open: outside the session.
        assert!(b.push(m(13, 0, 1.0)).outside);
        // The wall clock can close a bucket whose last minute never comes.
        assert!(b.close_if_due(m(14, 50, 0.0).ts).is_none());
        assert_eq!(b.close_if_due(m(15, 0, 0.0).ts).map(|x| x.close), Some(5.0));
    }

    #[test]
    fn history_from_the_store_is_not_rebuilt() {
        let mut b = BarBuilder::new(AssetClass::Crypto, Timeframe::Minute(15));
        b.resume_after(m(14, 30, 0.0).ts);
        assert!(b.push(m(14, 40, 1.0)).late);
        assert!(!b.push(m(14, 45, 1.0)).late);
    }
}
