//! The Walk-forward pane's fold table: per fold the model as traded, the raw policy, and every
//! baseline's return and Sharpe — each baseline coloured by whether the model beat it in that
//! fold (`eval::baselines::beats`: a higher return *and* a higher Sharpe), never by its sign.
//! Columns that matter least give way first on a narrow screen.

use super::widgets::{block, dim, header_style, num, pct_abs, signed_color};
use crate::eval::baselines::beats;
use crate::eval::Baseline;
use crate::jobs::events::FoldResult;
use crate::tui::app::RunView;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Cell, Row, Table};
use ratatui::Frame;

/// The baselines the run's folds carry, in display order (a portfolio run's differ).
pub(super) fn present(run: &RunView) -> Vec<Baseline> {
    Baseline::ALL
        .into_iter()
        .filter(|b| {
            run.folds
                .iter()
                .any(|f| f.baselines.iter().any(|r| r.baseline == *b))
        })
        .collect()
}

/// Colour of a baseline's figures in a fold: green where the model beats it, red where not.
fn versus_color(f: &FoldResult, base_return: f64, base_sharpe: f64) -> Color {
    if beats(f.total_return, f.sharpe, base_return, base_sharpe) {
        Color::Green
    } else {
        Color::Red
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Col {
    Fold,
    Period,
    Bars,
    Model,
    Raw,
    MaxDd,
    Win,
    Pf,
    Trades,
    Base(Baseline),
}

/// Dropped in this order while the table is wider than the screen.
const OPTIONAL: [Col; 4] = [Col::Bars, Col::Win, Col::Pf, Col::MaxDd];

/// What the column widths depend on: the longest figures of the run.
struct Fit {
    period: usize,
    ret: usize,
    sharpe: usize,
    trades: usize,
    portfolio: bool,
    /// Some fold's threshold held decisions.
    held: bool,
}

fn ret_text(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.2}", x * 100.0)
    } else {
        "–".into()
    }
}

fn sharpe_text(x: f64) -> String {
    if x.is_finite() {
        format!("{x:+.2}")
    } else {
        "–".into()
    }
}

/// `2024-08-01 → 08-20` within a year, both dates in full across one.
fn period(f: &FoldResult) -> String {
    let end = if f.start.format("%Y").to_string() == f.end.format("%Y").to_string() {
        f.end.format("%m-%d")
    } else {
        f.end.format("%Y-%m-%d")
    };
    format!("{} → {end}", f.start.format("%Y-%m-%d"))
}

/// `30`, or `30 (h 40)` where the confidence threshold held 40 decisions; a portfolio's turnover.
fn trades(f: &FoldResult) -> String {
    match &f.portfolio {
        Some(p) => format!("{:.2}×", p.turnover),
        None if f.held > 0 => format!("{} (h {})", f.trades, f.held),
        None => f.trades.to_string(),
    }
}

impl Fit {
    fn of(run: &RunView) -> Fit {
        let longest = |xs: Vec<String>, min: usize| {
            xs.iter().map(|s| s.chars().count()).fold(min, usize::max)
        };
        let mut rets = Vec::new();
        let mut sharpes = Vec::new();
        for f in &run.folds {
            rets.push(ret_text(f.total_return));
            sharpes.push(sharpe_text(f.sharpe));
            if let Some(r) = &f.raw {
                rets.push(ret_text(r.total_return));
                sharpes.push(sharpe_text(r.sharpe));
            }
            for b in &f.baselines {
                rets.push(ret_text(b.total_return));
                sharpes.push(sharpe_text(b.sharpe));
            }
        }
        Fit {
            period: longest(run.folds.iter().map(period).collect(), 6),
            ret: longest(rets, 5),
            // "Sharpe" heads the column.
            sharpe: longest(sharpes, 6),
            trades: longest(run.folds.iter().map(trades).collect(), 6),
            portfolio: run.folds.iter().any(|f| f.portfolio.is_some()),
            held: run
                .folds
                .iter()
                .any(|f| f.held > 0 && f.portfolio.is_none()),
        }
    }

    /// A return and a Sharpe side by side.
    fn pair_width(&self) -> usize {
        self.ret + 1 + self.sharpe
    }

    fn width(&self, c: Col) -> usize {
        match c {
            Col::Fold => 4,
            Col::Period => self.period,
            Col::Bars => 5,
            Col::Model | Col::Base(_) => self.pair_width(),
            Col::Raw => self.pair_width().max(10),
            Col::MaxDd => 6,
            Col::Win | Col::Pf => 5,
            Col::Trades if self.portfolio => 8,
            Col::Trades if self.held => self.trades.max(8),
            Col::Trades => self.trades,
        }
    }

