//! The Gating pane's Selected box: the graded model's figures, beside momentum and buy-and-hold
//! (and the raw policy) on its validation bars; a seed group's spread; the flags and which model
//! was graded, and why.

use super::gating::gated;
use super::training::insufficient_text;
use super::widgets::{block, class_color, dim, flags_text, num, pct, pct_abs, status_color};
use crate::eval::baselines::beats;
use crate::eval::gate::{BaselineCheck, GroupGrade};
use crate::eval::{GateFlag, GateResult, RawFigures};
use crate::jobs::JobStatus;
use crate::tui::app::RunView;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

/// The width of the row labels of the figures' table and of the lines that follow a label.
const INDENT: usize = 10;

fn label(s: &str) -> Span<'static> {
    Span::styled(format!("{s} "), dim())
}

fn indent(s: &str) -> Span<'static> {
    Span::styled(format!("{s:<INDENT$}"), dim())
}

/// The box's lines for the gate `run` of the training run `trained`, `width` columns wide.
pub(super) fn lines(run: &RunView, trained: Option<&RunView>, width: usize) -> Vec<Line<'static>> {
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
    let Some(g) = &run.gate else {
        if !run.message.is_empty() {
            lines.push(Line::raw(run.message.clone()));
        }
        return lines;
    };
    lines.push(class_line(g));
    if let Some(p) = &g.metrics.portfolio {
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
    if let Some(c) = &g.baselines {
        lines.extend(baseline_lines(c, g.metrics.raw));
    }
    if let Some(c) = &g.composite {
        lines.push(Line::from(vec![
            label("score"),
            Span::raw(format!(
                "{:.0} = 40·profit {:+.2} + 20·reward {:+.2} + 20·EV {:+.2} + 10·exploration {:.2} − 10·instability {:.2}",
                c.total, c.profitability, c.reward, c.value, c.exploration, c.instability
            )),
        ]));
    }
    if let Some(grp) = &g.group {
        lines.extend(group_lines(grp, width));
    }
    lines.push(Line::from(vec![
        label("flags"),
        Span::raw(flags_text(&g.flags, ", ", "none")),
    ]));
    lines.push(Line::from(vec![
        label("graded"),
        Span::raw(graded_long(g, trained)),
    ]));
    lines
}

fn class_line(g: &GateResult) -> Line<'static> {
    let m = &g.metrics;
    let mut l = vec![
        label("class"),
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
        return Line::from(l);
    }
    for (name, value) in [
        ("fitness", num(m.fitness)),
        ("Sharpe", num(m.sharpe)),
        ("return", pct(m.total_return)),
        ("PF", num(m.profit_factor)),
        ("consistency", num(m.consistency)),
        ("trades", m.trades.to_string()),
        ("days", m.days.to_string()),
    ] {
        l.push(Span::styled(format!("  {name} "), dim()));
        l.push(Span::raw(value));
    }
    Line::from(l)
}

