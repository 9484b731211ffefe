//! `quantdeck paper`: start (or continue) a paper-trading session, and talk to a running one —
//! pause, resume, flatten, clear, stop, status. Commands go through the session's run directory,
//! so they work from any terminal, SSH session or machine sharing the disk; when no daemon runs,
//! the CLI takes the session's lock and acts itself (flatten goes to the broker at once).

use super::jobs_cmd::{execute_with, parse_speed_arg, Common};
use crate::config::{BrokerChoice, Config};
use crate::jobs::replay::ReplaySpec;
use crate::jobs::{list_runs, EventTail, JobKind, JobRequest, RunSummary};
use crate::jobs::{Event, EventRecord};
use crate::live::view::{Command, Modes, PaperSnapshot};
use crate::paths::Paths;
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PaperArgs {
    #[command(subcommand)]
    pub action: Option<PaperAction>,
    /// Training runs to trade, one model per symbol (ids, unique prefixes, or `latest`).
    #[arg(default_value = "latest")]
    pub runs: Vec<String>,
    /// sim (replay unseen stored bars on the simulated broker) or alpaca (paper trading; needs
    /// paper keys). Overrides live.broker.
    #[arg(long, value_parser = ["sim", "alpaca"])]
    pub broker: Option<String>,
    /// Bar times to replay on the simulated broker (default: live.replay_bars).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub bars: Option<u64>,
    /// Replay fold N of the model's newest walk-forward (simulated broker): the fold's bars,
    /// decided by the same rules, so the session trades what the fold reported.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), conflicts_with_all = ["bars", "from"])]
    pub fold: Option<u64>,
    /// With --fold: the walk-forward run (id or prefix) instead of the newest.
    #[arg(long, requires = "fold")]
    pub walk_forward: Option<String>,
    /// Replay from this bar time (simulated broker): a date (YYYY-MM-DD, UTC midnight) or an
    /// RFC 3339 time. Needs --to.
    #[arg(long, value_parser = parse_instant, requires = "to", conflicts_with = "bars")]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Replay until this bar time; the last bar at or before it only marks the book.
    #[arg(long, value_parser = parse_instant, requires = "from")]
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Replay speed in bars per second; 0 = as fast as possible (overrides live.bars_per_second).
    #[arg(long, value_parser = parse_speed_arg)]
    pub speed: Option<f64>,
    /// Start a new session even if one with the same models and broker exists.
    #[arg(long)]
    pub new_session: bool,
    /// Confirm trading on Alpaca's LIVE host (also needs live.allow_live = true).
    #[arg(long)]
    pub confirm_live: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Subcommand)]
pub enum PaperAction {
    /// Stop new entries; exits still run.
    Pause(Target),
    /// Allow new entries again.
    Resume(Target),
    /// Kill switch: cancel every open order and close every position (latched until `clear`).
    Flatten(Target),
    /// Clear the flatten latch and the drawdown halt.
    Clear(Target),
    /// Stop the daemon; positions stay as they are.
    Stop(Target),
    /// Show the session's latest state.
    Status(Target),
}

#[derive(Debug, Args)]
pub struct Target {
    /// Paper run id or unique prefix; default: the newest paper session.
    #[arg(default_value = "latest")]
    pub run: String,
    /// How long to wait for the daemon's answer, in seconds.
    #[arg(long, default_value_t = 30)]
    pub wait: u64,
    /// `status`: the session's state and latest snapshot as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(paths: &Paths, cfg: &mut Config, a: PaperArgs) -> Result<i32> {
    if let Some(b) = &a.broker {
        cfg.live.broker = if b == "alpaca" {
            BrokerChoice::Alpaca
        } else {
            BrokerChoice::Sim
        };
    }
    if let Some(s) = a.speed {
        cfg.live.bars_per_second = s;
    }
    crate::config::validate(cfg)?;
    let Some(action) = a.action else {
        return execute_with(
            paths,
            cfg,
            JobRequest::Paper {
                train_runs: a.runs,
                bars: a.bars.map(|b| b as usize),
                replay: match (a.fold, a.from, a.to) {
                    (Some(fold), _, _) => Some(ReplaySpec::Fold {
                        walk_forward: a.walk_forward,
                        fold: fold as usize,
                    }),
                    (None, Some(from), Some(to)) => Some(ReplaySpec::Window { from, to }),
                    _ => None,
                },
                new_session: a.new_session,
                confirm_live: a.confirm_live,
            },
            &a.common,
            true,
        );
    };
    let (cmd, t) = match action {
        PaperAction::Pause(t) => (Command::Pause, t),
        PaperAction::Resume(t) => (Command::Resume, t),
        PaperAction::Flatten(t) => (Command::Flatten, t),
        PaperAction::Clear(t) => (Command::Clear, t),
        PaperAction::Stop(t) => (Command::Stop, t),
        PaperAction::Status(t) => return status(paths, &t),
    };
    command(paths, cfg, cmd, &t)
}

