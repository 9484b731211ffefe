//! `quantdeck watch`: alerts (through `[notify]`) when a paper session's heartbeat goes stale —
//! a crashed daemon cannot report its own death. Runs in a loop, or once (for cron).

use crate::config::Config;
use crate::jobs::watch::{alert_changes, check, Health};
use crate::notify::Notifier;
use crate::paths::Paths;
use anyhow::Result;
use chrono::Utc;
use clap::Args;

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Check once and exit (for cron): exit code 3 when a session is down.
    #[arg(long)]
    pub once: bool,
    /// Seconds between checks in a loop.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub every: u64,
    /// One JSON line per session and check.
    #[arg(long)]
    pub json: bool,
}

pub fn run(paths: &Paths, cfg: &Config, a: WatchArgs) -> Result<i32> {
    let notifier = Notifier::start(&cfg.notify);
    if notifier.is_none() {
        eprintln!(
            "no [notify] url (or QUANTDECK_NOTIFY_URL) is set: alerts go to this output only"
        );
    }
    let stop = crate::signals::listen()?;
    loop {
        let now = Utc::now();
        let seen = check(paths, now);
        let sent = alert_changes(paths, &seen, notifier.as_ref(), now);
        for w in &seen {
            if a.json {
                println!("{}", serde_json::to_string(w)?);
            } else if w.health != Health::Stopped || a.once {
                println!("{}  {}", w.session, w.detail);
            }
        }
        for n in &sent {
            eprintln!("alert: {} {}: {}", n.kind, n.session, n.text);
        }
        if a.once {
            if let Some(q) = &notifier {
                q.wait_sent(sent.len() as u64, std::time::Duration::from_secs(10));
            }
            let down = seen.iter().any(|w| w.health == Health::Down);
            return Ok(if down { 3 } else { 0 });
        }
        if stop
            .recv_timeout(std::time::Duration::from_secs(a.every))
            .is_ok()
        {
            return Ok(0);
        }
    }
}
