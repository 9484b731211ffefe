//! Headless progress: a progress bar on a terminal, plain lines when piped, JSON lines with --json.
//! `--quiet` keeps warnings, errors and the outcome; `--verbose` adds debug lines and a full line
//! per update (reward components and the critic-only epochs' loss included).

use crate::jobs::events::{FoldResult, GateResult, OrderView, RestartReason, ValidationMetrics};
use crate::jobs::{Event, EventRecord, LogLevel, Observer};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// How much the headless display prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

pub enum Display {
    Json,
    Bar(ProgressBar, Verbosity),
    Plain(Verbosity),
}

impl Display {
    pub fn new(json: bool, verbosity: Verbosity) -> Self {
        if json {
            Display::Json
        } else if verbosity == Verbosity::Quiet || !std::io::stderr().is_terminal() {
            Display::Plain(verbosity)
        } else {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} eta {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Display::Bar(bar, verbosity)
        }
    }

    pub fn observer(&self) -> Observer {
        match self {
            Display::Json => Box::new(|rec: &EventRecord| {
                if let Ok(line) = serde_json::to_string(rec) {
                    println!("{line}");
                }
            }),
            Display::Plain(v) => {
                let v = *v;
                Box::new(move |rec: &EventRecord| {
                    if let Some(line) = describe_at(&rec.event, v) {
                        println!("{line}");
                    }
                })
            }
            Display::Bar(bar, v) => {
                let (bar, v) = (bar.clone(), *v);
                Box::new(move |rec: &EventRecord| match &rec.event {
                    Event::Progress {
                        done,
                        total,
                        message,
                    } => {
                        bar.set_length(*total);
                        bar.set_position(*done);
                        bar.set_message(message.clone());
                    }
                    Event::Update(m) => {
                        bar.set_length(m.updates as u64);
                        bar.set_position(m.update as u64);
                        bar.set_message(format!(
                            "{:.0} sps  reward {:+.4}  entropy {:.3}  ev {:+.2}",
                            m.sps, m.mean_reward, m.entropy, m.explained_variance
                        ));
                        if v == Verbosity::Verbose {
                            if let Some(line) = describe_at(&rec.event, v) {
                                bar.println(line);
                            }
                        }
                    }
                    Event::Paper(_) => {}
                    other => {
                        if let Some(line) = describe_at(other, v) {
                            bar.println(line);
                        }
                    }
                })
            }
        }
    }

    pub fn finish(&self) {
        if let Display::Bar(b, _) = self {
            b.finish_and_clear();
        }
    }
}

/// The line for an event at a verbosity, or None where that verbosity leaves it out.
pub fn describe_at(e: &Event, v: Verbosity) -> Option<String> {
    let shown = match (v, e) {
        (_, Event::Log { level, .. }) if *level == LogLevel::Debug => v == Verbosity::Verbose,
        (Verbosity::Quiet, Event::Log { level, .. }) => *level >= LogLevel::Warn,
        (
            Verbosity::Quiet,
            Event::Finished { .. }
            | Event::EarlyStop(_)
            | Event::Gate(_)
            | Event::Decision(_)
            | Event::Restart { .. },
        ) => true,
        (Verbosity::Quiet, _) => false,
        _ => true,
    };
    if !shown {
        return None;
    }
    match e {
        Event::Update(m) if v == Verbosity::Verbose => {
            let mut line = describe(e)?;
            line.push_str(&format!(
                "  critic_lr {:.2e}  episodes {}",
                m.critic_lr, m.episodes
            ));
            if let Some(c) = m.critic_loss {
                line.push_str(&format!("  critic-only v {c:.4}"));
            }
            if !m.reward_parts.is_empty() {
                let parts: Vec<String> = m
                    .reward_parts
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {:+.4} ({:.0} %)",
                            p.component.as_str(),
                            p.mean,
                            p.share * 100.0
                        )
                    })
                    .collect();
                line.push_str(&format!("\n    reward: {}", parts.join("  ")));
            }
            Some(line)
        }
        _ => describe(e),
    }
}

/// One human line per event (None for events too frequent to print).
pub fn describe(e: &Event) -> Option<String> {
    Some(match e {
        Event::Started { kind, label } => format!("started {} {label}", kind.as_str()),
        Event::Progress { .. } => return None,
        Event::SymbolFetched { symbol, timeframe, bars, first, last, source } => format!(
            "{symbol} {timeframe}: {bars} bars {} → {} ({source})",
            first.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default(),
            last.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
        ),
        Event::Update(m) => format!(
            "update {}/{}  steps {}  {:.0} sps  reward {:+.4}  pi {:+.4}  v {:.4}  H {:.3}  kl {:.4}  clip {:.2}  ev {:+.2}  lr {:.2e}",
            m.update, m.updates, m.timesteps, m.sps, m.mean_reward, m.policy_loss, m.value_loss, m.entropy, m.approx_kl, m.clip_fraction, m.explained_variance, m.lr
        ),
        Event::Validation(v) => validation_line(v),
        Event::Checkpoint { path, update, reason } => format!("checkpoint ({}) @ update {update}: {path}", reason.as_str()),
        Event::Restart { from_update, reason } => restart_line(*from_update, reason),
        Event::EarlyStop(s) => format!(
            "early stop at update {}: validation drawdown {:.1} % ≥ {:.0} % after {} retries; the final model is update {}'s",
            s.update,
            s.drawdown * 100.0,
            s.threshold * 100.0,
            s.retries,
            s.model_update
        ),
        Event::Gate(g) => gate_line(g),
        Event::WalkSetup(w) => format!(
            "rules (as paper trades it): {}{}{}",
            w.rules.describe(),
            w.momentum.map(|m| format!("; momentum EMA {}/{}", m.fast, m.slow)).unwrap_or_default(),
            w.gate.as_ref().map(|g| format!("; the model was {}", g.line())).unwrap_or_default()
        ),
        Event::Fold(f) => fold_line(f),
        Event::Decision(d) => format!("decision: {}", d.line()),
        Event::Paper(_) | Event::Decided(_) => return None,
        Event::Fill(f) => format!("fill {} {} {:.4} @ {:.4} ({})", f.side, f.symbol, f.qty, f.price, f.client_order_id),
        Event::Order(o) => order_line(o),
        Event::CommandDone { command, from, message } => format!("{} (from {from}): {message}", command.as_str()),
        Event::Log { level, message } => format!("[{}] {message}", level.as_str()),
        Event::Finished { status, message } => format!("{}: {message}", status.as_str()),
    })
}

