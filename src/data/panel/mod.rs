//! A portfolio's bars aligned across symbols: a [`Panel`] of T bar times × N symbols (open,
//! close, volume) on the session calendar, with a per-cell availability mask.
//!
//! Alignment rules:
//! - The time axis is the calendar's bar slots (see [`super::coverage`]) from the earliest bar of
//!   any symbol to the latest, within the requested days. Every slot is a row, whether or not any
//!   symbol has a bar there, so rows are evenly spaced in session time.
//! - A missing symbol-bar is **unavailable**: its prices are NaN and its mask is false. Nothing is
//!   forward-filled here; the trading rules (`sim::portfolio`) decide what an unavailable cell
//!   means (not tradable that bar; a holding is valued at its last close).
//! - A symbol whose history starts later than others (a later listing, a shorter download) is
//!   unavailable before its first bar. The panel does not cut the others' history to it: the
//!   report counts those cells apart from gaps, and the rules let the symbol into the universe
//!   once it has a full factor lookback. Likewise after a symbol's last bar.
//! - Bars outside every session slot (extended hours), bars failing the OHLC consistency check,
//!   and second bars for an already filled slot (the later one is kept) are left out and counted.
//! - A symbol with no usable bar in the range is an error naming it, never an empty column.

mod load;
mod report;

pub use load::{load_panel, LoadedPanel};
pub use report::{PanelReport, SymbolCoverage, GAP_SAMPLES};

use super::coverage::Slots;
use crate::market::{AssetClass, Bar, Calendar, Symbol, Timeframe};
use anyhow::{bail, Result};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;

/// T bar times × N symbols. Cell `(t, i)` is stored at `t * n_symbols + i`.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub symbols: Vec<Symbol>,
    pub class: AssetClass,
    pub timeframe: Timeframe,
    /// Bar start of each row (the calendar slot's key: the session open for daily bars).
    pub ts: Vec<DateTime<Utc>>,
    open: Vec<f64>,
    close: Vec<f64>,
    volume: Vec<f64>,
    available: Vec<bool>,
    pub report: PanelReport,
}

impl Panel {
    pub fn n_bars(&self) -> usize {
        self.ts.len()
    }

    pub fn n_symbols(&self) -> usize {
        self.symbols.len()
    }

    fn at(&self, t: usize, i: usize) -> usize {
        t * self.symbols.len() + i
    }

    /// Whether symbol `i` has a bar at row `t`.
    pub fn is_available(&self, t: usize, i: usize) -> bool {
        self.available[self.at(t, i)]
    }

    pub fn open(&self, t: usize, i: usize) -> Option<f64> {
        self.is_available(t, i).then(|| self.open[self.at(t, i)])
    }

    pub fn close(&self, t: usize, i: usize) -> Option<f64> {
        self.is_available(t, i).then(|| self.close[self.at(t, i)])
    }

    pub fn volume(&self, t: usize, i: usize) -> Option<f64> {
        self.is_available(t, i).then(|| self.volume[self.at(t, i)])
    }

    /// A digest of everything the panel holds (times, prices, volumes, availability, symbols),
    /// recorded in a portfolio model so a later evaluation can tell the data changed.
    pub fn sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for s in &self.symbols {
            h.update(s.name.as_bytes());
            h.update([0]);
        }
        for ts in &self.ts {
            h.update(ts.timestamp_millis().to_le_bytes());
        }
        for ((o, c), (v, a)) in self
            .open
            .iter()
            .zip(&self.close)
            .zip(self.volume.iter().zip(&self.available))
        {
            h.update(o.to_le_bytes());
            h.update(c.to_le_bytes());
            h.update(v.to_le_bytes());
            h.update([u8::from(*a)]);
        }
        format!("{:x}", h.finalize())
    }

    /// The row of a bar time, if it is on the panel's axis.
    pub fn row_of(&self, ts: DateTime<Utc>) -> Option<usize> {
        self.ts.binary_search(&ts).ok()
    }

    /// Aligns each symbol's bars (`series[i]` belongs to `symbols[i]`) on the calendar slots of
    /// `tf`, within the exchange-local days `days` when given.
    pub fn align(
        symbols: &[Symbol],
        tf: Timeframe,
        series: &[Vec<Bar>],
        days: Option<(NaiveDate, NaiveDate)>,
    ) -> Result<Panel> {
        let class = panel_class(symbols, series)?;
        let cal = Calendar::for_class(class);
        let in_days = |ts: DateTime<Utc>| {
            days.is_none_or(|(a, b)| {
                let d = cal.local_date(ts);
                d >= a && d <= b
            })
        };
        let slots = grid_of(symbols, tf, series)?;

        // Each symbol's usable bars, keyed by slot, and what was left out.
        let mut keyed: Vec<Vec<Keyed>> = Vec::with_capacity(symbols.len());
        let mut cov: Vec<SymbolCoverage> = Vec::with_capacity(symbols.len());
        for (sym, bars) in symbols.iter().zip(series) {
            let (mine, c) = keyed_bars(sym, tf, bars, &slots, &in_days, days)?;
            keyed.push(mine);
            cov.push(c);
        }

        let from = keyed.iter().filter_map(|k| k.first()).map(|x| x.0).min();
        let to = keyed.iter().filter_map(|k| k.last()).map(|x| x.0).max();
        let (Some(from), Some(to)) = (from, to) else {
            bail!("no bars to align");
        };
        let ts: Vec<DateTime<Utc>> = slots.between(from, to).iter().map(|s| s.key).collect();
        let row: HashMap<DateTime<Utc>, usize> =
            ts.iter().enumerate().map(|(t, k)| (*k, t)).collect();
        let (n, m) = (ts.len(), symbols.len());
        let mut open = vec![f64::NAN; n * m];
        let mut close = vec![f64::NAN; n * m];
        let mut volume = vec![f64::NAN; n * m];
        let mut available = vec![false; n * m];
        for (i, mine) in keyed.iter().enumerate() {
            for (key, b) in mine {
                let Some(&t) = row.get(key) else {
                    // A slot key always lies between the first and last key; guard anyway.
                    cov[i].off_calendar += 1;
                    continue;
                };
                open[t * m + i] = b.open;
                close[t * m + i] = b.close;
                volume[t * m + i] = b.volume;
                available[t * m + i] = true;
            }
            cov[i].count(&ts, |t| available[t * m + i]);
        }
        Ok(Panel {
            symbols: symbols.to_vec(),
            class,
            timeframe: tf,
            report: PanelReport {
                bars: n,
                symbols: cov,
            },
            ts,
            open,
            close,
            volume,
            available,
        })
    }
}

