//! Pane 2: one training run — progress, latest metrics, and a chart per metric.

use super::widgets::{
    block, chart_title, dim, duration, empty, grid, group, kv, line_chart, num, pct, pct_abs,
    status_color, Series,
};
use crate::jobs::events::{RestartReason, UpdateMetrics, ValidationMetrics};
use crate::jobs::{CheckpointReason, JobKind};
use crate::sim::reward::RewardComponent;
use crate::tui::app::{App, Checkpoint, RunView};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph, Wrap};
use ratatui::Frame;

/// ETA from the pace so far: elapsed per update times the updates left.
pub fn eta_s(m: &UpdateMetrics) -> Option<f64> {
    if m.update == 0 || m.updates < m.update || !m.elapsed_s.is_finite() {
        return None;
    }
    Some(m.elapsed_s / m.update as f64 * (m.updates - m.update) as f64)
}

pub fn run_title(app: &App, run: &RunView, kind: JobKind) -> Line<'static> {
    let runs = app.runs_of(kind);
    let pos = runs
        .iter()
        .position(|r| r.id == run.id)
        .map_or(0, |i| i + 1);
    let mut spans = vec![
        Span::raw(format!(" {} ", run.id)),
        Span::styled(
            format!("[{}]", run.state()),
            Style::new()
                .fg(status_color(run.status, run.stale))
                .add_modifier(Modifier::BOLD),
        ),
    ];
    if !run.ours {
        spans.push(Span::styled(" elsewhere", dim()));
    }
    spans.push(Span::styled(
        format!(" · run {pos}/{} [ ] ", runs.len()),
        dim(),
    ));
    Line::from(spans)
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let Some(run) = app.selected_run(JobKind::Train) else {
        empty(
            frame,
            area,
            " Training ",
            "No training runs yet: select a symbol in the Data pane and press t.",
        );
        return;
    };
    let rows = run
        .validations
        .len()
        .max(run.checkpoints.len())
        .min(FOOT_ROWS);
    let foot_h = if rows == 0 { 0 } else { rows as u16 + 2 };
    let outcome = outcome_text(run);
    let outcome_h = outcome.as_ref().map_or(0, |(_, text)| {
        // Wrapped inside the borders.
        let w = area.width.saturating_sub(2).max(1) as usize;
        text.chars().count().div_ceil(w).clamp(1, 4) as u16 + 2
    });
    let [head, charts, foot, outcome_area] = Layout::vertical([
        Constraint::Length(6),
        Constraint::Min(0),
        Constraint::Length(foot_h),
        Constraint::Length(outcome_h),
    ])
    .areas(area);
    header(frame, head, app, run);
    if app.show_reward_parts {
        reward_charts(frame, charts, run);
    } else if let Some(latest) = run
        .updates
        .iter()
        .rev()
        .find(|m| !m.action_shares.is_empty())
    {
        // The policy's choices beside the curves: what it does, not only how well.
        let w = if charts.width >= 110 { 34 } else { 0 };
        let [c, a] = Layout::horizontal([Constraint::Min(0), Constraint::Length(w)]).areas(charts);
        metric_charts(frame, c, run);
        if w > 0 {
            action_bars(frame, a, latest);
        }
    } else {
        metric_charts(frame, charts, run);
    }
    if foot_h > 0 {
        let [v, c] = Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
            .areas(foot);
        validations(frame, v, run);
        checkpoints(frame, c, run);
    }
    if let Some((color, text)) = outcome {
        let p = Paragraph::new(text)
            .wrap(Wrap { trim: true })
            .block(block(Line::styled(
                format!(" {} ", run.state()),
                Style::new().fg(color).add_modifier(Modifier::BOLD),
            )));
        frame.render_widget(p, outcome_area);
    }
}

/// The names of a run's actions: the 12 portfolio regimes or the 8 position actions.
fn action_names(n: usize) -> Vec<String> {
    match n {
        crate::sim::portfolio::N_REGIMES => crate::sim::portfolio::REGIME_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        crate::sim::N_ACTIONS => crate::sim::ACTION_MEANINGS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        _ => (0..n).map(|i| format!("action {i}")).collect(),
    }
}

