//! The training-mode chooser: one row per mode with its steps, network and estimated wall time
//! on this machine, and under it where the estimate comes from.

use super::widgets::{centered, dim, group};
use crate::jobs::estimate::{Basis, Estimate, Net};
use crate::tui::chooser::{ChoiceRow, Chooser};
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

/// Wide enough for the production network's row and a run id in the line under it.
const WIDTH: u16 = 100;

/// Rows the lines take in a box `width` wide, wrapped (a wrapped line may need one row more than
/// its length says, where a word moves down whole).
fn height(lines: &[Line], width: u16) -> u16 {
    let inner = usize::from(width.saturating_sub(2)).max(1);
    let rows: usize = lines
        .iter()
        .map(|l| match l.width() {
            w if w <= inner => 1,
            w => w.div_ceil(inner) + 1,
        })
        .sum();
    u16::try_from(rows).unwrap_or(u16::MAX)
}

pub fn render(frame: &mut Frame, area: Rect, c: &Chooser) {
    let mut lines = vec![Line::styled(
        format!(
            "  {:<14}{:>12}  {:<44}{:<10}{:>10}",
            "mode", "env-steps", "network", "time here", "speed"
        ),
        dim(),
    )];
    for (i, row) in c.rows.iter().enumerate() {
        lines.extend(row_lines(row, i == c.selected));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "Speeds in env-steps/s over a run's wall time, validations included.",
        dim(),
    ));
    if c.user_file {
        lines.push(Line::styled(
            "Your --config file applies over every mode, as on the command line.",
            dim(),
        ));
    }
    let rect = centered(area, WIDTH, height(&lines, WIDTH.min(area.width)) + 2);
    frame.render_widget(Clear, rect);
    let p = Paragraph::new(lines).wrap(Wrap { trim: false }).block(
        Block::bordered()
            .title(format!(" train {} — which mode? ", c.symbol))
            .border_style(Style::new().fg(Color::Cyan)),
    );
    frame.render_widget(p, rect);
}

fn row_lines(row: &ChoiceRow, selected: bool) -> [Line<'static>; 2] {
    let m = &row.mode;
    let s = &m.shape;
    let network = format!(
        "{}, obs {}, {} epochs",
        s.net.describe(),
        obs_dim(&s.net),
        s.epochs
    );
    let e = &row.estimate;
    let text = format!(
        "{} {:<14}{:>12}  {:<44}{:<10}{:>10}",
        if selected { "▶" } else { " " },
        m.name,
        group(m.timesteps),
        network,
        format!("≈ {}", wall_time(e.seconds(m.timesteps))),
        format!("{}/s", group(e.sps.round().max(0.0) as u64)),
    );
    let style = if selected {
        Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    [
        Line::from(Span::styled(text, style)),
        Line::styled(format!("    {}", basis(e)), dim()),
    ]
}

fn obs_dim(net: &Net) -> usize {
    match net {
        Net::Mlp { obs, .. } => *obs,
        Net::Gru(spec) => spec.obs_dim(),
    }
}

/// Where the figure comes from, in words: a measurement, a scaled run, or the rough fallback.
pub fn basis(e: &Estimate) -> String {
    match &e.basis {
        Basis::Measured { run } => format!("measured from run {run}"),
        Basis::Scaled { run, factor } => {
            format!("rough estimate from run {run}, scaled by the work per step (×{factor:.1})")
        }
        Basis::Rough => {
            "rough estimate: no training run on this machine yet; from a 2-core CPU's quick_test speed"
                .into()
        }
    }
}

/// An estimated duration, no more precise than it is: 40 s, 25 min, 9.9 h, 27 days.
pub fn wall_time(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    let (min, hour, day) = (60.0, 3600.0, 86_400.0);
    if secs < min {
        format!("{:.0} s", secs.max(1.0))
    } else if secs < hour {
        format!("{:.0} min", secs / min)
    } else if secs < 2.0 * day {
        format!("{:.1} h", secs / hour)
    } else {
        format!("{:.0} days", secs / day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_times_read_at_their_scale() {
        assert_eq!(wall_time(0.2), "1 s");
        assert_eq!(wall_time(30.7), "31 s");
        assert_eq!(wall_time(25.0 * 60.0), "25 min");
        assert_eq!(wall_time(35_700.0), "9.9 h");
        assert_eq!(wall_time(27.0 * 86_400.0), "27 days");
        assert_eq!(wall_time(f64::INFINITY), "?");
    }
}
