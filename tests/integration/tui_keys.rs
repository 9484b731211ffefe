//! Key handling and event folding as state transitions: no terminal, no files.

use crate::common::tui_fixture as fixture;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use fixture::*;
use quantdeck::config;
use quantdeck::jobs::estimate::{Basis, Estimate};
use quantdeck::jobs::events::UpdateMetrics;
use quantdeck::jobs::{Event, EventRecord, JobKind, JobRequest, JobStatus, LogLevel};
use quantdeck::tui::app::LOG_CAPACITY;
use quantdeck::tui::chooser;
use quantdeck::tui::keymap::Mode;
use quantdeck::tui::{apply_event, handle_key, App, Command, Msg, Pane};

fn key(app: &mut App, code: KeyCode) -> Vec<Command> {
    handle_key(app, KeyEvent::new(code, KeyModifiers::NONE))
}

fn ch(app: &mut App, c: char) -> Vec<Command> {
    key(app, KeyCode::Char(c))
}

fn ctrl_c(app: &mut App) -> Vec<Command> {
    handle_key(
        app,
        KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
    )
}

fn rec(run: &str, seq: u64, minute: i64, event: Event) -> EventRecord {
    EventRecord {
        seq,
        at: at(minute),
        run_id: run.into(),
        event,
    }
}

/// A state with data but no running job started here.
fn idle_app() -> App {
    let mut app = full_app();
    app.run_mut(PAPER).status = JobStatus::Completed;
    app
}

#[test]
fn number_keys_and_tab_switch_panes() {
    let mut app = App::new();
    assert_eq!(app.pane, Pane::Data);
    for (c, pane) in ('1'..='6').zip(Pane::ALL) {
        assert!(ch(&mut app, c).is_empty());
        assert_eq!(app.pane, pane);
    }
    ch(&mut app, '7');
    assert_eq!(app.pane, Pane::Logs, "no seventh pane");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.pane, Pane::Data, "Tab wraps around");
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.pane, Pane::Logs, "Shift-Tab wraps back");
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.pane, Pane::Paper);
}

#[test]
fn key_releases_are_ignored() {
    let mut app = App::new();
    let release = KeyEvent::new_with_kind(
        KeyCode::Char('2'),
        KeyModifiers::NONE,
        KeyEventKind::Release,
    );
    handle_key(&mut app, release);
    assert_eq!(app.pane, Pane::Data);
}

#[test]
fn help_toggles_and_swallows_other_keys() {
    let mut app = App::new();
    ch(&mut app, '?');
    assert!(app.show_help);
    // While help is open, keys do not act underneath it.
    assert!(ch(&mut app, 'f').is_empty());
    ch(&mut app, '3');
    assert_eq!(app.pane, Pane::Data);
    ch(&mut app, '?');
    assert!(!app.show_help);
    ch(&mut app, '?');
    key(&mut app, KeyCode::Esc);
    assert!(!app.show_help, "Esc closes the overlay");
    ch(&mut app, '?');
    assert!(
        ch(&mut app, 'q').is_empty(),
        "q closes help rather than quitting"
    );
    assert!(!app.show_help && !app.quitting);
}

#[test]
fn quit_without_running_jobs_is_immediate() {
    let mut app = idle_app();
    assert_eq!(ch(&mut app, 'q'), vec![Command::Quit]);
    assert!(app.quitting);
    assert!(!app.confirm_quit);

    let mut app = idle_app();
    assert_eq!(
        ctrl_c(&mut app),
        vec![Command::Quit],
        "Ctrl+C behaves like q"
    );
}