/// The share of each action in the latest update's rollout, as bars.
fn action_bars(frame: &mut Frame, area: Rect, m: &UpdateMetrics) {
    let names = action_names(m.action_shares.len());
    let bar_w = area.width.saturating_sub(2 + 14 + 7) as f64;
    let lines: Vec<Line> = names
        .iter()
        .zip(&m.action_shares)
        .map(|(name, &share)| {
            let n = (share.clamp(0.0, 1.0) * bar_w).round() as usize;
            Line::from(vec![
                Span::raw(format!("{name:<13.13} ")),
                Span::styled("█".repeat(n), Style::new().fg(Color::Cyan)),
                Span::raw(" ".repeat((bar_w as usize).saturating_sub(n))),
                Span::styled(format!("{:>6}", pct_abs(share)), dim()),
            ])
        })
        .collect();
    let title = format!(" Actions @{} ", m.update);
    frame.render_widget(Paragraph::new(lines).block(block(title)), area);
}

/// Rows of the validation and checkpoint boxes.
const FOOT_ROWS: usize = 4;

/// The best checkpoint a run saved (its newest `best`).
fn best_checkpoint(run: &RunView) -> Option<&Checkpoint> {
    run.checkpoints
        .iter()
        .rev()
        .find(|c| c.reason == CheckpointReason::Best)
}

/// How the run ended, in words, with its colour: the error of a failed run; for an interrupted
/// one, how far it got and whether it can still be evaluated. None while it runs normally.
fn outcome_text(run: &RunView) -> Option<(Color, String)> {
    let color = status_color(run.status, run.stale);
    if run.state() == "interrupted" {
        let upto = run.updates.last().map_or(0, |m| m.update);
        let vals = run.validations.len();
        let next = match best_checkpoint(run) {
            Some(c) => format!(
                "press g to gate it (w to walk-forward it) from its best checkpoint, update {}",
                c.update
            ),
            None if vals > 0 => {
                "g gates the validations it recorded, but it saved no checkpoint to evaluate"
                    .to_string()
            }
            None => "it saved no checkpoint and no validation: nothing to evaluate".to_string(),
        };
        return Some((
            color,
            format!(
                "its process stopped (no heartbeat) after update {upto} with {vals} validation(s); {next}"
            ),
        ));
    }
    (!run.message.is_empty()).then(|| (color, run.message.clone()))
}

fn header(frame: &mut Frame, area: Rect, app: &App, run: &RunView) {
    let b = block(run_title(app, run, JobKind::Train));
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let [gauge_area, text_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    let last = run.updates.last();
    let (ratio, label) = match last {
        Some(m) if m.updates > 0 => (
            (m.update as f64 / m.updates as f64).clamp(0.0, 1.0),
            format!("update {}/{}", m.update, m.updates),
        ),
        _ => (0.0, "waiting for the first update".to_string()),
    };
    frame.render_widget(
        Gauge::default()
            .ratio(ratio)
            .label(format!("{label} ({:.0}%)", ratio * 100.0))
            .gauge_style(Style::new().fg(status_color(run.status, run.stale))),
        gauge_area,
    );
    let mut lines = Vec::new();
    if let Some(m) = last {
        let eta = if run.is_running() {
            eta_s(m).map_or("–".into(), duration)
        } else {
            "done".into()
        };
        let mut l = vec![];
        l.extend(kv("label", run.label.clone()));
        l.extend(kv("timesteps", group(m.timesteps)));
        l.extend(kv("SPS", group(m.sps.max(0.0).round() as u64)));
        l.extend(kv("elapsed", duration(m.elapsed_s)));
        l.extend(kv("ETA", eta));
        match &run.restart {
            Some((u, RestartReason::Resume { .. })) => l.extend(kv("resumed", format!("@{u}"))),
            Some((u, RestartReason::DrawdownRetry { retry, retries, .. })) => {
                l.extend(kv("DD retry", format!("{retry}/{retries} @{u}")))
            }
            None => {}
        }
        lines.push(Line::from(l));
        let mut l = vec![];
        l.extend(kv("reward", num(m.mean_reward)));
        l.extend(kv("π loss", num(m.policy_loss)));
        l.extend(kv("V loss", num(m.value_loss)));
        l.extend(kv("entropy", num(m.entropy)));
        l.extend(kv("KL", num(m.approx_kl)));
        l.extend(kv("clip", num(m.clip_fraction)));
        l.extend(kv("EV", num(m.explained_variance)));
        l.extend(kv("LR", num(m.lr)));
        l.extend(kv("ent", num(m.ent_coef)));
        lines.push(Line::from(l));
    } else {
        lines.push(Line::from(kv("label", run.label.clone())));
    }
    if let Some(v) = run.validations.last() {
        lines.push(validation_line(v, run.validations.len()));
    }
    frame.render_widget(Paragraph::new(lines), text_area);
}

fn validation_line(v: &ValidationMetrics, n: usize) -> Line<'static> {
    let mut l = vec![Span::styled(
        format!("validation #{n} @{} ", v.update),
        Style::new().fg(Color::Magenta),
    )];
    if v.insufficient {
        l.push(Span::styled(
            format!("{}  ", insufficient_text(v)),
            Style::new().fg(Color::Yellow),
        ));
        l.push(Span::styled("not scored  ", dim()));
    } else {
        l.extend(kv("PF", num(v.profit_factor)));
        l.extend(kv("fitness", num(v.fitness)));
        l.extend(kv("Sharpe", num(v.sharpe)));
    }
    l.extend(kv("max DD", pct_abs(v.max_drawdown)));
    l.extend(kv("return", pct(v.total_return)));
    if !v.insufficient {
        l.extend(kv("hold", pct_abs(v.hold_pct)));
        l.extend(kv("trades", v.trades.to_string()));
        l.extend(kv("days", v.days.to_string()));
    }
    Line::from(l)
}

