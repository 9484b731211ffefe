//! The latches that stop trading, and the commands that set and clear them: pause (entries
//! only), flatten-all (the kill switch), the sticky drawdown halt and the daily loss limit (kept
//! in `state.json`, they survive restarts), the stale-feed watchdog (live only), and symbols
//! stopped because the broker's quantity no longer matches the book. Pure functions of the
//! state and the time: the daemon applies what they decide.

use super::commands::Envelope;
use super::output::Alert;
use super::state::{DaemonState, Flatten};
use super::view::Command;
use chrono::{DateTime, Duration, Utc};

/// Why new entries are blocked session-wide, if they are (exits always run).
pub fn entry_block(state: &DaemonState, stale_feed: Option<&str>) -> Option<String> {
    state
        .entries_blocked()
        .map(String::from)
        .or_else(|| stale_feed.map(|s| format!("stale feed: {s}")))
        .or_else(|| state.latches.entry_block().map(String::from))
}

/// The feed watchdog: while the market is open (crypto: always) and bars should be coming, no
/// bar for two bar periods halts entries. `None`: all is well.
pub fn watchdog(
    now: DateTime<Utc>,
    last_bar_seen: Option<DateTime<Utc>>,
    market_open: bool,
    bar_period: Duration,
) -> Option<String> {
    let seen = last_bar_seen?;
    let silent = now - seen;
    let limit = bar_period * 2;
    (market_open && silent > limit).then(|| {
        format!(
            "no bar for {} min while the market is open (limit {} min)",
            silent.num_minutes(),
            limit.num_minutes()
        )
    })
}

/// What applying one command did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub message: String,
    /// The daemon should stop.
    pub stop: bool,
    pub alert: Option<Alert>,
}

/// Applies a command to the latches (the caller saves the state and answers).
pub fn apply(state: &mut DaemonState, env: &Envelope, now: DateTime<Utc>) -> Applied {
    let (message, stop, alert) = match env.command {
        Command::Pause => {
            state.paused = true;
            let a = Alert::Pause { paused: true };
            ("entries paused: exits only".to_string(), false, Some(a))
        }
        Command::Resume => {
            state.paused = false;
            let a = Alert::Pause { paused: false };
            ("entries resumed".to_string(), false, Some(a))
        }
        Command::Flatten => {
            if state.flatten.is_none() {
                state.flatten = Some(Flatten {
                    requested: now,
                    by: env.from.clone(),
                    done: None,
                    ok: false,
                    rows: Vec::new(),
                });
            }
            let m = "flatten-all latched: entries blocked, cancelling orders and closing positions";
            let a = Alert::KillSwitch {
                detail: format!("flatten all, asked by {}", env.from),
            };
            (m.to_string(), false, Some(a))
        }
        Command::Clear => (clear(state), false, None),
        Command::Stop => (
            "stopping (positions stay as they are)".to_string(),
            true,
            None,
        ),
    };
    Applied {
        message,
        stop,
        alert,
    }
}

/// Clears the flatten latch, the drawdown halt and the stopped symbols (whose broker quantity
/// is taken as the new truth at the next reconciliation).
fn clear(state: &mut DaemonState) -> String {
    let mut what = Vec::new();
    if state.flatten.take().is_some() {
        what.push("the flatten latch".to_string());
    }
    if std::mem::take(&mut state.latches.halted) {
        what.push("the drawdown halt".to_string());
    }
    if !state.stopped.is_empty() {
        let syms: Vec<String> = std::mem::take(&mut state.stopped).into_keys().collect();
        for s in &syms {
            state
                .external_baseline
                .remove(&crate::broker::types::normalize_symbol(s));
        }
        what.push(format!("the stop of {}", syms.join(", ")));
    }
    if what.is_empty() {
        "cleared (nothing was latched)".into()
    } else {
        format!("cleared {}", what.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::BrokerKind;
    use chrono::TimeZone;

    fn env(command: Command) -> Envelope {
        Envelope {
            command,
            at: Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap(),
            from: "tui".into(),
        }
    }

    #[test]
    fn commands_set_and_clear_the_latches() {
        let now = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
        let mut s = DaemonState::new("s", BrokerKind::Sim, 1000.0, now);
        assert_eq!(entry_block(&s, None), None);
        assert!(apply(&mut s, &env(Command::Pause), now).alert.is_some());
        assert_eq!(entry_block(&s, None).as_deref(), Some("paused"));
        apply(&mut s, &env(Command::Flatten), now);
        assert_eq!(entry_block(&s, None).as_deref(), Some("flatten latched"));
        s.latches.halted = true;
        s.stopped.insert("SYNX/USD".into(), "split".into());
        s.external_baseline.insert("SYNXUSD".into(), 0.0);
        let c = apply(&mut s, &env(Command::Clear), now);
        assert!(
            c.message.contains("flatten latch")
                && c.message.contains("drawdown halt")
                && c.message.contains("SYNX/USD"),
            "{}",
            c.message
        );
        assert!(s.stopped.is_empty() && s.external_baseline.is_empty());
        assert_eq!(entry_block(&s, None).as_deref(), Some("paused"));
        apply(&mut s, &env(Command::Resume), now);
        assert_eq!(
            entry_block(&s, Some("no bar")).as_deref(),
            Some("stale feed: no bar")
        );
        assert!(apply(&mut s, &env(Command::Stop), now).stop);
    }

    #[test]
    fn the_watchdog_barks_after_two_silent_bar_periods_while_open() {
        let t = Utc.with_ymd_and_hms(2024, 3, 1, 15, 0, 0).unwrap();
        let p = Duration::minutes(15);
        assert_eq!(watchdog(t, None, true, p), None);
        assert_eq!(watchdog(t + Duration::minutes(30), Some(t), true, p), None);
        assert!(watchdog(t + Duration::minutes(31), Some(t), true, p).is_some());
        assert_eq!(watchdog(t + Duration::hours(5), Some(t), false, p), None);
    }
}
