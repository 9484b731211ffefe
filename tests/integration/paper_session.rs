//! A paper session's life as files and processes: a simulated session killed while it holds a
//! position goes on trading its own position (its orders recognised by their client ids, never
//! by time); damaged session files are refused by name, never silently replaced; two daemons
//! started at once make one session; an absurd replay speed is no crash.

use crate::common::desk::{day, Desk, Running, SYMBOL};
use crate::common::text;
use chrono::Duration;
use quantdeck::broker::types::Order;
use quantdeck::jobs::Event;
use std::path::Path;
use std::time::Instant;

/// A desk on the simulated broker with stored bars after everything the model saw.
fn sim_desk() -> Desk {
    let d = Desk::new("");
    let later = Desk::data_end() + Duration::days(2);
    let cfg = std::fs::read_to_string(&d.cfg).expect("config");
    let cfg = cfg
        .replace("broker = \"alpaca\"", "broker = \"sim\"")
        .replace(
            &format!("end = \"{}\"", day(Desk::data_end())),
            &format!("end = \"{}\"", day(later)),
        );
    std::fs::write(&d.cfg, cfg).expect("config");
    let o = d.cli(&["fetch", SYMBOL]);
    assert!(o.status.success(), "{}", text(&o));
    d
}

/// The simulated broker's orders of a session, as (symbol, bar, intent) — the session tag cut.
fn sim_orders(dir: &Path) -> Vec<(String, String, String)> {
    #[derive(serde::Deserialize)]
    struct State {
        orders: Vec<Order>,
    }
    let s: State = serde_json::from_str(
        &std::fs::read_to_string(dir.join("sim_broker.json")).expect("sim broker"),
    )
    .expect("sim state");
    s.orders
        .iter()
        .map(|o| {
            let p: Vec<&str> = o.client_order_id.splitn(3, '-').collect();
            let rest = p.get(2).copied().unwrap_or("");
            let mut it = rest.rsplitn(3, '-');
            let intent = it.next().unwrap_or("").to_string();
            let bar = it.next().unwrap_or("").to_string();
            (it.next().unwrap_or("").to_string(), bar, intent)
        })
        .collect()
}

fn replay(d: &Desk, speed: &str, fresh: bool) -> Running {
    let mut args = vec!["paper", &d.train, "--bars", "60", "--speed", speed];
    if fresh {
        args.push("--new-session");
    }
    Running(d.command(&args).spawn().expect("daemon"))
}

/// The session kills at a moment it holds a position (the simulated broker stamps its orders
/// with bar time, long before the restart's wall clock): the restart finds its orders by their
/// client ids, sees the position as the model's own (not EXTERNAL), and goes on trading it —
/// the same orders as a session that was never interrupted.
#[test]
fn a_sim_session_restarted_while_positioned_goes_on_trading_its_own_position() {
    let d = sim_desk();
    let mut whole = replay(&d, "0", false);
    assert!(
        whole.0.wait().expect("wait").success(),
        "{}",
        d.daemon_out()
    );
    let dirs = d.paper_dirs();
    let want = sim_orders(&dirs[0]);
    assert!(want.len() >= 10, "{want:?}");
    // A second session of the same bars, killed while positioned, then continued.
    let mut child = replay(&d, "20", true);
    let second = || d.paper_dirs().into_iter().find(|p| !dirs.contains(p));
    let holds = |p: &Path| {
        std::fs::read_to_string(p.join("sim_broker.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| {
                v["holdings"].as_object().is_some_and(|h| !h.is_empty())
                    && v["orders"].as_array().is_some_and(|o| o.len() >= 5)
            })
    };
    d.until(60, "the second session holds a position", || {
        second().is_some_and(|p| holds(&p))
    });
    child.kill();
    let dir = second().expect("the second session");
    let mut again = replay(&d, "0", false);
    assert!(
        again.0.wait().expect("wait").success(),
        "{}",
        d.daemon_out()
    );
    assert_eq!(d.paper_dirs().len(), 2, "the restart continued the session");
    let got = sim_orders(&dir);
    // A kill between the durable decision and its send loses that one order (never placed,
    // journaled so); everything else is the uninterrupted session's.
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).expect("journal");
    let lost = journal.matches("\"t\":\"not_placed\"").count();
    assert!(
        got.len() + lost >= want.len() && got.len() <= want.len(),
        "{} vs {} ({lost} lost)",
        got.len(),
        want.len()
    );
    if lost == 0 {
        assert_eq!(got, want);
    }
    let events = std::fs::read_to_string(dir.join("events.jsonl")).expect("events");
    let reconciled: Vec<&str> = events
        .lines()
        .filter(|l| l.contains("reconciled with the broker"))
        .collect();
    assert!(reconciled.len() >= 2, "{reconciled:?}");
    assert!(
        reconciled
            .iter()
            .all(|l| l.contains("0 external position(s)")),
        "{reconciled:?}"
    );
}