/// "insufficient: 3 trades, 4 days" — an evaluation too small to score.
pub fn insufficient_text(v: &ValidationMetrics) -> String {
    format!("insufficient: {} trades, {} days", v.trades, v.days)
}

/// The newest validations, newest first; unscored ones dimmed with their trade and day counts.
fn validations(frame: &mut Frame, area: Rect, run: &RunView) {
    let best = best_checkpoint(run).map(|c| c.update);
    let lines: Vec<Line> = run
        .validations
        .iter()
        .rev()
        .take(FOOT_ROWS)
        .map(|v| {
            let mut l = vec![Span::styled(
                format!("@{:<6} ", v.update),
                Style::new().fg(Color::Magenta),
            )];
            if v.insufficient {
                l.push(Span::styled(
                    format!(
                        "{:<35} ret {:>7}",
                        insufficient_text(v),
                        pct(v.total_return)
                    ),
                    dim(),
                ));
            } else {
                l.push(Span::raw(format!(
                    "PF {:<5} fit {:<6} SR {:<6} ret {:>7} DD {:>5} {} trades {} days",
                    num(v.profit_factor),
                    num(v.fitness),
                    num(v.sharpe),
                    pct(v.total_return),
                    pct_abs(v.max_drawdown),
                    v.trades,
                    v.days
                )));
            }
            if best == Some(v.update) {
                l.push(Span::styled(" best", Style::new().fg(Color::Green)));
            }
            Line::from(l)
        })
        .collect();
    let scored = run.validations.iter().filter(|v| !v.insufficient).count();
    let title = format!(" Validations ({}, {scored} scored) ", run.validations.len());
    frame.render_widget(Paragraph::new(lines).block(block(title)), area);
}

type Getter<T> = fn(&T) -> f64;

fn metric_charts(frame: &mut Frame, area: Rect, run: &RunView) {
    let upd: [(&str, Color, Getter<UpdateMetrics>); 7] = [
        ("mean reward", Color::Green, |m| m.mean_reward),
        ("policy loss", Color::Yellow, |m| m.policy_loss),
        ("value loss", Color::LightRed, |m| m.value_loss),
        ("entropy", Color::Cyan, |m| m.entropy),
        ("approx KL", Color::LightMagenta, |m| m.approx_kl),
        ("explained var", Color::LightBlue, |m| m.explained_variance),
        ("LR", Color::Gray, |m| m.lr),
    ];
    let val: [(&str, Color, Getter<ValidationMetrics>); 2] = [
        ("val profit factor", Color::Magenta, |v| v.profit_factor),
        ("val fitness", Color::LightGreen, |v| v.fitness),
    ];
    // Wide screens get a 3×3 grid, narrow ones 2 columns (the last row may stay empty).
    let (rows, cols) = if area.width >= 90 { (3, 3) } else { (5, 2) };
    let cells = grid(area, rows, cols);
    let mut cells = cells.into_iter();
    let upd_series = upd.into_iter().map(|(name, color, get)| {
        let pts: Vec<(f64, f64)> = run
            .updates
            .iter()
            .map(|m| (m.update as f64, get(m)))
            .collect();
        (name, color, pts, 0)
    });
    // Unscored validations have no meaningful PF or fitness: they are left out of the charts.
    let unscored = run.validations.iter().filter(|v| v.insufficient).count();
    let val_series = val.into_iter().map(|(name, color, get)| {
        let pts: Vec<(f64, f64)> = run
            .validations
            .iter()
            .filter(|v| !v.insufficient)
            .map(|v| (v.update as f64, get(v)))
            .collect();
        (name, color, pts, unscored)
    });
    for (name, color, pts, unscored) in upd_series.chain(val_series) {
        let Some(cell) = cells.next() else { return };
        let latest = pts.last().map(|p| p.1);
        let series = [Series {
            name,
            color,
            dim: false,
            points: &pts,
        }];
        let mut title = chart_title(name, color, latest);
        if unscored > 0 {
            title.push_span(Span::styled(format!(" ({unscored} not scored)"), dim()));
        }
        line_chart(frame, cell, title, &series);
    }
}