#[test]
fn quit_with_running_jobs_asks_first() {
    let mut app = full_app();
    // A foreign running job (the headless training) does not count; our paper run does.
    assert!(ch(&mut app, 'q').is_empty());
    assert!(app.confirm_quit);
    assert!(app
        .message
        .contains("jobs running — quit and cancel them? (y/n)"));
    // Anything but y/n/Esc leaves the question up and does nothing.
    assert!(ch(&mut app, '2').is_empty());
    assert!(app.confirm_quit);
    assert_eq!(app.pane, Pane::Data);
    // n keeps everything running.
    assert!(ch(&mut app, 'n').is_empty());
    assert!(!app.confirm_quit && !app.quitting);
    // Ask again; Esc also declines.
    ctrl_c(&mut app);
    assert!(app.confirm_quit);
    key(&mut app, KeyCode::Esc);
    assert!(!app.confirm_quit);
    // y cancels our running jobs, then quits.
    ch(&mut app, 'q');
    assert_eq!(
        ch(&mut app, 'y'),
        vec![Command::Cancel(PAPER.into()), Command::Quit]
    );
    assert!(app.quitting && !app.confirm_quit);
}

/// The chooser's selected mode name, when open.
fn chosen(app: &App) -> Option<&str> {
    let c = app.train.open.as_ref()?;
    c.rows.get(c.selected).map(|r| r.mode.name.as_str())
}

#[test]
fn t_asks_which_mode_and_enter_trains_the_selected_symbol_in_it() {
    let mut app = full_app();
    assert!(ch(&mut app, 't').is_empty(), "nothing starts on t alone");
    assert_eq!(app.mode(), Mode::ChooseTrain);
    assert_eq!(
        chosen(&app),
        Some("quick_test"),
        "no flags: the short mode first"
    );
    let open = app.train.open.clone().expect("the chooser is open");
    assert_eq!(open.symbol, "AAPL");
    let names: Vec<&str> = open.rows.iter().map(|r| r.mode.name.as_str()).collect();
    assert_eq!(names, ["quick_test", "standard", "production", "extended"]);
    // Keys of the main screen do not act underneath it.
    assert!(ch(&mut app, 'f').is_empty() && ch(&mut app, '3').is_empty());
    assert_eq!(app.pane, Pane::Data);
    key(&mut app, KeyCode::Down);
    ch(&mut app, 'j');
    assert_eq!(chosen(&app), Some("production"));
    key(&mut app, KeyCode::Up);
    assert_eq!(chosen(&app), Some("standard"));
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        vec![Command::Train {
            symbol: "AAPL".into(),
            mode: "standard".into()
        }]
    );
    assert_eq!(app.mode(), Mode::Main, "the chooser closed");
    assert!(app.message.contains("standard"), "{}", app.message);

    // Another symbol; the selection stops at the ends.
    key(&mut app, KeyCode::Down);
    ch(&mut app, 'j');
    ch(&mut app, 't');
    for _ in 0..6 {
        ch(&mut app, 'k');
    }
    assert_eq!(chosen(&app), Some("quick_test"));
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        vec![Command::Train {
            symbol: "SYNB".into(),
            mode: "quick_test".into()
        }]
    );
}

#[test]
fn the_chooser_cancels_with_esc_q_or_ctrl_c_and_starts_nothing() {
    for cancel in [KeyCode::Esc, KeyCode::Char('q')] {
        let mut app = full_app();
        ch(&mut app, 't');
        assert!(key(&mut app, cancel).is_empty());
        assert!(app.train.open.is_none() && !app.quitting, "{cancel:?}");
    }
    let mut app = full_app();
    ch(&mut app, 't');
    assert!(
        ctrl_c(&mut app).is_empty(),
        "Ctrl+C closes the chooser first"
    );
    assert_eq!(app.mode(), Mode::Main);
    assert!(!app.quitting);
}