fn session_file(d: &Desk) -> std::path::PathBuf {
    d.paper_dir().expect("a session").join("session.json")
}

/// A damaged session.json, or a damaged manifest of the session, is refused by name: a new
/// session beside it would abandon its book. --new-session starts one on purpose.
#[test]
fn damaged_session_files_are_refused_by_name_never_replaced() {
    let d = sim_desk();
    let o = d.cli(&["paper", &d.train, "--bars", "5", "--speed", "0"]);
    assert!(o.status.success(), "{}", text(&o));
    // The key id never reaches the file (a simulated session has none; its account says sim).
    let info = std::fs::read_to_string(session_file(&d)).expect("session.json");
    assert!(info.contains("\"account\": \"sim\""), "{info}");
    // Continue it: the replay is over, so mark it running as a crash would have left it.
    let m = d.paper_dir().expect("dir").join("manifest.json");
    let manifest = std::fs::read_to_string(&m).expect("manifest");
    std::fs::write(&m, manifest.replace("\"completed\"", "\"running\"")).expect("write");
    std::fs::write(session_file(&d), "{\"key\": \"half").expect("damage");
    let o = d.cli(&["paper", &d.train, "--bars", "5", "--speed", "0"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("session.json is damaged"), "{}", text(&o));
    assert_eq!(d.paper_dirs().len(), 1, "no second session");
    std::fs::write(session_file(&d), info).expect("restore");
    std::fs::write(&m, "{ not a manifest").expect("damage");
    let o = d.cli(&["paper", &d.train, "--bars", "5", "--speed", "0"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("manifest.json"), "{}", text(&o));
    assert_eq!(d.paper_dirs().len(), 1, "no second session");
    let o = d.cli(&[
        "paper",
        &d.train,
        "--bars",
        "5",
        "--speed",
        "0",
        "--new-session",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.paper_dirs().len(), 2);
}

/// Two daemons of one session started at the same instant: one runs, the other is refused;
/// never two sessions for one key.
#[test]
fn two_daemons_started_at_once_make_one_session() {
    let d = sim_desk();
    for round in 0..3 {
        let args = ["paper", d.train.as_str(), "--bars", "40", "--speed", "20"];
        let (mut a, mut b) = (d.command(&args), d.command(&args));
        let (mut ra, mut rb) = (
            Running(a.spawn().expect("a")),
            Running(b.spawn().expect("b")),
        );
        let (sa, sb) = (ra.0.wait().expect("a"), rb.0.wait().expect("b"));
        assert!(
            sa.success() != sb.success(),
            "round {round}: {sa:?} {sb:?}: {}",
            d.daemon_out()
        );
        // Each round replays to its end: the next round's is a new session, one per round.
        assert_eq!(d.paper_dirs().len(), round + 1, "round {round}");
    }
    let out = d.daemon_out();
    assert!(
        out.contains("another paper daemon is starting or running this session"),
        "{out}"
    );
}

/// `--speed 1e-20` (one bar in 3·10¹² years) is no panic: the pace is capped, the daemon runs
/// and stops on command.
#[test]
fn an_absurd_replay_speed_is_no_crash() {
    let d = sim_desk();
    let mut child = replay(&d, "1e-20", false);
    d.until(60, "the first bar decided", || {
        d.paper_dir().is_some_and(|p| {
            std::fs::read_to_string(p.join("events.jsonl"))
                .is_ok_and(|t| t.contains("\"type\":\"decided\""))
        })
    });
    let o = d.cli(&["paper", "stop"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = Instant::now();
    let status = child.0.wait().expect("wait");
    assert!(status.success() && t.elapsed().as_secs() < 30, "{status:?}");
    assert!(!d.daemon_out().contains("panicked"), "{}", d.daemon_out());
    let stopped = d
        .events()
        .iter()
        .any(|e| matches!(&e.event, Event::CommandDone { .. }));
    assert!(stopped);
}

/// `paper status --json` as a value.
fn status_json(d: &Desk) -> serde_json::Value {
    let o = d.cli(&["paper", "status", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).expect("status json")
}

fn signal(child: &Running, sig: &str) {
    let pid = child.0.id().to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("kill");
    assert!(ok.success());
}

/// A daemon waiting for bars beats all the same; once it stops beating (SIGSTOP keeps its pid
/// alive, as a daemon on another host would look) `paper status` calls it down as soon as its
/// heartbeat is older than the paper threshold — seconds, not a minute — and alive again once
/// it beats again.
#[test]
fn a_daemon_that_stops_beating_is_down_within_seconds() {
    let limit = quantdeck::jobs::rundir::PAPER_DOWN_AFTER.num_seconds();
    let d = sim_desk();
    // One bar in 3·10¹² years: after the first, the loop only waits for bars.
    let mut child = replay(&d, "1e-20", false);
    d.until(60, "the first bar decided", || {
        d.paper_dir().is_some_and(|p| {
            std::fs::read_to_string(p.join("events.jsonl"))
                .is_ok_and(|t| t.contains("\"type\":\"decided\""))
        })
    });
    let waiting = Instant::now();
    while waiting.elapsed().as_secs() < limit as u64 + 2 {
        let s = status_json(&d);
        assert_eq!(s["alive"], true, "a daemon waiting for bars is alive: {s}");
        assert!(
            s["heartbeat_age_s"].as_i64().is_some_and(|a| a <= limit),
            "{s}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    signal(&child, "-STOP");
    let stopped = Instant::now();
    let down = loop {
        let s = status_json(&d);
        if s["alive"] == false {
            break s;
        }
        // Generous for a loaded machine; the threshold itself is the constant.
        assert!(stopped.elapsed().as_secs() < 30, "still alive: {s}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let age = down["heartbeat_age_s"].as_i64().expect("age");
    assert!(age >= limit && age < 30, "{down}");
    let o = d.cli(&["paper", "status"]);
    assert!(text(&o).contains("DAEMON DOWN"), "{}", text(&o));
    signal(&child, "-CONT");
    d.until(30, "alive again once it beats", || {
        status_json(&d)["alive"] == true
    });
    child.kill();
}

/// Marks the finished session running again, as a crash would have left it, so `paper`
/// continues it.
fn as_crashed(d: &Desk) {
    let m = d.paper_dir().expect("dir").join("manifest.json");
    let manifest = std::fs::read_to_string(&m).expect("manifest");
    std::fs::write(&m, manifest.replace("\"completed\"", "\"running\"")).expect("write");
}

/// A journal emptied, cut mid-file (mid-line or at a line end) or deleted while the session was
/// stopped is refused by name on the simulated broker — never continued with its orders and
/// fills forgotten (they would be counted again) — and the broker is left untouched. A torn last
/// line is repaired, and said on the console.
#[test]
fn a_damaged_journal_is_refused_by_name_and_a_torn_line_is_said() {
    let d = sim_desk();
    let args = ["paper", &d.train, "--bars", "60", "--speed", "0"];
    let o = d.cli(&args);
    assert!(o.status.success(), "{}", text(&o));
    let dir = d.paper_dir().expect("a session");
    let journal = dir.join("journal.jsonl");
    let whole = std::fs::read(&journal).expect("journal");
    let orders = sim_orders(&dir).len();
    assert!(orders >= 10 && whole.len() > 1000, "{orders} orders");
    let lines: Vec<&[u8]> = whole.split_inclusive(|b| *b == b'\n').collect();
    let at_line_end: Vec<u8> = lines[..lines.len() / 2].concat();
    let damages: [(&str, Option<Vec<u8>>); 4] = [
        ("emptied", Some(Vec::new())),
        ("cut mid-line", Some(whole[..whole.len() / 2 + 7].to_vec())),
        ("cut at a line end", Some(at_line_end)),
        ("deleted", None),
    ];
    for (what, bytes) in damages {
        as_crashed(&d);
        match &bytes {
            Some(b) => std::fs::write(&journal, b).expect("damage"),
            None => std::fs::remove_file(&journal).expect("delete"),
        }
        let o = d.cli(&args);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", text(&o));
        assert!(
            text(&o).contains(&format!("{} holds", journal.display()))
                && text(&o).contains("emptied, cut or deleted"),
            "{what}: {}",
            text(&o)
        );
        assert_eq!(
            sim_orders(&dir).len(),
            orders,
            "{what}: the broker untouched"
        );
        std::fs::write(&journal, &whole).expect("restore");
    }
    // A torn last line: cut off, kept aside, and said where the user looks.
    as_crashed(&d);
    let tail = br#"{"t":"accepted","id":"x","ord"#;
    let mut torn = whole.clone();
    torn.extend_from_slice(tail);
    std::fs::write(&journal, &torn).expect("tear");
    let o = d.cli(&args);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("a torn last line ({} bytes", tail.len())),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read(&journal).expect("journal")[..whole.len()],
        whole[..]
    );
}
