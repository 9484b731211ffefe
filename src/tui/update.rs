//! State transitions: job events and key presses in, new state (and side effects to perform)
//! out. Nothing here touches the terminal, the disk or the clock.

use super::app::{
    App, Checkpoint, FetchStatus, LogLine, Pane, Progress, RunView, EQUITY_CAPACITY,
    ORDER_CAPACITY, RUN_LOG_CAPACITY,
};
use crate::jobs::{Event, EventRecord, JobKind, JobRequest, JobStatus, LogLevel};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Side effects the event loop performs for `handle_key`.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Start(JobRequest),
    Cancel(String),
    /// Re-read the run directories and the bar store now.
    RefreshData,
    Quit,
}

/// Lines PgUp / PgDn move.
const PAGE: usize = 10;

/// Folds one event of any run into the state. Unknown runs are created on the spot; events
/// may arrive out of order or twice (a channel and a file tail) without harm.
pub fn apply_event(app: &mut App, rec: &EventRecord) {
    if rec.run_id.is_empty() {
        // Lines a tail could not parse carry no run: they only go to the log.
        if let Event::Log { level, message } = &rec.event {
            app.push_log(LogLine {
                at: Some(rec.at),
                run_id: String::new(),
                level: *level,
                message: message.clone(),
            });
        }
        return;
    }
    let run = app.run_mut(&rec.run_id);
    // u64::MAX marks a line the tail could not read: never a duplicate.
    if rec.seq != u64::MAX && !run.seen.insert(rec.seq) {
        return;
    }
    run.last_at = run.last_at.max(Some(rec.at));
    let mut log: Option<LogLine> = None;
    let line = |run: &RunView, level: LogLevel, message: String| LogLine {
        at: Some(rec.at),
        run_id: run.id.clone(),
        level,
        message,
    };
    match &rec.event {
        Event::Started { kind, label } => {
            run.kind = Some(*kind);
            run.label = label.clone();
            run.started_at = Some(rec.at);
            log = Some(line(
                run,
                LogLevel::Info,
                format!("started {} {label}", kind.as_str()),
            ));
        }
        Event::Progress {
            done,
            total,
            message,
        } => {
            run.progress = Some(Progress {
                done: *done,
                total: *total,
                message: message.clone(),
            });
        }
        Event::SymbolFetched {
            symbol,
            timeframe,
            bars,
            first,
            last,
            source,
        } => {
            infer_kind(run, JobKind::Fetch);
            if !run.fetched.contains(symbol) {
                run.fetched.push(symbol.clone());
            }
            let status = FetchStatus {
                run_id: rec.run_id.clone(),
                timeframe: timeframe.to_string(),
                bars: *bars,
                first: *first,
                last: *last,
                source: source.clone(),
                at: rec.at,
            };
            // A replayed older fetch must not hide a newer one.
            let newer = app.fetch.get(symbol).is_none_or(|old| old.at <= rec.at);
            if newer {
                app.fetch.insert(symbol.clone(), status);
            }
            app.store_stale = true;
        }
        Event::Update(m) => {
            infer_kind(run, JobKind::Train);
            upsert_by(&mut run.updates, m.clone(), |u| u.update);
        }
        Event::Validation(v) => {
            infer_kind(run, JobKind::Train);
            upsert_by(&mut run.validations, v.clone(), |u| u.update);
        }
        Event::Checkpoint {
            path,
            update,
            reason,
        } => {
            infer_kind(run, JobKind::Train);
            run.checkpoints.push(Checkpoint {
                path: path.clone(),
                update: *update,
                reason: *reason,
            });
        }
        Event::Gate(g) => {
            infer_kind(run, JobKind::Gate);
            run.gate = Some(g.clone());
        }
        Event::Fold(f) => {
            infer_kind(run, JobKind::WalkForward);
            upsert_by(&mut run.folds, f.clone(), |f| f.fold);
        }
        Event::Decision(d) => {
            infer_kind(run, JobKind::WalkForward);
            run.decision = Some(d.clone());
        }
        Event::Paper(s) => {
            infer_kind(run, JobKind::Paper);
            let p = &mut run.paper;
            p.snapshots += 1;
            p.equity.push((p.snapshots as f64, s.account.equity));
            if p.equity.len() > EQUITY_CAPACITY {
                thin(&mut p.equity);
            }
            p.snapshot = Some((**s).clone());
        }
        Event::Order(o) => {
            infer_kind(run, JobKind::Paper);
            run.paper.orders.push_back(o.clone());
            if run.paper.orders.len() > ORDER_CAPACITY {
                run.paper.orders.pop_front();
            }
        }
        Event::Fill(f) => {
            infer_kind(run, JobKind::Paper);
            run.paper.fills.push_back(f.clone());
            if run.paper.fills.len() > ORDER_CAPACITY {
                run.paper.fills.pop_front();
            }
        }
        Event::CommandDone {
            command, message, ..
        } => {
            log = Some(line(
                run,
                LogLevel::Info,
                format!("{}: {message}", command.as_str()),
            ));
        }
        Event::Log { level, message } => {
            let l = line(run, *level, message.clone());
            run.logs.push_back(l.clone());
            if run.logs.len() > RUN_LOG_CAPACITY {
                run.logs.pop_front();
            }
            log = Some(l);
        }
        Event::Finished { status, message } => {
            run.status = *status;
            run.stale = false;
            run.finished_at = Some(rec.at);
            run.message = message.clone();
            let what = run.kind.map_or("job", |k| k.as_str());
            let level = if *status == JobStatus::Failed {
                LogLevel::Error
            } else {
                LogLevel::Info
            };
            let text = if message.is_empty() {
                format!("{what} {} {}", run.label, status.as_str())
            } else {
                format!("{what} {} {}: {message}", run.label, status.as_str())
            };
            log = Some(line(run, level, text));
        }
    }
    if let Some(l) = log {
        // The user started it here, so its outcome goes to the message line too.
        let finished_ours = matches!(rec.event, Event::Finished { .. })
            && app.runs.get(&rec.run_id).is_some_and(|r| r.ours);
        if finished_ours {
            app.message = l.message.clone();
        }
        app.push_log(l);
    }
}

