//! What aligning a panel found: per symbol, how many bars it has, how many slots are missing and
//! where, and what was left out.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Gap times listed per symbol (the count is always complete).
pub const GAP_SAMPLES: usize = 10;

/// One symbol's coverage of the panel's time axis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SymbolCoverage {
    pub symbol: String,
    /// First and last rows with a bar.
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    /// Rows with a bar.
    pub present: usize,
    /// Rows before its first bar: its history starts later than the panel's.
    pub before_first: usize,
    /// Rows after its last bar: its history ends earlier.
    pub after_last: usize,
    /// Rows between its first and last bar without one.
    pub gaps: usize,
    /// The first [`GAP_SAMPLES`] of those rows' times.
    pub gap_at: Vec<DateTime<Utc>>,
    /// Bars outside every session slot (extended hours, weekends), left out.
    pub off_calendar: usize,
    /// Bars failing the OHLC consistency check (non-positive or non-finite prices), left out.
    pub invalid: usize,
    /// Second bars for a slot already filled; the later one is kept.
    pub duplicates: usize,
}

impl SymbolCoverage {
    pub(super) fn new(symbol: &str) -> Self {
        SymbolCoverage {
            symbol: symbol.to_string(),
            ..Default::default()
        }
    }

    /// Fills the row counts from the symbol's availability per row.
    pub(super) fn count(&mut self, ts: &[DateTime<Utc>], available: impl Fn(usize) -> bool) {
        let rows: Vec<usize> = (0..ts.len()).filter(|&t| available(t)).collect();
        let (Some(&a), Some(&b)) = (rows.first(), rows.last()) else {
            return;
        };
        self.first = Some(ts[a]);
        self.last = Some(ts[b]);
        self.present = rows.len();
        self.before_first = a;
        self.after_last = ts.len() - 1 - b;
        for (t, at) in ts.iter().enumerate().take(b + 1).skip(a) {
            if !available(t) {
                self.gaps += 1;
                if self.gap_at.len() < GAP_SAMPLES {
                    self.gap_at.push(*at);
                }
            }
        }
    }

    /// Cells of the panel this symbol lacks.
    pub fn missing(&self) -> usize {
        self.before_first + self.gaps + self.after_last
    }

    pub(super) fn left_out_summary(&self) -> String {
        format!(
            "{} off-calendar, {} invalid, {} duplicate bars left out",
            self.off_calendar, self.invalid, self.duplicates
        )
    }

    /// One line for logs and the Data pane, or `None` when the symbol is complete.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.before_first > 0 {
            parts.push(format!(
                "starts late ({} bars before {})",
                self.before_first,
                self.first.map(|t| t.to_rfc3339()).unwrap_or_default()
            ));
        }
        if self.after_last > 0 {
            parts.push(format!(
                "ends early ({} bars after {})",
                self.after_last,
                self.last.map(|t| t.to_rfc3339()).unwrap_or_default()
            ));
        }
        if self.gaps > 0 {
            let at: Vec<String> = self.gap_at.iter().map(|t| t.to_rfc3339()).collect();
            let more = if self.gaps > at.len() { ", …" } else { "" };
            parts.push(format!("{} gaps at {}{more}", self.gaps, at.join(", ")));
        }
        if self.off_calendar + self.invalid + self.duplicates > 0 {
            parts.push(self.left_out_summary());
        }
        (!parts.is_empty()).then(|| format!("{}: {}", self.symbol, parts.join("; ")))
    }
}

/// The panel's coverage, symbol by symbol.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PanelReport {
    /// Rows of the panel.
    pub bars: usize,
    pub symbols: Vec<SymbolCoverage>,
}

impl PanelReport {
    /// Symbol-bars the panel lacks, all symbols together.
    pub fn missing_cells(&self) -> usize {
        self.symbols.iter().map(SymbolCoverage::missing).sum()
    }

    /// One line per incomplete symbol (empty when every symbol has every bar).
    pub fn lines(&self) -> Vec<String> {
        self.symbols.iter().filter_map(|s| s.describe()).collect()
    }
}
