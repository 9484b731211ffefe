//! Pane 3: one row per gate run, with its class and the checkpoint it recommends.

use super::training::insufficient_text;
use super::widgets::{
    block, class_color, dim, empty, flags_text, header_style, highlight_style, num, pct, pct_abs,
    status_color,
};
use crate::eval::{GateFlag, GateResult};
use crate::jobs::JobStatus;
use crate::tui::app::{App, RunView};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

/// The training run a gate evaluated: the manifest's parent, else the gate's label.
fn gated(run: &RunView) -> String {
    run.parent.clone().unwrap_or_else(|| run.label.clone())
}

fn row(run: &RunView) -> Row<'static> {
    let when = run
        .started_at
        .or(run.created)
        .map_or("–".to_string(), |t| t.format("%m-%d %H:%M").to_string());
    let Some(g) = &run.gate else {
        let state = Span::styled(
            run.state().to_ascii_uppercase(),
            Style::new().fg(status_color(run.status, run.stale)),
        );
        return Row::new(vec![
            Cell::from(when),
            Cell::from(gated(run)),
            Cell::from(state),
        ]);
    };
    let m = &g.metrics;
    let class = Span::styled(
        g.class.as_str(),
        Style::new()
            .fg(class_color(g.class))
            .add_modifier(Modifier::BOLD),
    );
    // Unscored metrics were not graded: a dash, never a PF of 99.
    let score = |x: f64| {
        if m.insufficient {
            Cell::from(Span::styled("–", dim()))
        } else {
            Cell::from(num(x))
        }
    };
    Row::new(vec![
        Cell::from(when),
        Cell::from(gated(run)),
        Cell::from(class),
        Cell::from(
            g.composite
                .map_or("–".to_string(), |c| format!("{:.0}", c.total)),
        ),
        score(m.fitness),
        score(m.profit_factor),
        score(m.consistency),
        Cell::from(pct_abs(m.max_drawdown)),
        Cell::from(flags_text(&g.flags, ",", "–")),
        Cell::from(graded_short(g)),
    ])
}

/// Which model the gate graded, in a table cell.
fn graded_short(g: &GateResult) -> String {
    match g.use_checkpoint {
        Some(u) => format!("best @{u}"),
        None if g.metrics.insufficient => "none graded".into(),
        None => format!("final @{}", g.metrics.update),
    }
}