/// One colour per reward component, in `RewardComponent::ALL` order.
const PART_COLORS: [Color; 8] = [
    Color::Green,
    Color::Yellow,
    Color::LightGreen,
    Color::Magenta,
    Color::Cyan,
    Color::LightRed,
    Color::Red,
    Color::LightBlue,
];

/// The reward components of the seed reward over the updates: each one's share of the total
/// absolute weighted reward, and its mean weighted value, with a legend of the latest figures.
fn reward_charts(frame: &mut Frame, area: Rect, run: &RunView) {
    if run.updates.iter().all(|m| m.reward_parts.is_empty()) {
        let text = "This run's reward is the step's P&L (env.reward = \"pnl\"): a single component. \
                    Train with --reward seed (env.reward = \"seed\") to see the eight components of \
                    the seed's curriculum here. R: back to the metrics.";
        let p = Paragraph::new(text)
            .style(dim())
            .wrap(Wrap { trim: true })
            .block(block(" Reward components "));
        frame.render_widget(p, area);
        return;
    }
    let [plots, legend] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(36)]).areas(area);
    let [shares_area, means_area] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(plots);
    for (area, title, pts) in [
        (
            shares_area,
            "reward component shares",
            component_series(run, |p| p.share),
        ),
        (
            means_area,
            "mean weighted value per step",
            component_series(run, |p| p.mean),
        ),
    ] {
        let series: Vec<Series> = RewardComponent::ALL
            .iter()
            .zip(&pts)
            .zip(PART_COLORS)
            .map(|((c, points), color)| Series {
                name: c.as_str(),
                color,
                dim: false,
                points,
            })
            .collect();
        line_chart(frame, area, Line::from(title), &series);
    }
    reward_legend(frame, legend, run);
}

/// One figure of each reward component over the updates (in `RewardComponent::ALL`'s order).
fn component_series(
    run: &RunView,
    get: fn(&crate::sim::reward::RewardPart) -> f64,
) -> Vec<Vec<(f64, f64)>> {
    RewardComponent::ALL
        .iter()
        .map(|c| {
            run.updates
                .iter()
                .filter_map(|m| {
                    let p = m.reward_parts.iter().find(|p| p.component == *c)?;
                    Some((m.update as f64, get(p)))
                })
                .collect()
        })
        .collect()
}

/// The legend: each component's share and mean at the latest update that has them.
fn reward_legend(frame: &mut Frame, area: Rect, run: &RunView) {
    let latest = run
        .updates
        .iter()
        .rev()
        .find(|m| !m.reward_parts.is_empty());
    let mut lines = vec![Line::styled(
        format!("{:<11} {:>6} {:>9}", "component", "share", "mean"),
        dim(),
    )];
    for (c, color) in RewardComponent::ALL.iter().zip(PART_COLORS) {
        let part = latest.and_then(|m| m.reward_parts.iter().find(|p| p.component == *c));
        let (share, mean) = part.map_or(("–".to_string(), "–".to_string()), |p| {
            (
                format!("{:.1}%", p.share * 100.0),
                format!("{:+.4}", p.mean),
            )
        });
        lines.push(Line::from(vec![
            Span::styled(format!("■ {:<9} ", c.as_str()), Style::new().fg(color)),
            Span::raw(format!("{share:>6} {mean:>9}")),
        ]));
    }
    let title = latest.map_or(" Reward ".to_string(), |m| {
        format!(" Reward @{} ", m.update)
    });
    frame.render_widget(Paragraph::new(lines).block(block(title)), area);
}

fn checkpoints(frame: &mut Frame, area: Rect, run: &RunView) {
    let lines: Vec<Line> = run
        .checkpoints
        .iter()
        .rev()
        .take(FOOT_ROWS)
        .map(|c| {
            Line::from(vec![
                Span::styled(format!("@{:<6} ", c.update), Style::new().fg(Color::Cyan)),
                Span::styled(format!("{:<10} ", c.reason.as_str()), dim()),
                // The run is in the pane's title: the file name says the rest.
                Span::raw(
                    std::path::Path::new(&c.path)
                        .file_name()
                        .map_or(c.path.clone(), |n| n.to_string_lossy().into_owned()),
                ),
            ])
        })
        .collect();
    let title = format!(" Checkpoints ({}) ", run.checkpoints.len());
    frame.render_widget(Paragraph::new(lines).block(block(title)), area);
}
