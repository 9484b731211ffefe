//! Headless progress: a progress bar on a terminal, plain lines when piped, JSON lines with --json.

use crate::jobs::events::{DecisionReport, GateResult};
use crate::jobs::{Event, EventRecord, Observer};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub enum Display {
    Json,
    Bar(ProgressBar),
    Plain,
}

impl Display {
    pub fn new(json: bool) -> Self {
        if json {
            Display::Json
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} eta {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Display::Bar(bar)
        } else {
            Display::Plain
        }
    }

    pub fn observer(&self) -> Observer {
        match self {
            Display::Json => Box::new(|rec: &EventRecord| {
                if let Ok(line) = serde_json::to_string(rec) {
                    println!("{line}");
                }
            }),
            Display::Plain => Box::new(|rec: &EventRecord| {
                if let Some(line) = describe(&rec.event) {
                    println!("{line}");
                }
            }),
            Display::Bar(bar) => {
                let bar = bar.clone();
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
                            "{:.0} sps  reward {:+.4}  entropy {:.3}",
                            m.sps, m.mean_reward, m.entropy
                        ));
                    }
                    Event::Paper(_) => {}
                    other => {
                        if let Some(line) = describe(other) {
                            bar.println(line);
                        }
                    }
                })
            }
        }
    }

    pub fn finish(&self) {
        if let Display::Bar(b) = self {
            b.finish_and_clear();
        }
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
        Event::Validation(v) => format!(
            "validation @ {}: PF {:.2}  Sharpe {:+.2}  maxDD {:.1} %  fitness {:+.3}  consistency {:.0} %  HOLD {:.0} %  trades {}",
            v.update,
            v.profit_factor,
            v.sharpe,
            v.max_drawdown * 100.0,
            v.fitness,
            v.consistency * 100.0,
            v.hold_pct * 100.0,
            v.trades
        ),
        Event::Checkpoint { path, update, reason } => format!("checkpoint ({}) @ update {update}: {path}", reason.as_str()),
        Event::Gate(GateResult { class, flags, use_checkpoint, metrics, .. }) => format!(
            "gate: {}  flags [{}]  fitness {:+.3}  PF {:.2}  consistency {:.0} %  maxDD {:.1} %{}",
            class.as_str(),
            flags.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", "),
            metrics.fitness,
            metrics.profit_factor,
            metrics.consistency * 100.0,
            metrics.max_drawdown * 100.0,
            use_checkpoint.map(|u| format!("  use the best checkpoint (update {u})")).unwrap_or_default()
        ),
        Event::Fold(f) => format!(
            "fold {} {} → {}: return {:+.2} %  Sharpe {:+.2}  maxDD {:.1} %  win {:.0} %  PF {:.2}  trades {}  | asset {:+.2} %{}",
            f.fold,
            f.start.format("%Y-%m-%d"),
            f.end.format("%Y-%m-%d"),
            f.total_return * 100.0,
            f.sharpe,
            f.max_drawdown * 100.0,
            f.win_rate * 100.0,
            f.profit_factor,
            f.trades,
            f.buy_hold_return * 100.0,
            f.baselines
                .iter()
                .map(|b| format!("  {} {:+.2} % (Sharpe {:+.2})", b.baseline.name(), b.total_return * 100.0, b.sharpe))
                .collect::<String>()
        ),
        Event::Decision(DecisionReport { decision, positive_folds, folds, sharpe_std, .. }) => {
            format!("decision: {} ({positive_folds}/{folds} folds positive, Sharpe std {sharpe_std:.2})", decision.as_str())
        }
        Event::Paper(_) => return None,
        Event::Fill(f) => format!("fill {} {} {:.4} @ {:.4} ({})", f.side, f.symbol, f.qty, f.price, f.client_order_id),
        Event::Order(o) => format!(
            "order {} {} {:.4} (filled {:.4}{}) {}{} ({})",
            o.side,
            o.symbol,
            o.qty,
            o.filled_qty,
            o.fill_price.map(|p| format!(" @ {p:.4}")).unwrap_or_default(),
            o.status,
            if o.external { " EXTERNAL" } else { "" },
            o.client_order_id
        ),
        Event::CommandDone { command, from, message } => format!("{} (from {from}): {message}", command.as_str()),
        Event::Log { level, message } => format!("[{}] {message}", level.as_str()),
        Event::Finished { status, message } => format!("{}: {message}", status.as_str()),
    })
}