/// Which model the gate graded, and why, for the detail box.
fn graded_long(g: &GateResult, trained: Option<&RunView>) -> String {
    let last = trained.and_then(|t| t.validations.last());
    match (g.use_checkpoint, g.metrics.insufficient) {
        (Some(u), _) => {
            let why = match last {
                Some(v) if v.insufficient => {
                    format!("the final validation was {}", insufficient_text(v))
                }
                _ if g.flags.contains(&GateFlag::InsufficientTrades) => {
                    "the final validation was insufficient".to_string()
                }
                _ => "fitness declined after it".to_string(),
            };
            format!("the best checkpoint (update {u}): {why}")
        }
        (None, true) => format!(
            "nothing: no validation had enough trades and days (the last: {})",
            insufficient_text(&g.metrics)
        ),
        (None, false) => format!("the final model (update {})", g.metrics.update),
    }
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let rows = app.gate_rows();
    if rows.is_empty() {
        empty(
            frame,
            area,
            " Gating ",
            "No gate results yet: press g to gate the newest completed training run.",
        );
        return;
    }
    let selected = app.sel.gate.min(rows.len() - 1);
    let [table_area, detail_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(8)]).areas(area);
    let header = Row::new([
        "Gated at",
        "Training run",
        "Class",
        "Score",
        "Fitness",
        "PF",
        "Consist.",
        "Max DD",
        "Flags",
        "Checkpoint",
    ])
    .style(header_style());
    let train_w = rows
        .iter()
        .map(|r| gated(r).chars().count())
        .max()
        .unwrap_or(12);
    let flags_w = rows
        .iter()
        .filter_map(|r| r.gate.as_ref())
        .map(|g| flags_text(&g.flags, ",", "–").chars().count())
        .max()
        .unwrap_or(5);
    let widths = [
        Constraint::Length(11),
        Constraint::Length(train_w.clamp(12, 40) as u16),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(flags_w.clamp(5, 40) as u16),
        Constraint::Fill(1),
    ];
    let table = Table::new(rows.iter().map(|r| row(r)), widths)
        .header(header)
        .block(block(format!(" Gating — {} results ", rows.len())))
        .row_highlight_style(highlight_style())
        .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(Some(selected));
    frame.render_stateful_widget(table, table_area, &mut state);

    let run = rows[selected];
    let trained = run.parent.as_ref().and_then(|id| app.runs.get(id));
    let mut head = vec![
        Span::styled("run ", dim()),
        Span::raw(run.id.clone()),
        Span::styled("  gates ", dim()),
        Span::raw(gated(run)),
    ];
    if let Some(t) =
        trained.filter(|t| t.state() == "interrupted" || t.status == JobStatus::Cancelled)
    {
        head.push(Span::styled(
            format!(" ({}: graded on the validations it recorded)", t.state()),
            Style::new().fg(status_color(t.status, t.stale)),
        ));
    }
    let mut lines = vec![Line::from(head)];
    if let Some(g) = &run.gate {
        let m = &g.metrics;
        let mut l = vec![
            Span::styled("class ", dim()),
            Span::styled(
                g.class.as_str(),
                Style::new()
                    .fg(class_color(g.class))
                    .add_modifier(Modifier::BOLD),
            ),
        ];
        if m.insufficient {
            l.push(Span::styled(
                format!("  {}", insufficient_text(m)),
                Style::new().fg(Color::Yellow),
            ));
        } else {
            l.extend([
                Span::styled("  Sharpe ", dim()),
                Span::raw(num(m.sharpe)),
                Span::styled("  return ", dim()),
                Span::raw(pct(m.total_return)),
                Span::styled("  trades ", dim()),
                Span::raw(m.trades.to_string()),
                Span::styled("  days ", dim()),
                Span::raw(m.days.to_string()),
            ]);
        }
        lines.push(Line::from(l));
        if let Some(p) = &m.portfolio {
            let (a, b) = (&p.model, &p.equal_weight);
            lines.push(Line::from(vec![
                Span::styled("vs equal weight ", dim()),
                Span::raw(format!(
                    "return {} vs {}  Sharpe {} vs {}  max DD {} vs {}  turnover {:.2}× vs {:.2}×",
                    pct(a.total_return),
                    pct(b.total_return),
                    num(a.sharpe),
                    num(b.sharpe),
                    pct_abs(a.max_drawdown),
                    pct_abs(b.max_drawdown),
                    a.turnover,
                    b.turnover
                )),
            ]));
        }
        if let Some(c) = &g.composite {
            lines.push(Line::from(vec![
                Span::styled("score ", dim()),
                Span::raw(format!(
                    "{:.0} = 40·profit {:+.2} + 20·reward {:+.2} + 20·EV {:+.2} + 10·exploration {:.2} − 10·instability {:.2}",
                    c.total, c.profitability, c.reward, c.value, c.exploration, c.instability
                )),
            ]));
        }
        lines.push(Line::from(vec![
            Span::styled("flags ", dim()),
            Span::raw(flags_text(&g.flags, ", ", "none")),
        ]));
        lines.push(Line::from(vec![
            Span::styled("graded ", dim()),
            Span::raw(graded_long(g, trained)),
        ]));
    } else if !run.message.is_empty() {
        lines.push(Line::raw(run.message.clone()));
    }
    let p = Paragraph::new(lines)
        .wrap(Wrap { trim: true })
        .block(block(" Selected "));
    frame.render_widget(p, detail_area);
}