#[test]
fn the_chooser_shows_each_mode_with_its_estimate_from_runs_here() {
    let mut app = full_app();
    ch(&mut app, 't');
    let open = app.train.open.clone().expect("the chooser is open");
    let quick = &open.rows[0];
    assert_eq!(quick.mode.timesteps, 245_760);
    // Measured by the quick_test run on this machine, not the faster one elsewhere.
    assert_eq!(
        quick.estimate.basis,
        Basis::Measured {
            run: QUICK_RUN.into()
        }
    );
    assert_eq!(quick.estimate.sps, 8_135.0);
    let standard = &open.rows[1];
    assert!(
        matches!(&standard.estimate.basis, Basis::Scaled { run, .. } if run == QUICK_RUN),
        "{:?}",
        standard.estimate
    );
    // 50M steps scaled by the work per step from quick_test's 8-epoch run at 8,135/s: hours
    // (7.5 at the 2-bar window, where the hidden layers and 12 epochs are most of the work).
    let hours = standard.estimate.seconds(standard.mode.timesteps) / 3600.0;
    assert!((5.0..10.0).contains(&hours), "standard: {hours} h");
}

#[test]
fn a_run_finishing_later_is_measured_the_next_time_the_chooser_opens() {
    let mut app = full_app();
    let standard = config::load(Some("standard"), None).expect("standard loads");
    let run = speed_run("train-20240601-120000-syna", HOST, &standard, 1_406.0);
    quantdeck::tui::update(&mut app, Msg::Runs(vec![run]));
    ch(&mut app, 't');
    let open = app.train.open.clone().expect("the chooser is open");
    assert_eq!(
        open.rows[1].estimate,
        Estimate {
            sps: 1_406.0,
            basis: Basis::Measured {
                run: "train-20240601-120000-syna".into()
            }
        }
    );
}

#[test]
fn an_explicit_mode_is_preselected_so_t_enter_trains_it() {
    let mut app = full_app();
    let startup = config::load(Some("production"), None).expect("production loads");
    let (list, pre) = chooser::mode_configs(&startup, true, None);
    app.train = chooser::train_modes(&list, pre, false, HOST.into());
    ch(&mut app, 't');
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        vec![Command::Train {
            symbol: "AAPL".into(),
            mode: "production".into()
        }]
    );
}

#[test]
fn t_without_data_explains_itself() {
    let mut app = App::new();
    assert!(ch(&mut app, 't').is_empty());
    assert!(app.message.contains("press f"), "{}", app.message);
}

#[test]
fn data_selection_stays_in_bounds() {
    let mut app = full_app();
    key(&mut app, KeyCode::Up);
    ch(&mut app, 'k');
    assert_eq!(app.sel.data, 0);
    for _ in 0..10 {
        key(&mut app, KeyCode::Down);
    }
    assert_eq!(app.sel.data, app.series.len() - 1);
    key(&mut app, KeyCode::PageUp);
    assert_eq!(app.sel.data, 0);
    key(&mut app, KeyCode::End);
    assert_eq!(app.sel.data, 3);
    // Selection on an empty list does not underflow.
    let mut empty = App::new();
    key(&mut empty, KeyCode::Down);
    key(&mut empty, KeyCode::Up);
    assert_eq!(empty.sel.data, 0);
}

#[test]
fn run_panes_cycle_runs_and_default_to_newest() {
    let mut app = full_app();
    let shown = |app: &App| app.selected_run(JobKind::Train).map(|r| r.id.clone());
    let order = [TRAIN_FAILED, TRAIN_KILLED, TRAIN_OLD, TRAIN];
    assert_eq!(
        app.runs_of(JobKind::Train)
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        order
    );
    ch(&mut app, '2');
    assert_eq!(shown(&app).as_deref(), Some(TRAIN));
    key(&mut app, KeyCode::Up);
    assert_eq!(shown(&app).as_deref(), Some(TRAIN_OLD));
    key(&mut app, KeyCode::Home);
    assert_eq!(shown(&app).as_deref(), Some(TRAIN_FAILED));
    key(&mut app, KeyCode::Up);
    assert_eq!(shown(&app).as_deref(), Some(TRAIN_FAILED), "clamped");
    ch(&mut app, '[');
    assert_eq!(shown(&app).as_deref(), Some(TRAIN), "[ wraps");
    assert_eq!(
        app.sel.train, None,
        "choosing the newest follows the newest"
    );
    ch(&mut app, ']');
    assert_eq!(shown(&app).as_deref(), Some(TRAIN_FAILED), "] wraps");
    ch(&mut app, ']');
    assert_eq!(shown(&app).as_deref(), Some(TRAIN_KILLED));
}

