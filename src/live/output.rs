//! How the daemon reports: one trait, implemented by `jobs` (events into the run directory,
//! alerts to the notification queue), so `live` never imports `jobs`. Everything the daemon says
//! goes through it — log lines, the session's snapshot, each decided bar, order changes and
//! fills from every source, command answers, and the alerts a trader wants on a phone.

use super::view::{Command, DecidedBar, FillView, OrderView, PaperSnapshot};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// What is worth telling a trader who is not looking at the screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Alert {
    Started {
        what: String,
    },
    Stopped {
        why: String,
    },
    Fill {
        symbol: String,
        side: String,
        qty: f64,
        price: f64,
    },
    Rejected {
        symbol: String,
        id: String,
        reason: String,
    },
    KillSwitch {
        detail: String,
    },
    Halt {
        detail: String,
    },
    Pause {
        paused: bool,
    },
    StaleFeed {
        detail: String,
    },
    /// The broker's quantity no longer matches the book (a split, a manual trade).
    SymbolStopped {
        symbol: String,
        detail: String,
    },
}

impl Alert {
    /// A stable machine name (`fill`, `kill_switch`, …), for templates and filters.
    pub fn kind(&self) -> &'static str {
        match self {
            Alert::Started { .. } => "started",
            Alert::Stopped { .. } => "stopped",
            Alert::Fill { .. } => "fill",
            Alert::Rejected { .. } => "rejected",
            Alert::KillSwitch { .. } => "kill_switch",
            Alert::Halt { .. } => "halt",
            Alert::Pause { .. } => "pause",
            Alert::StaleFeed { .. } => "stale_feed",
            Alert::SymbolStopped { .. } => "symbol_stopped",
        }
    }

    /// Whether it calls for action (a phone may ring louder).
    pub fn urgent(&self) -> bool {
        !matches!(
            self,
            Alert::Started { .. } | Alert::Fill { .. } | Alert::Pause { .. }
        )
    }

    /// One line a person reads.
    pub fn text(&self) -> String {
        match self {
            Alert::Started { what } => format!("daemon started: {what}"),
            Alert::Stopped { why } => format!("daemon stopped: {why}"),
            Alert::Fill {
                symbol,
                side,
                qty,
                price,
            } => format!("fill: {side} {qty} {symbol} @ {price:.4}"),
            Alert::Rejected { symbol, id, reason } => {
                format!("order rejected: {symbol} ({id}): {reason}")
            }
            Alert::KillSwitch { detail } => format!("KILL SWITCH: {detail}"),
            Alert::Halt { detail } => format!("HALT: {detail}"),
            Alert::Pause { paused: true } => "entries paused (exits only)".into(),
            Alert::Pause { paused: false } => "entries resumed".into(),
            Alert::StaleFeed { detail } => format!("STALE FEED: {detail}"),
            Alert::SymbolStopped { symbol, detail } => format!("{symbol} STOPPED: {detail}"),
        }
    }
}

pub trait Output {
    fn log(&self, level: Level, message: String);
    /// The whole session as it stands.
    fn snapshot(&self, s: &PaperSnapshot);
    fn decided(&self, d: &DecidedBar);
    /// An order of the session changed (accepted, filled, cancelled, rejected …).
    fn order(&self, o: &OrderView);
    /// One fill, learned from the stream, a REST look-up or a reconciliation — once each.
    fn fill(&self, f: &FillView);
    fn command_done(&self, command: Command, from: &str, message: &str);
    /// Sent on without waiting; a slow or dead receiver never holds the daemon.
    fn alert(&self, _a: &Alert) {}
    /// The daemon should stop (a signal, or its job's cancel token).
    fn cancelled(&self) -> bool;
    /// The main loop turned over: a sign of life (called every tick, at most every 250 ms; a
    /// loop that is stuck stops calling it, so its session looks down).
    fn beat(&self) {}

    fn info(&self, message: String) {
        self.log(Level::Info, message);
    }
    fn warn(&self, message: String) {
        self.log(Level::Warn, message);
    }
    fn error(&self, message: String) {
        self.log(Level::Error, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_read_plainly_and_say_what_they_are() {
        let a = Alert::Fill {
            symbol: "BTC/USD".into(),
            side: "buy".into(),
            qty: 0.5,
            price: 60_000.0,
        };
        assert_eq!(a.kind(), "fill");
        assert!(!a.urgent());
        assert_eq!(a.text(), "fill: buy 0.5 BTC/USD @ 60000.0000");
        let k = Alert::KillSwitch {
            detail: "flatten all".into(),
        };
        assert!(k.urgent() && k.text().starts_with("KILL SWITCH"));
        let json = serde_json::to_string(&k).unwrap();
        assert!(json.contains("\"kind\":\"kill_switch\""), "{json}");
    }
}
