//! The Training pane's sweep view (`S`): the newest sweep's leaderboard — per task its state,
//! progress, gate class, walk-forward decision and mean fold Sharpe beside momentum and
//! buy-and-hold — and its seed groups (median and worst seed).

use super::widgets::{
    block, class_color, decision_color, dim, empty, header_style, highlight_style, signed_color,
};
use crate::jobs::sweep::report::{GroupRow, Leaderboard, TaskRow};
use crate::jobs::sweep::TaskState;
use crate::tui::app::App;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let Some(b) = &app.sweep.board else {
        empty(
            frame,
            area,
            " Sweep ",
            "No sweep yet: start one with `quantdeck sweep SYMBOL… --seeds N --set key=v1,v2` (S goes back to the training run).",
        );
        return;
    };
    let groups = (b.groups.len() as u16 + 2).min(area.height / 3);
    let [tasks, bottom] = Layout::vertical([
        Constraint::Min(4),
        Constraint::Length(if b.groups.is_empty() { 0 } else { groups }),
    ])
    .areas(area);
    task_table(frame, tasks, b, app.sweep.sel);
    if !b.groups.is_empty() {
        group_list(frame, bottom, &b.groups);
    }
}

fn state_color(s: &TaskState) -> Color {
    match s {
        TaskState::Completed => Color::Green,
        TaskState::Running { .. } => Color::Cyan,
        TaskState::Pending | TaskState::Queued => Color::DarkGray,
        TaskState::Cancelled | TaskState::Stopped | TaskState::TimedOut => Color::Yellow,
        TaskState::Failed { .. } | TaskState::Scheduler { .. } | TaskState::Lost => Color::Red,
    }
}

fn fig(x: Option<f64>) -> Cell<'static> {
    match x {
        Some(v) => Cell::from(Span::styled(
            format!("{v:+.2}"),
            Style::new().fg(signed_color(v)),
        )),
        None => Cell::from(Span::styled("–", dim())),
    }
}

fn task_row(r: &TaskRow) -> Row<'static> {
    let progress = r
        .progress
        .map_or("–".to_string(), |(d, t)| format!("{d}/{t}"));
    let gate = match r.gate {
        Some(g) => Span::styled(
            g.as_str(),
            Style::new().fg(class_color(g)).add_modifier(Modifier::BOLD),
        ),
        None => Span::styled("–", dim()),
    };
    let wf = match r.decision {
        Some(d) => Span::styled(d.as_str(), Style::new().fg(decision_color(d))),
        None => Span::styled("–", dim()),
    };
    // The model's Sharpe, green where it beats both baselines' mean fold Sharpe.
    let beats =
        matches!((r.sharpe, r.momentum, r.buy_hold), (Some(s), Some(m), Some(b)) if s > m && s > b);
    let sharpe = match r.sharpe {
        Some(s) => Cell::from(Span::styled(
            format!("{s:+.2}"),
            Style::new().fg(if beats { Color::Green } else { Color::Reset }),
        )),
        None => Cell::from(Span::styled("–", dim())),
    };
    Row::new(vec![
        Cell::from(r.index.to_string()),
        Cell::from(r.symbol.clone()),
        Cell::from(r.seed.to_string()),
        Cell::from(Span::styled(
            r.state.label(),
            Style::new().fg(state_color(&r.state)),
        )),
        Cell::from(progress),
        Cell::from(gate),
        fig(r.fitness),
        Cell::from(wf),
        sharpe,
        fig(r.momentum),
        fig(r.buy_hold),
        Cell::from(format!("{} {}", r.mode, r.overrides)),
    ])
}

fn task_table(frame: &mut Frame, area: Rect, b: &Leaderboard, sel: usize) {
    let header = Row::new(vec![
        "#", "Symbol", "Seed", "State", "Updates", "Gate", "Fitness", "WF", "Sharpe", "Mom.",
        "B&H", "Settings",
    ])
    .style(header_style());
    let widths = [
        Constraint::Length(4),
        Constraint::Length(10),
        Constraint::Length(5),
        Constraint::Length(29),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Fill(1),
    ];
    let title = Line::from(vec![
        Span::raw(format!(" Sweep {} ", b.sweep)),
        Span::styled(format!("· {} ", b.summary), dim()),
        Span::styled("· o: the task's run · S: back ", dim()),
    ]);
    let table = Table::new(b.tasks.iter().map(task_row), widths)
        .header(header)
        .row_highlight_style(highlight_style())
        .highlight_symbol("▶ ")
        .block(block(title));
    let mut state = TableState::default().with_selected((!b.tasks.is_empty()).then_some(sel));
    frame.render_stateful_widget(table, area, &mut state);
}

fn group_list(frame: &mut Frame, area: Rect, groups: &[GroupRow]) {
    let lines: Vec<Line> = groups
        .iter()
        .map(|g| {
            Line::from(vec![
                Span::raw(format!("{} {} {} ", g.symbol, g.mode, g.overrides)),
                Span::styled(
                    g.class.as_str(),
                    Style::new()
                        .fg(class_color(g.class))
                        .add_modifier(Modifier::BOLD),
                ),
                Span::raw(format!(
                    "  median seed {} {:+.3} · worst seed {} {:+.3} · {}/{} gated",
                    g.median_seed,
                    g.median_fitness,
                    g.worst_seed,
                    g.worst_fitness,
                    g.gated,
                    g.seeds
                )),
                Span::styled(
                    if g.flags.is_empty() {
                        String::new()
                    } else {
                        format!("  {}", super::widgets::flags_text(&g.flags, ", ", ""))
                    },
                    dim(),
                ),
            ])
        })
        .collect();
    let p = Paragraph::new(lines).block(block(
        " Seed groups (the gate's grading: median seed, capped by the worst) ",
    ));
    frame.render_widget(p, area);
}