    /// Two header lines; a figure pair's second line sits over its numbers.
    fn head(&self, c: Col) -> [String; 2] {
        let pair = || {
            format!(
                "{:>r$} {:>s$}",
                "%",
                "Sharpe",
                r = self.ret,
                s = self.sharpe
            )
        };
        let two = |a: &str, b: &str| [a.to_string(), b.to_string()];
        match c {
            Col::Fold => two("Fold", ""),
            Col::Period => two("Period", ""),
            Col::Bars => two("Bars", ""),
            Col::Model => ["Model".into(), pair()],
            Col::Raw => two("Raw policy", "no thresh."),
            Col::MaxDd => two("Max DD", ""),
            Col::Win => two("Win", ""),
            Col::Pf => two("PF", ""),
            Col::Trades if self.portfolio => two("Turnover", ""),
            Col::Trades if self.held => two("Trades", "(h held)"),
            Col::Trades => two("Trades", ""),
            Col::Base(b) => [column_name(b).into(), pair()],
        }
    }

    fn pair(&self, ret: f64, sharpe: f64, style: Style, sharpe_style: Style) -> Line<'static> {
        Line::from(vec![
            Span::styled(format!("{:>w$}", ret_text(ret), w = self.ret), style),
            Span::styled(
                format!(" {:>w$}", sharpe_text(sharpe), w = self.sharpe),
                sharpe_style,
            ),
        ])
    }

    fn cell(&self, c: Col, f: &FoldResult) -> Cell<'static> {
        match c {
            Col::Fold => Cell::from(format!("F{}", f.fold)),
            Col::Period => Cell::from(period(f)),
            Col::Bars => Cell::from(f.bars.to_string()),
            Col::Model => Cell::from(self.pair(
                f.total_return,
                f.sharpe,
                Style::new().fg(signed_color(f.total_return)),
                Style::new(),
            )),
            Col::Raw => match &f.raw {
                Some(r) => Cell::from(self.pair(r.total_return, r.sharpe, dim(), dim())),
                None => Cell::from(Span::styled("–", dim())),
            },
            Col::MaxDd => Cell::from(pct_abs(f.max_drawdown)),
            Col::Win => Cell::from(pct_abs(f.win_rate)),
            Col::Pf => Cell::from(num(f.profit_factor)),
            Col::Trades => Cell::from(trades(f)),
            Col::Base(b) => match f.baselines.iter().find(|r| r.baseline == b) {
                Some(r) => {
                    let s = Style::new().fg(versus_color(f, r.total_return, r.sharpe));
                    Cell::from(self.pair(r.total_return, r.sharpe, s, s))
                }
                None => Cell::from(Span::styled("–", dim())),
            },
        }
    }

    /// The columns that fit `width`, the optional ones dropped first.
    fn columns(&self, run: &RunView, width: usize) -> Vec<Col> {
        let mut cols = vec![Col::Fold, Col::Period, Col::Bars, Col::Model];
        if run.folds.iter().any(|f| f.raw.is_some()) {
            cols.push(Col::Raw);
        }
        cols.extend([Col::MaxDd, Col::Win, Col::Pf, Col::Trades]);
        cols.extend(present(run).into_iter().map(Col::Base));
        for drop in OPTIONAL {
            let total: usize = cols.iter().map(|c| self.width(*c) + 1).sum();
            if total.saturating_sub(1) <= width {
                break;
            }
            cols.retain(|c| *c != drop);
        }
        cols
    }
}

fn column_name(b: Baseline) -> &'static str {
    match b {
        Baseline::EqualWeight => "Equal wt",
        Baseline::BuyHold => "Buy&hold",
        Baseline::Flat => "Flat",
        Baseline::Random => "Random",
        Baseline::Momentum => "Momentum",
    }
}

pub(super) fn render(frame: &mut Frame, area: Rect, run: &RunView) {
    let fit = Fit::of(run);
    let cols = fit.columns(run, area.width.saturating_sub(2) as usize);
    let header = Row::new(cols.iter().map(|c| {
        let [a, b] = fit.head(*c);
        Cell::from(Text::from(vec![Line::from(a), Line::from(b)]))
    }))
    .style(header_style())
    .height(2);
    let rows = run
        .folds
        .iter()
        .map(|f| Row::new(cols.iter().map(|c| fit.cell(*c, f))));
    let widths = cols
        .iter()
        .map(|c| Constraint::Length(fit.width(*c) as u16));
    let mut frame_block = block(
        " Folds — a baseline is green where the model as traded beats it (higher return and Sharpe), red where not ",
    );
    let mut notes = Vec::new();
    if cols.contains(&Col::Raw) {
        notes.push("Raw policy: every choice acted on, without the confidence threshold");
    }
    if fit.held {
        notes.push("h: decisions the threshold held");
    }
    if !notes.is_empty() {
        frame_block = frame_block.title_bottom(Line::from(Span::styled(
            format!(" {} ", notes.join(" · ")),
            dim(),
        )));
    }
    let table = Table::new(rows, widths).header(header).block(frame_block);
    frame.render_widget(table, area);
}
