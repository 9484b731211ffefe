//! Key presses as state transitions: [`handle_key`] looks the key up in the keymap and returns
//! the side effects (commands) for the event loop to perform.

use super::Command;
use crate::jobs::{JobKind, JobRequest, JobStatus};
use crate::live::view::Command as PaperCommand;
use crate::tui::app::{App, Pane, RunView};
use crate::tui::keymap::{self, Action};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind};

/// Lines PgUp / PgDn move.
const PAGE: usize = 10;

/// Turns a key press into state changes and side effects. Keys the keymap does not hold for
/// the current mode do nothing.
pub fn handle_key(app: &mut App, key: KeyEvent) -> Vec<Command> {
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    match keymap::resolve(app.mode(), &key) {
        Some(action) => act(app, action, &key),
        None => Vec::new(),
    }
}

fn act(app: &mut App, action: Action, key: &KeyEvent) -> Vec<Command> {
    match action {
        Action::GoToPane => go_to_pane(app, key.code),
        Action::NextPane => app.pane = app.pane.next(),
        Action::PrevPane => app.pane = app.pane.prev(),
        Action::Up => move_selection(app, -1),
        Action::Down => move_selection(app, 1),
        Action::Page if key.code == KeyCode::PageUp => move_selection(app, -(PAGE as isize)),
        Action::Page => move_selection(app, PAGE as isize),
        Action::Ends if key.code == KeyCode::Home => move_selection(app, isize::MIN / 2),
        Action::Ends => move_selection(app, isize::MAX / 2),
        Action::PrevRun => cycle_run(app, -1),
        Action::NextRun => cycle_run(app, 1),
        Action::Fetch => {
            app.message = "fetching the whole universe…".into();
            return vec![Command::Start(JobRequest::Fetch {
                symbols: Vec::new(),
            })];
        }
        Action::Train => choose_training(app),
        Action::Gate => return evaluate(app, JobKind::Gate),
        Action::WalkForward => return evaluate(app, JobKind::WalkForward),
        Action::Paper => return evaluate(app, JobKind::Paper),
        Action::Cancel => return cancel_selected(app),
        Action::Refresh => {
            app.message = "refreshing…".into();
            return vec![Command::RefreshData];
        }
        Action::ToggleFeatures => {
            // The last view is kept while hidden: shown again at once if still current.
            app.show_features = !app.show_features;
            if app.show_features {
                app.pane = Pane::Data;
            }
        }
        Action::TrainingView => training_view(app, key.code),
        Action::ShowHelp => app.show_help = true,
        Action::CloseHelp => app.show_help = false,
        Action::Quit => return request_quit(app),
        Action::ConfirmQuit => return quit_cancelling(app, "cancelling jobs and quitting…".into()),
        Action::AbortQuit => {
            app.confirm_quit = false;
            app.message = "quit aborted: jobs keep running".into();
        }
        Action::ChooseMove | Action::ChooseStart | Action::ChooseCancel => {
            return choose(app, action, key)
        }
        Action::PauseResume
        | Action::Flatten
        | Action::ConfirmFlatten
        | Action::AbortFlatten
        | Action::ClearLatches
        | Action::StopDaemon
        | Action::ConfirmStop
        | Action::AbortStop => return paper_action(app, action),
    }
    Vec::new()
}

/// A digit key: the pane of that number, if there is one.
fn go_to_pane(app: &mut App, code: KeyCode) {
    let pane = match code {
        KeyCode::Char(c) => c
            .to_digit(10)
            .and_then(|d| (d as usize).checked_sub(1))
            .and_then(Pane::from_index),
        _ => None,
    };
    if let Some(p) = pane {
        app.pane = p;
    }
}

/// The keys that command the paper session shown in the Paper pane (some asked first).
fn paper_action(app: &mut App, action: Action) -> Vec<Command> {
    match action {
        Action::PauseResume => {
            let Some((run, paused)) = paper_target(app) else {
                return Vec::new();
            };
            let command = if paused {
                PaperCommand::Resume
            } else {
                PaperCommand::Pause
            };
            app.message = format!("{} sent to {run}", command.as_str());
            return vec![Command::Paper { run, command }];
        }
        Action::Flatten => {
            if let Some((run, _)) = paper_target(app) {
                app.message = format!("flatten {run}? (y/n)");
                app.confirm_flatten = Some(run);
            }
        }
        Action::ConfirmFlatten => {
            if let Some(run) = app.confirm_flatten.take() {
                app.message = format!("flatten-all sent to {run}");
                return vec![Command::Paper {
                    run,
                    command: PaperCommand::Flatten,
                }];
            }
        }
        Action::AbortFlatten => {
            app.confirm_flatten = None;
            app.message = "flatten aborted".into();
        }
        Action::ClearLatches => {
            let Some((run, _)) = paper_target(app) else {
                return Vec::new();
            };
            app.message = format!("clear sent to {run}");
            return vec![Command::Paper {
                run,
                command: PaperCommand::Clear,
            }];
        }
        // Stopping the daemon stops all trading: asked first, like the kill switch.
        Action::StopDaemon => {
            if let Some((run, _)) = paper_target(app) {
                app.message = format!("stop the daemon of {run}? (y/n)");
                app.confirm_stop = Some(run);
            }
        }
        Action::ConfirmStop => {
            if let Some(run) = app.confirm_stop.take() {
                app.message = format!("stop sent to {run}");
                return vec![Command::Paper {
                    run,
                    command: PaperCommand::Stop,
                }];
            }
        }
        Action::AbortStop => {
            app.confirm_stop = None;
            app.message = "stop aborted: the daemon keeps trading".into();
        }
        _ => {}
    }
    Vec::new()
}

