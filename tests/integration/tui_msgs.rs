//! Messages other than keys as state transitions: signals, the end of a job started here, what
//! the watcher reports (manifests, the store, features), and evaluating an interrupted run.

use crate::common::tui_fixture::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use quantdeck::jobs::{Event, EventRecord, JobKind, JobRequest, JobStatus, RunSummary};
use quantdeck::market::Timeframe;
use quantdeck::signals::StopSignal;
use quantdeck::tui::app::{FeatureView, SeriesKey};
use quantdeck::tui::{handle_key, update, App, Command, JobId, Msg, Pane};

fn ch(app: &mut App, c: char) -> Vec<Command> {
    handle_key(app, KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

#[test]
fn a_signal_cancels_our_jobs_and_quits() {
    for sig in [StopSignal::Terminate, StopSignal::Interrupt] {
        let mut app = full_app();
        let fx = update(&mut app, Msg::Signal(sig));
        assert_eq!(
            fx.commands,
            vec![Command::Cancel(PAPER.into()), Command::Quit],
            "only the job started here is cancelled (the headless run is left alone)"
        );
        assert!(app.quitting && !app.exit_now && !app.no_terminal);
        assert!(app.message.contains(sig.name()), "{}", app.message);
    }
}

#[test]
fn a_signal_answers_open_overlays() {
    let mut app = full_app();
    app.show_help = true;
    ch(&mut app, 'q'); // closes help
    ch(&mut app, 'q'); // asks, as our paper job runs
    assert!(app.confirm_quit);
    let fx = update(&mut app, Msg::Signal(StopSignal::Terminate));
    assert!(fx.commands.contains(&Command::Quit));
    assert!(!app.confirm_quit && !app.show_help && app.quitting);

    let mut app = full_app();
    ch(&mut app, 't');
    assert!(app.train.open.is_some());
    update(&mut app, Msg::Signal(StopSignal::Terminate));
    assert!(
        app.train.open.is_none() && app.quitting,
        "the chooser closes"
    );
}

#[test]
fn hangup_stops_drawing_and_a_second_signal_leaves_at_once() {
    let mut app = full_app();
    update(&mut app, Msg::Signal(StopSignal::Hangup));
    assert!(app.quitting && app.no_terminal && !app.exit_now);
    let fx = update(&mut app, Msg::Signal(StopSignal::Terminate));
    assert!(app.exit_now);
    assert!(fx.commands.is_empty(), "nothing more to cancel");

    let mut app = full_app();
    update(&mut app, Msg::InputClosed("EIO".into()));
    assert!(app.quitting && app.no_terminal);
}

#[test]
fn events_of_our_jobs_mark_the_run_ours_with_its_parent() {
    let mut app = App::new();
    let run = "gate-20240601-120000-syna";
    let rec = EventRecord {
        seq: 0,
        at: at(300),
        run_id: run.into(),
        event: Event::Started {
            kind: JobKind::Gate,
            label: "SYNA".into(),
        },
    };
    let fx = update(
        &mut app,
        Msg::Job {
            job: JobId(0),
            kind: JobKind::Gate,
            parent: Some(TRAIN.into()),
            rec: Box::new(rec),
        },
    );
    assert!(fx.redraw);
    let r = &app.runs[run];
    assert!(r.ours && r.is_running());
    assert_eq!(r.parent.as_deref(), Some(TRAIN));
    assert_eq!(app.running_ours().len(), 1);
}

#[test]
fn a_job_that_ended_in_error_is_failed_not_running() {
    let mut app = full_app();
    let fx = update(
        &mut app,
        Msg::JobEnded {
            job: JobId(3),
            kind: JobKind::Paper,
            run_id: Some(PAPER.into()),
            error: Some("its thread panicked".into()),
        },
    );
    assert!(fx.redraw);
    let r = &app.runs[PAPER];
    assert_eq!(r.status, JobStatus::Failed);
    assert!(r.message.contains("paper job failed: its thread panicked"));
    assert!(app.message.contains("panicked"));
    // A clean end changes nothing: the Finished event said it all.
    let before = app.clone();
    let fx = update(
        &mut app,
        Msg::JobEnded {
            job: JobId(4),
            kind: JobKind::Train,
            run_id: Some(TRAIN.into()),
            error: None,
        },
    );
    assert!(!fx.redraw && app == before);
}

#[test]
fn manifests_from_the_watcher_mark_dead_runs_interrupted() {
    let mut app = full_app();
    assert_eq!(app.runs[TRAIN_KILLED].state(), "interrupted");
    assert!(!app.runs[TRAIN_KILLED].is_running());
    assert_eq!(
        app.running_count(),
        2,
        "the interrupted run is not counted as running"
    );
    // The same manifest again changes nothing and asks for no redraw.
    let again = RunSummary {
        manifest: manifest(TRAIN_KILLED, JobKind::Train, "SYNA", at(-600)),
        path: "x".into(),
        stale: true,
    };
    let before = app.clone();
    assert!(!update(&mut app, Msg::Runs(vec![again])).redraw);
    assert!(app == before);
}

#[test]
fn the_store_is_read_before_saying_it_is_empty() {
    let mut app = App::new();
    assert!(!app.store_read);
    assert!(update(&mut app, Msg::Series(Vec::new())).redraw);
    assert!(app.store_read);
    assert!(!update(&mut app, Msg::Series(Vec::new())).redraw);
}

#[test]
fn the_feature_view_follows_the_selection() {
    let mut app = full_app();
    assert_eq!(app.wanted_features(), None, "hidden: nothing to compute");
    ch(&mut app, 'v');
    let syna = |app: &App| app.wanted_features();
    assert_eq!(
        syna(&app),
        Some(SeriesKey {
            symbol: "AAPL".into(),
            timeframe: Timeframe::Minute(15)
        })
    );
    let view = |symbol: &str| FeatureView {
        symbol: symbol.into(),
        timeframe: Timeframe::Minute(15),
        at: None,
        layout: "v3".into(),
        values: vec![("ret_1".into(), 0.5)],
        error: None,
    };
    update(&mut app, Msg::Features(view("AAPL")));
    assert_eq!(
        app.current_features().map(|f| f.symbol.as_str()),
        Some("AAPL")
    );
    // Another row selected: the old view is not shown as if it were the new series'.
    ch(&mut app, 'j');
    assert_eq!(syna(&app).map(|k| k.symbol), Some("SYNA".into()));
    assert!(app.current_features().is_none());
    update(&mut app, Msg::Features(view("SYNA")));
    assert!(app.current_features().is_some());
    // Hidden and shown again: the last view comes back at once.
    ch(&mut app, 'v');
    assert!(app.current_features().is_none() && app.wanted_features().is_none());
    ch(&mut app, 'v');
    assert_eq!(app.pane, Pane::Data);
    assert_eq!(
        app.current_features().map(|f| f.symbol.as_str()),
        Some("SYNA")
    );
}

#[test]
fn g_and_w_evaluate_the_interrupted_run_shown() {
    let mut app = full_app();
    ch(&mut app, '2');
    app.sel.train = Some(TRAIN_KILLED.into());
    assert_eq!(
        ch(&mut app, 'g'),
        vec![Command::Start(JobRequest::Gate {
            train_run: TRAIN_KILLED.into()
        })]
    );
    assert_eq!(
        ch(&mut app, 'w'),
        vec![Command::Start(JobRequest::WalkForward {
            train_run: TRAIN_KILLED.into(),
            period: Default::default(),
        })]
    );
    // A failed run has nothing to evaluate: the newest completed run is used.
    app.sel.train = Some(TRAIN_FAILED.into());
    assert_eq!(
        ch(&mut app, 'g'),
        vec![Command::Start(JobRequest::Gate {
            train_run: TRAIN.into()
        })]
    );
}
