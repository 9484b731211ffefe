//! Job events folded into the state: from a job's channel or a tailed `events.jsonl`.

use crate::jobs::events::RestartReason;
use crate::jobs::{CheckpointReason, Event, EventRecord, JobKind, JobStatus, LogLevel};
use crate::tui::app::{
    App, Checkpoint, FetchStatus, LogLine, Progress, RunView, EQUITY_CAPACITY, ORDER_CAPACITY,
    RUN_LOG_CAPACITY,
};

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
    let log = match &rec.event {
        Event::Started { .. } | Event::Restart { .. } | Event::Finished { .. } => {
            lifecycle_event(run, rec)
        }
        Event::Update(_)
        | Event::Validation(_)
        | Event::Checkpoint { .. }
        | Event::EarlyStop(_)
        | Event::Gate(_) => training_event(run, rec),
        Event::WalkSetup(_) | Event::Fold(_) | Event::Decision(_) => {
            walk_event(run, &rec.event);
            None
        }
        Event::Paper(_) | Event::Decided(_) | Event::Order(_) | Event::Fill(_) => {
            paper_event(run, &rec.event);
            None
        }
        Event::SymbolFetched { symbol, .. } => {
            infer_kind(run, JobKind::Fetch);
            if !run.fetched.contains(symbol) {
                run.fetched.push(symbol.clone());
            }
            record_fetch(app, rec);
            None
        }
        Event::Progress { .. } | Event::CommandDone { .. } | Event::Log { .. } => {
            report_event(run, rec)
        }
    };
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

/// A log line of `run` stamped with the event's time.
fn line(rec: &EventRecord, run: &RunView, level: LogLevel, message: String) -> LogLine {
    LogLine {
        at: Some(rec.at),
        run_id: run.id.clone(),
        level,
        message,
    }
}

/// Started, Restart and Finished: where a run is in its life.
fn lifecycle_event(run: &mut RunView, rec: &EventRecord) -> Option<LogLine> {
    match &rec.event {
        Event::Started { kind, label } => {
            run.kind = Some(*kind);
            run.label = label.clone();
            // A resumed run starts again: its first start stays its start.
            run.started_at = run.started_at.or(Some(rec.at));
            let text = format!("started {} {label}", kind.as_str());
            Some(line(rec, run, LogLevel::Info, text))
        }
        Event::Restart {
            from_update,
            reason,
        } => {
            let text = restart(run, *from_update, reason);
            Some(line(rec, run, LogLevel::Info, text))
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
            Some(line(rec, run, level, text))
        }
        _ => None,
    }
}

/// Rewinds a training run to `from_update`; returns the log text.
fn restart(run: &mut RunView, from_update: usize, reason: &RestartReason) -> String {
    infer_kind(run, JobKind::Train);
    let resume = matches!(reason, RestartReason::Resume { .. });
    // What came after the restart point is superseded: the events that follow replace
    // it, so the curves continue from there as one run.
    let keep = |u: usize| u <= from_update;
    run.updates.retain(|m| keep(m.update));
    run.validations.retain(|v| keep(v.update));
    run.checkpoints.retain(|c| {
        keep(c.update)
            && !(resume
                && matches!(
                    c.reason,
                    CheckpointReason::Final | CheckpointReason::Cancelled
                ))
    });
    run.early_stop = None;
    if resume {
        run.status = JobStatus::Running;
        run.stale = false;
        run.finished_at = None;
        run.message.clear();
    }
    run.restart = Some((from_update, reason.clone()));
    match reason {
        RestartReason::Resume { .. } => format!("resumed from update {from_update}"),
        RestartReason::DrawdownRetry {
            retry,
            retries,
            drawdown,
            ..
        } => format!(
            "drawdown retry {retry}/{retries} (validation drawdown {:.1} %): back to update {from_update}",
            drawdown * 100.0
        ),
    }
}

/// Training and gate results: curves, checkpoints, the early stop, the verdict.
fn training_event(run: &mut RunView, rec: &EventRecord) -> Option<LogLine> {
    match &rec.event {
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
        Event::EarlyStop(info) => {
            infer_kind(run, JobKind::Train);
            run.early_stop = Some(info.clone());
            let text = format!(
                "early stop at update {}: validation drawdown {:.1} %; the model is update {}'s",
                info.update,
                info.drawdown * 100.0,
                info.model_update
            );
            return Some(line(rec, run, LogLevel::Warn, text));
        }
        Event::Gate(g) => {
            infer_kind(run, JobKind::Gate);
            run.gate = Some(g.clone());
        }
        _ => {}
    }
    None
}

/// Walk-forward results: the setup, each fold, the decision.
fn walk_event(run: &mut RunView, event: &Event) {
    infer_kind(run, JobKind::WalkForward);
    match event {
        Event::WalkSetup(w) => run.walk_setup = Some((**w).clone()),
        Event::Fold(f) => upsert_by(&mut run.folds, f.clone(), |f| f.fold),
        Event::Decision(d) => run.decision = Some(d.clone()),
        _ => {}
    }
}

/// A paper session: snapshots (thinned equity curve), orders and fills (bounded).
fn paper_event(run: &mut RunView, event: &Event) {
    infer_kind(run, JobKind::Paper);
    let p = &mut run.paper;
    match event {
        Event::Paper(s) => {
            p.snapshots += 1;
            p.equity.push((p.snapshots as f64, s.account.equity));
            if p.equity.len() > EQUITY_CAPACITY {
                thin(&mut p.equity);
            }
            p.snapshot = Some((**s).clone());
        }
        // Per-bar decisions are for replays and audits; the snapshot carries the model's state.
        Event::Decided(_) => {}
        Event::Order(o) => {
            p.orders.push_back(o.clone());
            if p.orders.len() > ORDER_CAPACITY {
                p.orders.pop_front();
            }
        }
        Event::Fill(f) => {
            p.fills.push_back(f.clone());
            if p.fills.len() > ORDER_CAPACITY {
                p.fills.pop_front();
            }
        }
        _ => {}
    }
}

/// A fetched symbol's status for the data view; a replayed older fetch must not hide a newer one.
fn record_fetch(app: &mut App, rec: &EventRecord) {
    let Event::SymbolFetched {
        symbol,
        timeframe,
        bars,
        first,
        last,
        source,
    } = &rec.event
    else {
        return;
    };
    let status = FetchStatus {
        run_id: rec.run_id.clone(),
        timeframe: timeframe.to_string(),
        bars: *bars,
        first: *first,
        last: *last,
        source: source.clone(),
        at: rec.at,
    };
    let newer = app.fetch.get(symbol).is_none_or(|old| old.at <= rec.at);
    if newer {
        app.fetch.insert(symbol.clone(), status);
    }
    app.store_stale = true;
}

/// Progress, command acknowledgements and log lines of any run.
fn report_event(run: &mut RunView, rec: &EventRecord) -> Option<LogLine> {
    match &rec.event {
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
            None
        }
        Event::CommandDone {
            command, message, ..
        } => {
            let text = format!("{}: {message}", command.as_str());
            Some(line(rec, run, LogLevel::Info, text))
        }
        Event::Log { level, message } => {
            let l = line(rec, run, *level, message.clone());
            run.logs.push_back(l.clone());
            if run.logs.len() > RUN_LOG_CAPACITY {
                run.logs.pop_front();
            }
            Some(l)
        }
        _ => None,
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