/// A bar time on the command line: `2024-11-05` (UTC midnight), `2024-11-05T14:30:00Z` or
/// any RFC 3339 time.
fn parse_instant(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("{s:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))
}

/// The paper session a user names: an id, a unique prefix, or `latest`.
pub fn resolve_session(paths: &Paths, s: &str) -> Result<RunSummary> {
    let runs: Vec<RunSummary> = list_runs(paths)
        .into_iter()
        .filter(|r| r.manifest.kind == JobKind::Paper)
        .collect();
    if s == "latest" || s.is_empty() {
        return runs.into_iter().next_back().ok_or_else(|| {
            anyhow!(
                "no paper session under {}: start one with `quantdeck paper RUN`",
                paths.runs.display()
            )
        });
    }
    let hits: Vec<RunSummary> = runs
        .into_iter()
        .filter(|r| r.manifest.id.starts_with(s))
        .collect();
    match hits.len() {
        1 => Ok(hits
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("no session"))?),
        0 => bail!("no paper session matches {s:?} (see `quantdeck runs`)"),
        n => bail!("{s:?} matches {n} paper sessions; give more of the id"),
    }
}

fn running(r: &RunSummary) -> bool {
    r.manifest.status == crate::jobs::JobStatus::Running && !r.stale
}

fn command(paths: &Paths, cfg: &Config, cmd: Command, t: &Target) -> Result<i32> {
    let r = resolve_session(paths, &t.run)?;
    let mut tail = EventTail::new(&r.path.join("events.jsonl"));
    tail.poll(); // from now on
    crate::live::commands::send(&r.path, cmd, "cli")?;
    if !running(&r) {
        if cmd == Command::Stop {
            println!("paper session {} is not running", r.manifest.id);
            return Ok(0);
        }
        // No daemon: the latch waits in the command queue; flatten acts at once.
        if cmd == Command::Flatten {
            return crate::jobs::flatten_now(paths, cfg, &r.manifest.id).map(|msg| {
                println!("{msg}");
                0
            });
        }
        println!(
            "paper session {} is not running: `{}` is queued and applies when it starts again",
            r.manifest.id,
            cmd.as_str()
        );
        return Ok(0);
    }
    let deadline = Instant::now() + Duration::from_secs(t.wait);
    while Instant::now() < deadline {
        for rec in tail.poll() {
            if let Event::CommandDone {
                command, message, ..
            } = &rec.event
            {
                if *command == cmd {
                    println!("{}: {message}", r.manifest.id);
                    if cmd == Command::Flatten {
                        return wait_flatten(&mut tail, deadline);
                    }
                    return Ok(0);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "sent `{}` to {}, but the daemon did not answer within {} s (it applies it when it reads its commands)",
        cmd.as_str(),
        r.manifest.id,
        t.wait
    );
    Ok(1)
}

/// After the flatten command was taken: its outcome, from the daemon's next snapshots.
fn wait_flatten(tail: &mut EventTail, deadline: Instant) -> Result<i32> {
    while Instant::now() < deadline {
        for rec in tail.poll() {
            if let Event::Paper(s) = &rec.event {
                if let Some(f) = &s.modes.flatten {
                    if f.starts_with("done") {
                        println!("{f}");
                        return Ok(if f.contains("problems") { 1 } else { 0 });
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "flatten requested; its result did not arrive in time (see `quantdeck paper status`)"
    );
    Ok(1)
}

fn latest_snapshot(path: &std::path::Path) -> Option<(EventRecord, PaperSnapshot)> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().rev().find_map(|l| {
        let rec: EventRecord = serde_json::from_str(l).ok()?;
        match &rec.event {
            Event::Paper(s) => Some((rec.clone(), (**s).clone())),
            _ => None,
        }
    })
}

/// Whether the daemon is alive: its manifest's state and heartbeat (a dead daemon's last report
/// still says "trading").
fn liveness(r: &RunSummary) -> (String, Option<i64>) {
    let m = &r.manifest;
    let age = m
        .heartbeat
        .map(|b| (chrono::Utc::now() - b).num_seconds().max(0));
    let state = if r.stale {
        format!(
            "DAEMON DOWN: {} (pid {} on {} is gone or frozen); nothing is trading",
            age.map_or("no heartbeat".into(), |a| format!(
                "last heartbeat {a} s ago"
            )),
            m.pid,
            m.host
        )
    } else if m.status == crate::jobs::JobStatus::Running {
        format!(
            "running (pid {} on {}, heartbeat {} s ago)",
            m.pid,
            m.host,
            age.unwrap_or(0)
        )
    } else {
        format!("{}: the daemon is not running", r.state())
    };
    (state, age)
}

fn status(paths: &Paths, t: &Target) -> Result<i32> {
    let r = resolve_session(paths, &t.run)?;
    let latest = latest_snapshot(&r.path.join("events.jsonl"));
    let (state, age) = liveness(&r);
    if t.json {
        let v = serde_json::json!({
            "session": r.manifest.id,
            "state": r.state(),
            "alive": !r.stale && r.manifest.status == crate::jobs::JobStatus::Running,
            "pid": r.manifest.pid,
            "host": r.manifest.host,
            "heartbeat": r.manifest.heartbeat,
            "heartbeat_age_s": age,
            "reported_at": latest.as_ref().map(|(rec, _)| rec.at),
            "snapshot": latest.as_ref().map(|(_, s)| s),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!("{}  {state}", r.manifest.id);
    let Some((rec, s)) = latest else {
        println!("no state reported yet");
        return Ok(0);
    };
    println!(
        "{} on {} at {} — equity {:.2} (day {:+.2}), cash {:.2}, buying power {:.2}",
        s.session,
        s.broker.label(),
        rec.at.format("%Y-%m-%d %H:%M:%S"),
        s.account.equity,
        s.account.day_pnl,
        s.account.cash,
        s.account.buying_power
    );
    let flags = mode_flags(&s.modes);
    if !flags.is_empty() {
        println!("modes: {}", flags.join(" · "));
    }
    print_positions(&s);
    Ok(0)
}

/// The session's modes that depart from normal trading, as status words.
fn mode_flags(m: &Modes) -> Vec<String> {
    let mut flags = Vec::new();
    if m.paused {
        flags.push("PAUSED".to_string());
    }
    if let Some(f) = &m.flatten {
        flags.push(format!("FLATTEN {f}"));
    }
    if m.halted {
        flags.push("DRAWDOWN HALT".into());
    }
    if let Some(w) = &m.stale_feed {
        flags.push(format!("STALE FEED {w}"));
    }
    if m.daily_loss_hit {
        flags.push("DAILY LOSS LIMIT".into());
    }
    for why in &m.stopped {
        flags.push(format!("STOPPED {why}"));
    }
    flags
}

/// Each symbol's row, then positions and orders the session did not expect.
fn print_positions(s: &PaperSnapshot) {
    for row in &s.rows {
        println!(
            "  {:<10} {:<6} {:<8} conf {:.2}  qty {:+.4} @ {:.2} (broker {}{})  P&L {:+.2}  {}",
            row.symbol,
            row.timeframe,
            row.action.as_deref().unwrap_or("-"),
            row.confidence,
            row.position.qty,
            row.position.avg_price,
            row.broker_qty.map_or("?".into(), |q| format!("{q:+.4}")),
            if row.in_flight != 0.0 {
                format!(", {:+.4} in flight", row.in_flight)
            } else {
                String::new()
            },
            row.pnl,
            row.stopped
                .as_ref()
                .map_or(row.gate.clone(), |w| format!("STOPPED: {w}"))
        );
    }
    for p in &s.external_positions {
        println!("  EXTERNAL {} {:+}", p.symbol, p.qty);
    }
    for o in &s.open_orders {
        println!(
            "  order {} {} {} {} (filled {}) {}",
            o.symbol, o.side, o.qty, o.status, o.filled_qty, o.client_order_id
        );
    }
    for p in &s.problem_orders {
        println!(
            "  {} {} {} {}: {} ({})",
            p.state.to_uppercase(),
            p.symbol,
            p.side,
            p.qty,
            p.reason,
            p.client_order_id
        );
    }
}
