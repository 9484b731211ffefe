//! A token bucket shared by every request of a client (all symbols, all tasks), holding the plan's
//! calls per minute; when the server says the window is spent (`X-Ratelimit-Remaining: 0`, or a
//! 429 with `X-Ratelimit-Reset`), every caller waits until the reset.

use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[derive(Debug)]
struct State {
    tokens: f64,
    last: Instant,
    paused_until: Option<Instant>,
}

#[derive(Debug)]
pub struct RateLimiter {
    per_minute: f64,
    state: Mutex<State>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1) as f64;
        RateLimiter {
            per_minute,
            state: Mutex::new(State {
                // Start with a small burst, not a full minute's worth, so a restart right after a
                // heavy minute does not overrun the server's window.
                tokens: (per_minute / 10.0).clamp(1.0, per_minute),
                last: Instant::now(),
                paused_until: None,
            }),
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().await;
                let now = Instant::now();
                if let Some(until) = s.paused_until {
                    if until > now {
                        Some(until - now)
                    } else {
                        s.paused_until = None;
                        None
                    }
                } else {
                    None
                }
                .or_else(|| {
                    let elapsed = now.duration_since(s.last).as_secs_f64();
                    s.tokens = (s.tokens + elapsed * self.per_minute / 60.0).min(self.per_minute);
                    s.last = now;
                    if s.tokens >= 1.0 {
                        s.tokens -= 1.0;
                        None
                    } else {
                        Some(Duration::from_secs_f64(
                            (1.0 - s.tokens) * 60.0 / self.per_minute,
                        ))
                    }
                })
            };
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// Stops everyone until `until` (the server's reset time).
    pub async fn pause_until(&self, until: Instant) {
        let mut s = self.state.lock().await;
        if s.paused_until.is_none_or(|p| p < until) {
            s.paused_until = Some(until);
        }
        s.tokens = 0.0;
    }
}