/// The paper session shown in the Paper pane, and whether it is paused; a message otherwise.
fn paper_target(app: &mut App) -> Option<(String, bool)> {
    if app.pane != Pane::Paper {
        app.message = "paper commands act on the session shown in the Paper pane (5)".into();
        return None;
    }
    match app.selected_run(JobKind::Paper) {
        Some(r) => Some((
            r.id.clone(),
            r.paper.snapshot.as_ref().is_some_and(|s| s.modes.paused),
        )),
        None => {
            app.message = "no paper session to command".into();
            None
        }
    }
}

fn request_quit(app: &mut App) -> Vec<Command> {
    app.show_help = false;
    app.train.open = None;
    if app.running_ours().is_empty() {
        app.quitting = true;
        vec![Command::Quit]
    } else {
        app.confirm_quit = true;
        app.message = "jobs running — quit and cancel them? (y/n)".into();
        Vec::new()
    }
}

/// Quits, cancelling every running job started here (the loop waits, bounded, for them to save).
pub(super) fn quit_cancelling(app: &mut App, message: String) -> Vec<Command> {
    app.confirm_quit = false;
    app.show_help = false;
    app.train.open = None;
    app.quitting = true;
    app.message = message;
    let mut cmds: Vec<Command> = app
        .running_ours()
        .iter()
        .map(|r| Command::Cancel(r.id.clone()))
        .collect();
    cmds.push(Command::Quit);
    cmds
}

fn move_selection(app: &mut App, delta: isize) {
    let step = |cur: usize, len: usize| -> usize {
        let max = len.saturating_sub(1) as isize;
        (cur as isize).saturating_add(delta).clamp(0, max) as usize
    };
    match app.pane {
        Pane::Training if app.sweep.show => app.sweep.move_sel(delta),
        Pane::Data => app.sel.data = step(app.sel.data, app.series.len()),
        Pane::Gating => app.sel.gate = step(app.sel.gate, app.gate_rows().len()),
        Pane::Logs => {
            // Up scrolls back in time: the scroll offset counts lines from the newest.
            let max = app.logs.len().saturating_sub(1) as isize;
            let cur = app.sel.log_scroll as isize;
            app.sel.log_scroll = cur.saturating_sub(delta).clamp(0, max) as usize;
        }
        pane => {
            if let Some(kind) = pane.run_kind() {
                select_run(app, kind, step);
            }
        }
    }
}

/// `[` / `]`: step through the runs of the pane (training runs outside run panes), wrapping.
fn cycle_run(app: &mut App, delta: isize) {
    let kind = app.pane.run_kind().unwrap_or(JobKind::Train);
    select_run(app, kind, |cur, len| {
        (cur as isize + delta).rem_euclid(len.max(1) as isize) as usize
    });
    if let Some(r) = app.selected_run(kind) {
        app.message = format!("{} run {}", kind.as_str(), r.id);
    }
}

fn select_run(app: &mut App, kind: JobKind, pick: impl Fn(usize, usize) -> usize) {
    let ids: Vec<String> = app.runs_of(kind).iter().map(|r| r.id.clone()).collect();
    if ids.is_empty() {
        return;
    }
    let cur = app
        .selected_run(kind)
        .and_then(|r| ids.iter().position(|id| *id == r.id))
        .unwrap_or(ids.len() - 1);
    let next = pick(cur, ids.len()).min(ids.len() - 1);
    // Picking the newest means "follow the newest", so a run started later shows up.
    let choice = if next + 1 == ids.len() {
        None
    } else {
        Some(ids[next].clone())
    };
    if let Some(slot) = app.sel_slot_mut(kind) {
        *slot = choice;
    }
}

