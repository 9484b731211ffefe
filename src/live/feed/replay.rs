//! Stored bars replayed in time order (the simulated session), at a pace or at once.

use super::FeedEvent;
use crate::market::Bar;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// The slowest replay: one bar time a day. A slower `bars_per_second` (1e-20 …) would overflow
/// the timer; nothing slower is useful.
const SLOWEST: Duration = Duration::from_secs(86_400);

/// Stored bars, merged across symbols in time order, at `bars_per_second` (0 = at once).
pub struct ReplayFeed {
    queue: VecDeque<(String, Bar)>,
    pace: Option<Duration>,
    next_due: Instant,
    /// Bars at this time (the last) only mark the books.
    mark_at: Option<DateTime<Utc>>,
}

impl ReplayFeed {
    /// `per_symbol`: each model's bars to replay; at most `max_times` distinct bar times.
    pub fn new(
        per_symbol: Vec<(String, Vec<Bar>)>,
        max_times: Option<usize>,
        bars_per_second: f64,
    ) -> Self {
        let mut all: Vec<(String, Bar)> = per_symbol
            .into_iter()
            .flat_map(|(s, bars)| bars.into_iter().map(move |b| (s.clone(), b)))
            .collect();
        all.sort_by(|a, b| a.1.ts.cmp(&b.1.ts).then(a.0.cmp(&b.0)));
        if let Some(n) = max_times {
            let mut times = 0;
            let mut last = None;
            all.retain(|(_, b)| {
                if last != Some(b.ts) {
                    times += 1;
                    last = Some(b.ts);
                }
                times <= n
            });
        }
        ReplayFeed {
            queue: all.into(),
            pace: pace(bars_per_second),
            next_due: Instant::now(),
            mark_at: None,
        }
    }

    /// The last bar time is served as [`FeedEvent::Mark`]: marked, not decided.
    pub fn marking_the_last(mut self) -> Self {
        self.mark_at = self.queue.back().map(|(_, b)| b.ts);
        self
    }

    pub fn remaining(&self) -> usize {
        self.queue.len()
    }

    pub async fn next(&mut self) -> FeedEvent {
        let Some((_, bar)) = self.queue.front() else {
            return FeedEvent::End;
        };
        let ts = bar.ts;
        if let Some(p) = self.pace {
            tokio::time::sleep_until(self.next_due).await;
            // Bars of one time go out together; the pace is per bar time.
            if self.queue.get(1).is_none_or(|(_, b)| b.ts != ts) {
                self.next_due = Instant::now() + p;
            }
        }
        match self.queue.pop_front() {
            Some((symbol, bar)) if self.mark_at == Some(bar.ts) => FeedEvent::Mark { symbol, bar },
            Some((symbol, bar)) => FeedEvent::Bar { symbol, bar },
            None => FeedEvent::End,
        }
    }
}

/// The time between bar times at `bars_per_second` (0, or not a number: as fast as possible).
fn pace(bars_per_second: f64) -> Option<Duration> {
    if bars_per_second.is_nan() || bars_per_second <= 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(1.0 / bars_per_second).map_or(SLOWEST, |d| d.min(SLOWEST)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_speed_gives_a_pace_and_never_panics() {
        assert_eq!(pace(0.0), None);
        assert_eq!(pace(f64::NAN), None);
        assert_eq!(pace(2.0), Some(Duration::from_millis(500)));
        assert_eq!(pace(1e-20), Some(SLOWEST));
        assert_eq!(pace(f64::MIN_POSITIVE), Some(SLOWEST));
        assert_eq!(pace(f64::INFINITY), Some(Duration::ZERO));
        let _ = ReplayFeed::new(Vec::new(), None, 1e-20);
    }
}