/// The verdict against the simple rules, then a small table: return and Sharpe of the model as
/// traded, the raw policy, and each baseline (green where the model beats it, red where not).
fn baseline_lines(c: &BaselineCheck, raw_record: Option<RawFigures>) -> Vec<Line<'static>> {
    let names =
        |v: &[crate::eval::Baseline]| v.iter().map(|b| b.name()).collect::<Vec<_>>().join(" and ");
    let verdict = if c.trails.is_empty() {
        Span::styled(
            format!("beats {}", names(&c.beats)),
            Style::new().fg(Color::Green),
        )
    } else {
        let mut t = format!(
            "trails {} (BELOW_BASELINE: never APPROVED)",
            names(&c.trails)
        );
        if !c.beats.is_empty() {
            t.push_str(&format!("; beats {}", names(&c.beats)));
        }
        Span::styled(t, Style::new().fg(Color::Red))
    };
    let first = Line::from(vec![label("baselines"), verdict]);
    // (column name, figures, style of the figures)
    let model_color = Style::new().fg(super::widgets::signed_color(c.model.total_return));
    let mut cols: Vec<(String, RawFigures, Style)> =
        vec![("model as traded".into(), c.model, model_color)];
    if let Some(raw) = c.raw.or(raw_record) {
        cols.push(("raw, no threshold".into(), raw, dim()));
    }
    for (b, f) in &c.baselines {
        let name = match (b, c.momentum) {
            (crate::eval::Baseline::Momentum, Some(m)) => format!("momentum {}/{}", m.fast, m.slow),
            _ => b.name().to_string(),
        };
        let won = beats(
            c.model.total_return,
            c.model.sharpe,
            f.total_return,
            f.sharpe,
        );
        let color = if won { Color::Green } else { Color::Red };
        cols.push((name, *f, Style::new().fg(color)));
    }
    let width = |name: &str| name.chars().count().max(8) + 2;
    let mut head = vec![indent("")];
    let mut ret = vec![indent("  return")];
    let mut sharpe = vec![indent("  Sharpe")];
    for (name, f, style) in &cols {
        let w = width(name);
        head.push(Span::styled(format!("{name:<w$}"), dim()));
        ret.push(Span::styled(format!("{:<w$}", pct(f.total_return)), *style));
        sharpe.push(Span::styled(
            format!("{:<w$}", format!("{:+.2}", f.sharpe)),
            *style,
        ));
    }
    // Where the model's figures come from (a re-run of the graded file, or its record).
    let source = Line::from(Span::styled(c.source.clone(), dim()));
    vec![
        first,
        Line::from(head),
        Line::from(ret),
        Line::from(sharpe),
        source,
    ]
}

/// A seed group: the class counts and the fitness spread, which seed is the median (the group's
/// model) and the worst; every seed in one line where it fits.
fn group_lines(g: &GroupGrade, width: usize) -> Vec<Line<'static>> {
    let seed_of = |run: &str| {
        g.seeds
            .iter()
            .find(|s| s.run == run)
            .map_or("?".to_string(), |s| s.seed.to_string())
    };
    let mut out = vec![
        Line::from(vec![indent("seeds"), Span::raw(g.line())]),
        Line::from(vec![
            indent(""),
            Span::raw(format!(
                "median seed {} ({}): the group's class and model · worst seed {}",
                seed_of(&g.median),
                g.median,
                seed_of(&g.worst)
            )),
        ]),
    ];
    let mut each = vec![indent("")];
    for (i, s) in g.seeds.iter().enumerate() {
        if i > 0 {
            each.push(Span::styled(" · ", dim()));
        }
        each.push(Span::raw(format!("seed {} ", s.seed)));
        each.push(Span::styled(
            s.result.class.as_str(),
            Style::new().fg(class_color(s.result.class)),
        ));
        each.push(Span::raw(format!(" {:+.3}", s.result.metrics.fitness)));
    }
    let each = Line::from(each);
    if each.width() <= width {
        out.push(each);
    }
    out
}

/// Which model the gate graded, and why (a group's: its median seed's).
fn graded_long(g: &GateResult, trained: Option<&RunView>) -> String {
    let median = g
        .group
        .as_ref()
        .and_then(|grp| grp.seeds.iter().find(|s| s.run == grp.median));
    match median {
        Some(s) => format!("{} of seed {} (the median)", model_long(g, trained), s.seed),
        None => model_long(g, trained),
    }
}

fn model_long(g: &GateResult, trained: Option<&RunView>) -> String {
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

/// Rows the box needs at inner width `width`: its lines, wrapped, and the borders.
pub(super) fn height(lines: &[Line], width: u16) -> u16 {
    let w = usize::from(width.max(1));
    let rows: usize = lines.iter().map(|l| l.width().div_ceil(w).max(1)).sum();
    (rows + 2).max(8) as u16
}

pub(super) fn render(frame: &mut Frame, area: Rect, lines: Vec<Line<'static>>) {
    let p = Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(block(" Selected "));
    frame.render_widget(p, area);
}