/// `t`: asks which mode to train the selected series in (the chooser starts it).
fn choose_training(app: &mut App) {
    let Some(symbol) = app.selected_series().map(|s| s.symbol.clone()) else {
        app.message = "no data to train on: press f to fetch".into();
        return;
    };
    app.message = if app.train.open_for(&symbol) {
        format!("train {symbol}: which mode?")
    } else {
        "no training mode to offer (see the log)".into()
    };
}

/// The keys of the training-mode chooser.
fn choose(app: &mut App, action: Action, key: &KeyEvent) -> Vec<Command> {
    match action {
        Action::ChooseMove => {
            let up = matches!(key.code, KeyCode::Up | KeyCode::Char('k'));
            app.train.step(if up { -1 } else { 1 });
        }
        Action::ChooseStart => {
            if let Some((symbol, mode)) = app.train.take_choice() {
                app.message = format!("starting {mode} training on {symbol}…");
                return vec![Command::Train { symbol, mode }];
            }
        }
        Action::ChooseCancel => {
            app.train.open = None;
            app.message = "training not started".into();
        }
        _ => {}
    }
    Vec::new()
}

/// The training run `g` / `w` / `p` act on: the one the Training pane shows (picked, else the
/// newest) if it has stopped — completed, cancelled, or interrupted (those are evaluated from
/// their best checkpoint) — else the newest completed one.
pub fn target_train_run(app: &App) -> Option<String> {
    let shown = app
        .selected_run(JobKind::Train)
        .filter(|r| !r.is_running() && r.status != JobStatus::Failed);
    shown
        .or_else(|| {
            app.runs_of(JobKind::Train)
                .into_iter()
                .rev()
                .find(|r| r.status == JobStatus::Completed)
        })
        .map(|r| r.id.clone())
}

fn evaluate(app: &mut App, kind: JobKind) -> Vec<Command> {
    let verb = match kind {
        JobKind::Gate => "gate",
        JobKind::WalkForward => "walk-forward",
        _ => "paper-trade",
    };
    let Some(train_run) = target_train_run(app) else {
        app.message = format!("no completed training run to {verb}");
        return Vec::new();
    };
    app.message = format!("starting {verb} of {train_run}…");
    let req = match kind {
        JobKind::Gate => JobRequest::Gate { train_run },
        JobKind::WalkForward => JobRequest::WalkForward {
            train_run,
            period: Default::default(),
        },
        _ => JobRequest::Paper {
            train_runs: vec![train_run],
            bars: None,
            replay: None,
            new_session: false,
            confirm_live: false,
        },
    };
    vec![Command::Start(req)]
}

/// `R`: the reward components or the metrics; `S`: the newest sweep's leaderboard or the run;
/// `o`: the leaderboard's selected task's training run.
fn training_view(app: &mut App, code: KeyCode) {
    app.pane = Pane::Training;
    match code {
        KeyCode::Char('R') => {
            app.show_reward_parts = !app.show_reward_parts;
            app.message = if app.show_reward_parts {
                "Training: reward components (R for the metrics)".into()
            } else {
                "Training: metrics (R for the reward components)".into()
            };
        }
        KeyCode::Char('S') => app.message = app.sweep.toggle(),
        _ if !app.sweep.show => {
            app.message = "o opens a sweep task's run: S shows the sweep leaderboard first".into()
        }
        _ => match app.sweep.open() {
            Ok(run) => {
                app.message =
                    format!("training run {run} of the sweep (S: back to the leaderboard)");
                app.sel.train = Some(run);
            }
            Err(why) => app.message = why,
        },
    }
}

/// The run `c` acts on in the current pane.
fn cancel_target(app: &App) -> Option<&RunView> {
    let newest_running = |kind: Option<JobKind>| {
        let mut v: Vec<&RunView> = app
            .runs
            .values()
            .filter(|r| r.is_running() && (kind.is_none() || r.kind == kind))
            .collect();
        v.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        v.iter().rev().find(|r| r.ours).or(v.last()).copied()
    };
    match app.pane {
        Pane::Data => newest_running(Some(JobKind::Fetch)),
        Pane::Gating => {
            let rows = app.gate_rows();
            rows.get(app.sel.gate.min(rows.len().saturating_sub(1)))
                .copied()
        }
        Pane::Logs => newest_running(None),
        pane => pane.run_kind().and_then(|k| app.selected_run(k)),
    }
}

fn cancel_selected(app: &mut App) -> Vec<Command> {
    let Some(run) = cancel_target(app) else {
        app.message = "no job selected to cancel".into();
        return Vec::new();
    };
    let id = run.id.clone();
    if !run.is_running() {
        app.message = format!("{id} is not running ({})", run.state());
        Vec::new()
    } else if !run.ours {
        app.message = format!("{id} runs elsewhere: stop it where it was started");
        Vec::new()
    } else {
        app.message = format!("cancelling {id}…");
        vec![Command::Cancel(id)]
    }
}
