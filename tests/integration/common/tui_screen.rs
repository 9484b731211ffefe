//! Rendering the TUI into a `TestBackend` and reading the screen back, shared by the TUI tests.
#![allow(dead_code)]

use super::tui_fixture::full_app;
use quantdeck::tui::{view, App, Pane};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use ratatui::Terminal;

pub fn render(app: &App, width: u16, height: u16) -> Buffer {
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(t) => t,
        Err(e) => match e {},
    };
    if let Err(e) = terminal.draw(|f| view(f, app)) {
        match e {}
    }
    terminal.backend().buffer().clone()
}

/// The screen as text, one line per row, trailing blanks trimmed.
pub fn text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn screen(app: &App) -> String {
    text(&render(app, 140, 42))
}

pub fn on(pane: Pane) -> App {
    let mut app = full_app();
    app.pane = pane;
    app
}

/// Finds `needle` on screen and returns the style of its first cell.
pub fn color_of(buf: &Buffer, needle: &str) -> Option<(Color, Color)> {
    let area = buf.area;
    for y in area.top()..area.bottom() {
        let row: Vec<&str> = (area.left()..area.right())
            .map(|x| buf[(x, y)].symbol())
            .collect();
        let line = row.concat();
        if let Some(byte) = line.find(needle) {
            // Cells hold one character each here, so the char index is the column.
            let col = line[..byte].chars().count() as u16;
            let cell = &buf[(area.left() + col, y)];
            return Some((cell.fg, cell.bg));
        }
    }
    None
}

/// The text of the box whose top border starts with `top`, its lines joined by spaces.
pub fn boxed(screen: &str, top: &str) -> String {
    screen
        .lines()
        .skip_while(|l| !l.starts_with(top))
        .skip(1)
        .take_while(|l| !l.starts_with('└'))
        .map(|l| l.trim_matches(|c| c == '│' || c == ' '))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn gate_row(id: &str) -> App {
    let mut app = on(Pane::Gating);
    app.sel.gate = app
        .gate_rows()
        .iter()
        .position(|r| r.id == id)
        .unwrap_or(usize::MAX);
    app
}
