//! The configured portfolio's panel, from the store: each universe symbol's bars of
//! `portfolio.timeframe`, generated first on the synthetic market when the store has none.

use super::Panel;
use crate::config::{Config, DataSource};
use crate::data::{load, synthetic, Store};
use crate::market::Symbol;
use anyhow::{Context, Result};

/// A panel as the jobs get it.
#[derive(Debug, Clone)]
pub struct LoadedPanel {
    pub panel: Panel,
    /// Symbols whose series were generated (and stored) first.
    pub generated: Vec<Symbol>,
    /// Memory warnings from generating them.
    pub warnings: Vec<String>,
}

/// Reads the universe of `data.source` over `portfolio.start ..= portfolio.end` and aligns it.
/// With the synthetic source, a symbol the store lacks is generated and written first; with the
/// others, a missing symbol is an error that names it and says how to fetch it.
pub fn load_panel(cfg: &Config, store: &Store) -> Result<LoadedPanel> {
    let pf = &cfg.portfolio;
    let symbols = pf.universe(cfg.data.source)?;
    let (start, end) = pf.days()?;
    let tf = pf.timeframe;
    let mut generated = Vec::new();
    let mut warnings = Vec::new();
    let mut series = Vec::with_capacity(symbols.len());
    for sym in &symbols {
        if cfg.data.source == DataSource::Synthetic && !store.contains(sym, tf)? {
            let (bars, warning) = load::synthetic_bars_between(cfg, sym, tf, start, end)?;
            store.write(sym, tf, &bars, synthetic::SOURCE)?;
            generated.push(sym.clone());
            warnings.extend(warning);
        }
        series.push(
            store
                .read(sym, tf)
                .with_context(|| format!("portfolio symbol {sym}"))?,
        );
    }
    let panel = Panel::align(&symbols, tf, &series, Some((start, end)))?;
    Ok(LoadedPanel {
        panel,
        generated,
        warnings,
    })
}