#[test]
fn gating_selection_stays_in_bounds() {
    let mut app = full_app();
    ch(&mut app, '3');
    let n = app.gate_rows().len();
    for _ in 0..n + 2 {
        ch(&mut app, 'j');
    }
    assert_eq!(app.sel.gate, n - 1);
    key(&mut app, KeyCode::Home);
    assert_eq!(app.sel.gate, 0);
}

#[test]
fn fetch_and_refresh_commands() {
    let mut app = App::new();
    assert_eq!(
        ch(&mut app, 'f'),
        vec![Command::Start(JobRequest::Fetch { symbols: vec![] })]
    );
    assert_eq!(ch(&mut app, 'r'), vec![Command::RefreshData]);
}

#[test]
fn g_w_p_use_the_newest_completed_training_run() {
    let mut app = full_app();
    // The older headless run is still training: pick it, and the keys fall back to the
    // newest completed run.
    ch(&mut app, '2');
    key(&mut app, KeyCode::Up);
    assert_eq!(app.sel.train.as_deref(), Some(TRAIN_OLD));
    assert_eq!(
        ch(&mut app, 'g'),
        vec![Command::Start(JobRequest::Gate {
            train_run: TRAIN.into()
        })]
    );
    assert_eq!(
        ch(&mut app, 'w'),
        vec![Command::Start(JobRequest::WalkForward {
            train_run: TRAIN.into(),
            period: Default::default(),
        })]
    );
    assert_eq!(
        ch(&mut app, 'p'),
        vec![Command::Start(JobRequest::Paper {
            train_runs: vec![TRAIN.into()],
            bars: None,
            replay: None,
            new_session: false,
            confirm_live: false,
        })]
    );
    // With no completed training run there is nothing to evaluate.
    let mut app = App::new();
    assert!(ch(&mut app, 'g').is_empty());
    assert!(
        app.message.contains("no completed training run"),
        "{}",
        app.message
    );
}

#[test]
fn cancel_only_jobs_started_here() {
    let mut app = full_app();
    // The headless training run: not ours, so no command and a message saying why.
    ch(&mut app, '2');
    key(&mut app, KeyCode::Up);
    assert!(ch(&mut app, 'c').is_empty());
    assert!(app.message.contains("runs elsewhere"), "{}", app.message);
    // A finished run cannot be cancelled.
    key(&mut app, KeyCode::Down);
    assert!(ch(&mut app, 'c').is_empty());
    assert!(app.message.contains("not running"), "{}", app.message);
    // Our paper run can.
    ch(&mut app, '5');
    assert_eq!(ch(&mut app, 'c'), vec![Command::Cancel(PAPER.into())]);
}

#[test]
fn logs_scroll_with_page_keys() {
    let mut app = full_app();
    ch(&mut app, '6');
    let n = app.logs.len();
    assert!(n > 10);
    key(&mut app, KeyCode::PageUp);
    assert_eq!(app.sel.log_scroll, 10);
    key(&mut app, KeyCode::PageUp);
    key(&mut app, KeyCode::PageUp);
    assert_eq!(
        app.sel.log_scroll,
        n - 1,
        "cannot scroll past the oldest line"
    );
    key(&mut app, KeyCode::PageDown);
    assert_eq!(app.sel.log_scroll, n - 11);
    key(&mut app, KeyCode::End);
    assert_eq!(app.sel.log_scroll, 0);
}