fn infer_kind(run: &mut RunView, kind: JobKind) {
    if run.kind.is_none() {
        run.kind = Some(kind);
    }
}

/// Inserts `item` keeping `v` sorted by `key`; an item with the same key replaces the old one.
fn upsert_by<T, K: Ord>(v: &mut Vec<T>, item: T, key: impl Fn(&T) -> K) {
    let k = key(&item);
    match v.binary_search_by(|x| key(x).cmp(&k)) {
        Ok(i) => v[i] = item,
        Err(i) => v.insert(i, item),
    }
}

/// Halves a long series (keeping its last point) so memory stays bounded on long runs.
fn thin(points: &mut Vec<(f64, f64)>) {
    let last = points.last().copied();
    let mut i = 0;
    points.retain(|_| {
        i += 1;
        i % 2 == 1
    });
    if let Some(last) = last {
        if points.last() != Some(&last) {
            points.push(last);
        }
    }
}

/// Turns a key press into state changes and side effects.
pub fn handle_key(app: &mut App, key: KeyEvent) -> Vec<Command> {
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL)
        && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C'));

    if app.confirm_quit {
        return match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => confirm_quit(app),
            _ if ctrl_c => confirm_quit(app),
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                app.confirm_quit = false;
                app.message = "quit aborted: jobs keep running".into();
                Vec::new()
            }
            _ => Vec::new(),
        };
    }
    if ctrl_c {
        return request_quit(app);
    }
    if app.show_help {
        if matches!(
            key.code,
            KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q')
        ) {
            app.show_help = false;
        }
        return Vec::new();
    }

    match key.code {
        KeyCode::Char('q') => return request_quit(app),
        KeyCode::Char('?') => app.show_help = true,
        KeyCode::Esc => {}
        KeyCode::Char(c @ '1'..='6') => {
            let i = c as usize - '1' as usize;
            if let Some(p) = Pane::from_index(i) {
                app.pane = p;
            }
        }
        KeyCode::Tab => app.pane = app.pane.next(),
        KeyCode::BackTab => app.pane = app.pane.prev(),
        KeyCode::Up | KeyCode::Char('k') => move_selection(app, -1),
        KeyCode::Down | KeyCode::Char('j') => move_selection(app, 1),
        KeyCode::PageUp => move_selection(app, -(PAGE as isize)),
        KeyCode::PageDown => move_selection(app, PAGE as isize),
        KeyCode::Home => move_selection(app, isize::MIN / 2),
        KeyCode::End => move_selection(app, isize::MAX / 2),
        KeyCode::Char('[') => cycle_run(app, -1),
        KeyCode::Char(']') => cycle_run(app, 1),
        KeyCode::Char('f') => {
            app.message = "fetching the whole universe…".into();
            return vec![Command::Start(JobRequest::Fetch {
                symbols: Vec::new(),
            })];
        }
        KeyCode::Char('t') => return train_selected(app),
        KeyCode::Char('g') => return evaluate(app, JobKind::Gate),
        KeyCode::Char('w') => return evaluate(app, JobKind::WalkForward),
        KeyCode::Char('p') => return evaluate(app, JobKind::Paper),
        KeyCode::Char('c') => return cancel_selected(app),
        KeyCode::Char('r') => {
            app.message = "refreshing…".into();
            return vec![Command::RefreshData];
        }
        KeyCode::Char('v') => {
            app.show_features = !app.show_features;
            if app.show_features {
                app.pane = Pane::Data;
            } else {
                app.features = None;
            }
        }
        _ => {}
    }
    Vec::new()
}

fn request_quit(app: &mut App) -> Vec<Command> {
    if app.running_ours().is_empty() {
        app.quitting = true;
        vec![Command::Quit]
    } else {
        app.confirm_quit = true;
        app.message = "jobs running — quit and cancel them? (y/n)".into();
        Vec::new()
    }
}

fn confirm_quit(app: &mut App) -> Vec<Command> {
    app.confirm_quit = false;
    app.quitting = true;
    app.message = "cancelling jobs and quitting…".into();
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

fn train_selected(app: &mut App) -> Vec<Command> {
    match app.selected_series() {
        Some(s) => {
            let symbol = s.symbol.clone();
            app.message = format!("starting training on {symbol}…");
            vec![Command::Start(JobRequest::Train { symbol })]
        }
        None => {
            app.message = "no data to train on: press f to fetch".into();
            Vec::new()
        }
    }
}

/// The training run `g` / `w` / `p` act on: the one picked in the Training pane if it has
/// finished, else the newest completed one.
pub fn target_train_run(app: &App) -> Option<String> {
    let picked = app
        .sel
        .train
        .as_ref()
        .and_then(|id| app.runs.get(id))
        .filter(|r| matches!(r.status, JobStatus::Completed | JobStatus::Cancelled) && !r.stale);
    picked
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
            new_session: false,
            confirm_live: false,
        },
    };
    vec![Command::Start(req)]
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
