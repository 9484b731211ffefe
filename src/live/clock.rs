//! Where the daemon's time comes from. Every timer it keeps — an order silent too long, the
//! account's freshness, the market clock and positions to re-read, the feed watchdog, a live bar
//! closed by the wall clock, the journal's timestamps — reads [`Clock::now`], so a test can hold
//! time still or move it ([`TestClock`], as nautilus_trader's `TestClock`) instead of sleeping.
//! Bar times are the data's own and never come from here.

use chrono::{DateTime, Duration, Utc};
use std::sync::{Arc, Mutex};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told; clones share the same time.
#[derive(Debug, Clone)]
pub struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        TestClock(Arc::new(Mutex::new(start)))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    pub fn advance(&self, d: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += d;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The wall clock, shared.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// Whether `every` has passed since `last` (never read: yes).
pub fn due(last: Option<DateTime<Utc>>, now: DateTime<Utc>, every: Duration) -> bool {
    last.is_none_or(|t| now - t >= every)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_test_clock_moves_only_when_told_and_clones_share_it() {
        let t0 = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
        let c = TestClock::new(t0);
        let shared = c.clone();
        assert_eq!(c.now(), t0);
        shared.advance(Duration::seconds(30));
        assert_eq!(c.now(), t0 + Duration::seconds(30));
        assert!(!due(Some(t0), c.now(), Duration::minutes(1)));
        assert!(due(Some(t0), c.now(), Duration::seconds(30)));
        assert!(due(None, c.now(), Duration::days(1)));
    }
}