#[test]
fn finished_sets_the_status() {
    let mut app = App::new();
    let run = "train-20240601-120000-syna";
    apply_event(
        &mut app,
        &rec(
            run,
            0,
            0,
            Event::Started {
                kind: JobKind::Train,
                label: "SYNA".into(),
            },
        ),
    );
    assert_eq!(app.runs[run].status, JobStatus::Running);
    apply_event(
        &mut app,
        &rec(
            run,
            1,
            5,
            Event::Finished {
                status: JobStatus::Cancelled,
                message: "checkpoint saved".into(),
            },
        ),
    );
    let r = &app.runs[run];
    assert_eq!(r.status, JobStatus::Cancelled);
    assert_eq!(r.message, "checkpoint saved");
    assert_eq!(r.finished_at, Some(at(5)));
}

#[test]
fn unknown_runs_and_out_of_order_events_are_folded_in() {
    let mut app = App::new();
    let run = "walk-forward-20240601-130000-synb";
    // Finished before Started, and a fold before either: nothing panics, nothing is lost.
    apply_event(
        &mut app,
        &rec(
            run,
            9,
            9,
            Event::Finished {
                status: JobStatus::Completed,
                message: String::new(),
            },
        ),
    );
    assert_eq!(
        app.runs[run].kind,
        Some(JobKind::WalkForward),
        "kind read from the run id"
    );
    apply_event(
        &mut app,
        &rec(
            run,
            0,
            0,
            Event::Started {
                kind: JobKind::WalkForward,
                label: "x".into(),
            },
        ),
    );
    assert_eq!(
        app.runs[run].status,
        JobStatus::Completed,
        "a late Started does not revive the run"
    );

    let train = "some-run-without-a-kind-prefix";
    let u = |update| UpdateMetrics {
        update,
        updates: 3,
        ..UpdateMetrics::default()
    };
    for (seq, n) in [(2, 3), (0, 1), (1, 2)] {
        apply_event(&mut app, &rec(train, seq, seq as i64, Event::Update(u(n))));
    }
    let r = &app.runs[train];
    assert_eq!(
        r.kind,
        Some(JobKind::Train),
        "kind inferred from the events"
    );
    assert_eq!(
        r.updates.iter().map(|m| m.update).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // The same record twice (a channel and a tail) counts once.
    apply_event(&mut app, &rec(train, 1, 1, Event::Update(u(2))));
    assert_eq!(app.runs[train].updates.len(), 3);

    // Unreadable lines carry no run: they reach the log and create no run.
    let before = app.runs.len();
    apply_event(
        &mut app,
        &rec(
            "",
            u64::MAX,
            3,
            Event::Log {
                level: LogLevel::Warn,
                message: "bad line".into(),
            },
        ),
    );
    assert_eq!(app.runs.len(), before);
    assert!(app.logs.iter().any(|l| l.message == "bad line"));
}

#[test]
fn log_ring_is_bounded_and_time_ordered() {
    let mut app = App::new();
    for i in 0..(LOG_CAPACITY as u64 + 50) {
        let e = Event::Log {
            level: LogLevel::Info,
            message: format!("line {i}"),
        };
        apply_event(&mut app, &rec("fetch-x", i, i as i64, e));
    }
    assert_eq!(app.logs.len(), LOG_CAPACITY);
    assert_eq!(
        app.logs.back().map(|l| l.message.as_str()),
        Some("line 549")
    );
    // A late line from an earlier time is placed by its time, not at the bottom.
    let e = Event::Log {
        level: LogLevel::Info,
        message: "late".into(),
    };
    apply_event(&mut app, &rec("gate-y", 0, 540, e));
    let pos = app.logs.iter().position(|l| l.message == "late");
    assert_eq!(pos, Some(LOG_CAPACITY - 10));
}

#[test]
fn fetch_events_mark_the_store_stale() {
    let mut app = App::new();
    let e = Event::SymbolFetched {
        symbol: "SYNA".into(),
        timeframe: quantdeck::market::Timeframe::Minute(15),
        bars: 10,
        first: None,
        last: None,
        source: "synthetic".into(),
    };
    apply_event(&mut app, &rec(FETCH, 1, 1, e));
    assert!(app.store_stale);
    assert_eq!(app.fetch["SYNA"].bars, 10);
    assert_eq!(app.runs[FETCH].kind, Some(JobKind::Fetch));
}