/// The one asset class of a panel's symbols, each of which must have its series.
fn panel_class(symbols: &[Symbol], series: &[Vec<Bar>]) -> Result<AssetClass> {
    if symbols.is_empty() {
        bail!("a portfolio panel needs at least one symbol");
    }
    if symbols.len() != series.len() {
        bail!(
            "{} symbols but {} bar series: each symbol needs its series",
            symbols.len(),
            series.len()
        );
    }
    let class = symbols[0].class;
    if let Some(s) = symbols.iter().find(|s| s.class != class) {
        bail!(
            "{s} is {} but {} is {}: a panel lives on one session calendar",
            s.class.as_str(),
            symbols[0],
            class.as_str()
        );
    }
    Ok(class)
}

/// A usable bar under the key of its calendar slot.
type Keyed = (DateTime<Utc>, Bar);

/// One symbol's usable bars keyed by slot (a later bar replaces an earlier one in its slot),
/// and what was left out; an error naming the symbol when nothing is usable.
fn keyed_bars(
    sym: &Symbol,
    tf: Timeframe,
    bars: &[Bar],
    slots: &Slots<'_>,
    in_days: &dyn Fn(DateTime<Utc>) -> bool,
    days: Option<(NaiveDate, NaiveDate)>,
) -> Result<(Vec<Keyed>, SymbolCoverage)> {
    let mut c = SymbolCoverage::new(&sym.name);
    let mut mine: Vec<Keyed> = Vec::with_capacity(bars.len());
    let mut sorted = bars.to_vec();
    sorted.sort_by_key(|b| b.ts);
    for b in sorted {
        let Some(key) = slots.slot_of(b.ts) else {
            c.off_calendar += 1;
            continue;
        };
        if !in_days(key) {
            continue;
        }
        if !b.is_consistent() {
            c.invalid += 1;
            continue;
        }
        match mine.last_mut() {
            Some(last) if last.0 == key => {
                c.duplicates += 1;
                *last = (key, b);
            }
            _ => mine.push((key, b)),
        }
    }
    if mine.is_empty() {
        bail!(
            "{sym} has no usable {tf} bars{}: {}",
            days.map(|(a, b)| format!(" between {a} and {b}"))
                .unwrap_or_default(),
            c.left_out_summary()
        );
    }
    Ok((mine, c))
}

/// The slot grid all symbols are stamped on; symbols stamped on different intraday grids
/// (session-anchored vs clock-aligned) cannot share a time axis.
fn grid_of<'a>(symbols: &[Symbol], tf: Timeframe, series: &[Vec<Bar>]) -> Result<Slots<'a>> {
    let mut found: Option<(Slots<'a>, &Symbol)> = None;
    for (sym, bars) in symbols.iter().zip(series) {
        if bars.is_empty() {
            continue;
        }
        let stamps: Vec<DateTime<Utc>> = bars.iter().map(|b| b.ts).collect();
        let slots = Slots::new(sym.class, tf, None).detect_grid(&stamps);
        match &found {
            None => found = Some((slots, sym)),
            Some((first, s0)) if first.grid() != slots.grid() => bail!(
                "{s0} and {sym} have {tf} bars on different grids ({:?} vs {:?}): resample one of them (`quantdeck data resample`) so both start bars alike",
                first.grid(),
                slots.grid()
            ),
            Some(_) => {}
        }
    }
    Ok(match found {
        Some((slots, _)) => slots,
        None => Slots::new(symbols[0].class, tf, None),
    })
}

#[cfg(test)]
mod tests;
