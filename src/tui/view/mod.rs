//! Rendering: `view(frame, app)` draws the whole screen from the state and nothing else, so
//! every pane can be snapshot-tested with a `TestBackend`.

mod chooser;
mod data;
mod gating;
mod gating_detail;
mod logs;
mod paper;
mod paper_portfolio;
mod paper_tables;
mod sweep;
mod training;
mod walk;
mod walk_table;
pub mod widgets;

use super::app::{App, Pane};
use super::keymap::{self, Mode};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Tabs, Wrap};
use ratatui::Frame;
use widgets::{centered, dim};

pub fn view(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.is_empty() {
        return;
    }
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(2),
    ])
    .areas(area);
    tab_bar(frame, top, app);
    match app.pane {
        Pane::Data => data::render(frame, body, app),
        Pane::Training if app.sweep.show => sweep::render(frame, body, app),
        Pane::Training => training::render(frame, body, app),
        Pane::Gating => gating::render(frame, body, app),
        Pane::WalkForward => walk::render(frame, body, app),
        Pane::Paper => paper::render(frame, body, app),
        Pane::Logs => logs::render(frame, body, app),
    }
    status_line(frame, bottom, app);
    if app.show_help {
        help_overlay(frame, area);
    }
    if app.confirm_quit {
        confirm_overlay(frame, area, app);
    }
    if let Some(run) = &app.confirm_flatten {
        flatten_overlay(frame, area, run);
    }
    if let Some(run) = &app.confirm_stop {
        stop_overlay(frame, area, run);
    }
    if let Some(c) = &app.train.open {
        chooser::render(frame, area, c);
    }
}

/// The kill switch asks first: it closes everything at the broker.
fn flatten_overlay(frame: &mut Frame, area: Rect, run: &str) {
    let red = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
    let lines = vec![
        Line::styled("KILL SWITCH — flatten all? (y/n)", red),
        Line::raw(""),
        Line::raw(format!("  {run}")),
        Line::raw(""),
        Line::raw("Cancels every open order and closes every position of the account"),
        Line::raw("(external ones too), then blocks new entries until cleared (C)."),
    ];
    let rect = centered(area, 72, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    let p = Paragraph::new(lines).wrap(Wrap { trim: false }).block(
        Block::bordered()
            .title(" flatten? ")
            .border_style(Style::new().fg(Color::Red)),
    );
    frame.render_widget(p, rect);
}

/// Stopping a daemon stops all trading: asked first.
fn stop_overlay(frame: &mut Frame, area: Rect, run: &str) {
    let red = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
    let lines = vec![
        Line::styled("STOP the paper daemon? (y/n)", red),
        Line::raw(""),
        Line::raw(format!("  {run}")),
        Line::raw(""),
        Line::raw("Nothing trades until it is started again; positions and open orders stay"),
        Line::raw("at the broker as they are (K flattens them)."),
    ];
    let rect = centered(area, 76, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    let p = Paragraph::new(lines).wrap(Wrap { trim: false }).block(
        Block::bordered()
            .title(" stop? ")
            .border_style(Style::new().fg(Color::Red)),
    );
    frame.render_widget(p, rect);
}

fn tab_bar(frame: &mut Frame, area: Rect, app: &App) {
    let running = app.running_count();
    let right = if running > 0 {
        format!(" {running} running · quantdeck ")
    } else {
        " quantdeck ".to_string()
    };
    let right_w = (right.chars().count() as u16).min(area.width / 3);
    let [tabs_area, right_area] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(right_w)]).areas(area);
    let titles = Pane::ALL
        .iter()
        .enumerate()
        .map(|(i, p)| Line::from(format!("{} {}", i + 1, p.title())));
    let tabs = Tabs::new(titles)
        .select(app.pane.index())
        .style(dim())
        .highlight_style(
            Style::new()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
        )
        .divider("│");
    frame.render_widget(tabs, tabs_area);
    let style = if running > 0 {
        Style::new().fg(Color::Cyan)
    } else {
        dim()
    };
    frame.render_widget(
        Paragraph::new(Span::styled(right, style)).right_aligned(),
        right_area,
    );
}

fn status_line(frame: &mut Frame, area: Rect, app: &App) {
    let [msg_area, keys_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let msg_style = if app.confirm_flatten.is_some() || app.confirm_stop.is_some() {
        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
    } else if app.confirm_quit {
        Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    frame.render_widget(
        Paragraph::new(Span::styled(app.message.clone(), msg_style)),
        msg_area,
    );
    let hints = keymap::hints(app.mode());
    let spans: Vec<Span> = hints
        .iter()
        .flat_map(|(k, what)| {
            [
                Span::styled(k.clone(), Style::new().fg(Color::Black).bg(Color::Gray)),
                Span::styled(format!(" {what} "), dim()),
            ]
        })
        .collect();
    frame.render_widget(Paragraph::new(Line::from(spans)), keys_area);
}

/// Every binding of the keymap, grouped by where it applies.
fn help_overlay(frame: &mut Frame, area: Rect) {
    let rows: Vec<(String, &str)> = keymap::KEYMAP
        .iter()
        .map(|b| (keymap::keys_label(b), b.help))
        .collect();
    let key_w = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    // A blank line between the groups where the screen has room for them.
    let groups = Mode::ALL.len();
    let spaced_rows = keymap::KEYMAP.len() + groups + (groups - 1) + 2;
    let spaced = spaced_rows <= usize::from(area.height);
    let mut lines: Vec<Line> = Vec::new();
    for mode in Mode::ALL {
        if spaced && !lines.is_empty() {
            lines.push(Line::raw(""));
        }
        lines.push(Line::styled(mode.heading(), dim()));
        // A question's answers share one line: the help stays within a 40-row terminal.
        let question = matches!(
            mode,
            Mode::Confirm | Mode::ConfirmFlatten | Mode::ConfirmStop
        );
        let mut spans: Vec<Span> = Vec::new();
        for (b, (k, what)) in keymap::KEYMAP.iter().zip(&rows) {
            if b.mode != mode {
                continue;
            }
            if !spans.is_empty() {
                if question {
                    spans.push(Span::raw("   "));
                } else {
                    lines.push(Line::from(std::mem::take(&mut spans)));
                }
            }
            spans.push(Span::styled(
                format!(" {k:<key_w$}  "),
                Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            ));
            spans.push(Span::raw(*what));
        }
        if !spans.is_empty() {
            lines.push(Line::from(spans));
        }
    }
    let width = lines.iter().map(|l| l.width() + 4).max().unwrap_or(20) as u16;
    let rect = centered(area, width, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    let p = Paragraph::new(lines).block(
        Block::bordered()
            .title(" keys — Esc or ? to close ")
            .border_style(Style::new().fg(Color::Cyan)),
    );
    frame.render_widget(p, rect);
}

fn confirm_overlay(frame: &mut Frame, area: Rect, app: &App) {
    let running: Vec<String> = app.running_ours().iter().map(|r| r.id.clone()).collect();
    let mut lines = vec![
        Line::styled(
            "jobs running — quit and cancel them? (y/n)",
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ),
        Line::raw(""),
    ];
    lines.extend(running.iter().map(|id| Line::raw(format!("  {id}"))));
    let rect = centered(area, 60, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    let p = Paragraph::new(lines).wrap(Wrap { trim: false }).block(
        Block::bordered()
            .title(" quit? ")
            .border_style(Style::new().fg(Color::Yellow)),
    );
    frame.render_widget(p, rect);
}