fn validation_line(v: &ValidationMetrics) -> String {
    format!(
        "validation @ {}: PF {:.2}  Sharpe {:+.2}  maxDD {:.1} %  fitness {:+.3}  consistency {:.0} %  HOLD {:.0} %  trades {}{}",
        v.update,
        v.profit_factor,
        v.sharpe,
        v.max_drawdown * 100.0,
        v.fitness,
        v.consistency * 100.0,
        v.hold_pct * 100.0,
        v.trades,
        v.portfolio
            .as_ref()
            .map(|b| format!(
                "  | return {:+.2} % vs equal weight {:+.2} %",
                b.model.total_return * 100.0,
                b.equal_weight.total_return * 100.0
            ))
            .unwrap_or_default()
    )
}

fn restart_line(from_update: usize, reason: &RestartReason) -> String {
    match reason {
        RestartReason::Resume { checkpoint } => {
            format!("resumed from update {from_update} ({checkpoint}); the run's curves continue from there")
        }
        RestartReason::DrawdownRetry { retry, retries, drawdown, threshold, lr_scale, ent_scale } => format!(
            "drawdown retry {retry}/{retries}: validation drawdown {:.1} % ≥ {:.0} %; back to update {from_update} with lr × {lr_scale} and entropy × {ent_scale}",
            drawdown * 100.0,
            threshold * 100.0
        ),
    }
}

fn gate_line(g: &GateResult) -> String {
    let GateResult {
        class,
        flags,
        use_checkpoint,
        metrics,
        composite,
        baselines,
        group,
    } = g;
    format!(
        "gate: {}{}  flags [{}]  fitness {:+.3}  PF {:.2}  consistency {:.0} %  maxDD {:.1} %{}{}{}",
        class.as_str(),
        composite.map(|c| format!("  composite {:+.1}", c.total)).unwrap_or_default(),
        flags.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", "),
        metrics.fitness,
        metrics.profit_factor,
        metrics.consistency * 100.0,
        metrics.max_drawdown * 100.0,
        use_checkpoint.map(|u| format!("  use the best checkpoint (update {u})")).unwrap_or_default(),
        baselines.as_ref().map(|b| format!("\n    {}", b.line())).unwrap_or_default(),
        group.as_ref().map(|g| format!("\n    group {}: {}; the median seed is {}", g.id, g.line(), g.median)).unwrap_or_default()
    )
}

fn fold_line(f: &FoldResult) -> String {
    format!(
        "fold {} {} → {}: return {:+.2} %  Sharpe {:+.2}  maxDD {:.1} %  win {:.0} %  PF {:.2}  trades {}{}{}  | asset {:+.2} %{}",
        f.fold,
        f.start.format("%Y-%m-%d"),
        f.end.format("%Y-%m-%d"),
        f.total_return * 100.0,
        f.sharpe,
        f.max_drawdown * 100.0,
        f.win_rate * 100.0,
        f.profit_factor,
        f.trades,
        match (f.held, f.confidence) {
            (0, _) => String::new(),
            (n, Some([_, med, p90])) => format!("  held {n} by the threshold (confidence median {med:.2}, p90 {p90:.2})"),
            (n, None) => format!("  held {n} by the threshold"),
        },
        f.raw
            .map(|r| format!("  (raw policy {:+.2} %, Sharpe {:+.2}, {} trades)", r.total_return * 100.0, r.sharpe, r.trades))
            .unwrap_or_default(),
        f.buy_hold_return * 100.0,
        f.baselines
            .iter()
            .map(|b| format!("  {} {:+.2} % (Sharpe {:+.2})", b.baseline.name(), b.total_return * 100.0, b.sharpe))
            .collect::<String>()
    )
}

fn order_line(o: &OrderView) -> String {
    format!(
        "order {} {} {:.4} (filled {:.4}{}) {}{} ({})",
        o.side,
        o.symbol,
        o.qty,
        o.filled_qty,
        o.fill_price
            .map(|p| format!(" @ {p:.4}"))
            .unwrap_or_default(),
        o.status,
        if o.external { " EXTERNAL" } else { "" },
        o.client_order_id
    )
}
