//! Pane 3: one row per gate run, with its class, whether the graded model beat the simple rules
//! on its validation bars, and the checkpoint it recommends; the selected gate in detail below
//! (`gating_detail`).

use super::gating_detail;
use super::widgets::{
    block, class_color, clip, dim, empty, flags_text, header_style, highlight_style, num, pct_abs,
    status_color,
};
use crate::eval::gate::BaselineCheck;
use crate::eval::{Baseline, GateResult};
use crate::tui::app::{App, RunView};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row, Table, TableState};
use ratatui::Frame;

/// The training run a gate evaluated: the manifest's parent, else the gate's label.
pub(super) fn gated(run: &RunView) -> String {
    run.parent.clone().unwrap_or_else(|| run.label.clone())
}

/// What the table names: a seed group's id (its verdict is the group's), else the run gated.
fn subject(run: &RunView) -> String {
    match run.gate.as_ref().and_then(|g| g.group.as_ref()) {
        Some(group) => group.id.clone(),
        None => gated(run),
    }
}

/// A baseline's short name, for a table cell.
fn short_name(b: Baseline) -> &'static str {
    match b {
        Baseline::BuyHold => "buy&hold",
        Baseline::EqualWeight => "equal wt",
        Baseline::Flat => "flat",
        Baseline::Random => "random",
        Baseline::Momentum => "momentum",
    }
}

/// `beats` (green) or `trails momentum` (red); a dash where the gate made no check.
fn baselines_short(check: Option<&BaselineCheck>) -> Span<'static> {
    let Some(c) = check else {
        return Span::styled("–", dim());
    };
    if c.trails.is_empty() {
        return Span::styled("beats", Style::new().fg(Color::Green));
    }
    let text = if c.trails.len() > 1 && c.trails.len() == c.baselines.len() {
        "trails both".to_string()
    } else {
        let names: Vec<&str> = c.trails.iter().map(|b| short_name(*b)).collect();
        format!("trails {}", names.join("+"))
    };
    Span::styled(text, Style::new().fg(Color::Red))
}

/// Which model the gate graded, in a table cell (a group's: its median seed's).
fn graded_short(g: &GateResult) -> String {
    let model = match g.use_checkpoint {
        Some(u) => format!("best @{u}"),
        None if g.metrics.insufficient => "none graded".into(),
        None => format!("final @{}", g.metrics.update),
    };
    let seed = g
        .group
        .as_ref()
        .and_then(|grp| grp.seeds.iter().find(|s| s.run == grp.median));
    match seed {
        Some(s) => format!("s{} {model}", s.seed),
        None => model,
    }
}

/// The table's columns; PF and consistency give way to the flags on a narrow screen (the
/// detail box keeps them).
struct Columns {
    subject: u16,
    checkpoint: u16,
    wide: bool,
}

impl Columns {
    /// The highlight symbol and the fixed-width columns.
    const FIXED: u16 = 2 + 11 + 8 + 5 + 7 + 6 + 15;

    fn of(rows: &[&RunView], width: u16) -> Columns {
        let longest = |f: &dyn Fn(&RunView) -> Option<String>, min: usize, max: usize| {
            rows.iter()
                .filter_map(|r| f(r))
                .map(|s| s.chars().count())
                .fold(min, usize::max)
                .min(max) as u16
        };
        let subject = longest(&|r| Some(subject(r)), 12, 40);
        let checkpoint = longest(&|r| r.gate.as_ref().map(graded_short), 10, 18);
        let flags = longest(
            &|r| r.gate.as_ref().map(|g| flags_text(&g.flags, ",", "–")),
            5,
            30,
        );
        let mut cols = Columns {
            subject,
            checkpoint,
            wide: true,
        };
        // PF and consistency (also in the detail box) give way to the flags, up to 30 columns.
        cols.wide = cols.flags_width(width) >= usize::from(flags);
        cols
    }

    fn header(&self) -> Row<'static> {
        let mut h = vec!["Gated at", "Training run", "Class", "Score", "Fitness"];
        if self.wide {
            h.extend(["PF", "Consist."]);
        }
        h.extend(["Max DD", "Baselines", "Checkpoint", "Flags"]);
        Row::new(h).style(header_style())
    }

    fn widths(&self) -> Vec<Constraint> {
        let mut w = vec![
            Constraint::Length(11),
            Constraint::Length(self.subject),
            Constraint::Length(8),
            Constraint::Length(5),
            Constraint::Length(7),
        ];
        if self.wide {
            w.extend([Constraint::Length(5), Constraint::Length(8)]);
        }
        w.extend([
            Constraint::Length(6),
            Constraint::Length(15),
            Constraint::Length(self.checkpoint),
            Constraint::Fill(1),
        ]);
        w
    }

    fn row(&self, run: &RunView, flags_w: usize) -> Row<'static> {
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
                Cell::from(subject(run)),
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
        let mut cells = vec![
            Cell::from(when),
            Cell::from(subject(run)),
            Cell::from(class),
            Cell::from(
                g.composite
                    .map_or("–".to_string(), |c| format!("{:.0}", c.total)),
            ),
            score(m.fitness),
        ];
        if self.wide {
            cells.extend([score(m.profit_factor), score(m.consistency)]);
        }
        cells.extend([
            Cell::from(pct_abs(m.max_drawdown)),
            Cell::from(baselines_short(g.baselines.as_deref())),
            Cell::from(graded_short(g)),
            Cell::from(clip(&flags_text(&g.flags, ",", "–"), flags_w)),
        ]);
        Row::new(cells)
    }

    /// What is left of `width` for the flags: one space between columns, 9 columns (11 wide).
    fn flags_width(&self, width: u16) -> usize {
        let extra = if self.wide { 5 + 8 + 10 } else { 8 };
        width.saturating_sub(Self::FIXED + self.subject + self.checkpoint + extra) as usize
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
    let run = rows[selected];
    let trained = run.parent.as_ref().and_then(|id| app.runs.get(id));
    let detail = gating_detail::lines(run, trained, area.width.saturating_sub(2) as usize);
    let detail_h = gating_detail::height(&detail, area.width.saturating_sub(2))
        .min(area.height.saturating_sub(4))
        .max(3);
    let [table_area, detail_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(detail_h)]).areas(area);
    let inner_w = table_area.width.saturating_sub(2);
    let cols = Columns::of(&rows, inner_w);
    let flags_w = cols.flags_width(inner_w);
    let table = Table::new(rows.iter().map(|r| cols.row(r, flags_w)), cols.widths())
        .header(cols.header())
        .block(block(format!(" Gating — {} results ", rows.len())))
        .row_highlight_style(highlight_style())
        .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected(Some(selected));
    frame.render_stateful_widget(table, table_area, &mut state);
    gating_detail::render(frame, detail_area, detail);
}
