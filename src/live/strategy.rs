//! What trades in a session: per-symbol models, or one portfolio model over its universe. The
//! strategy owns the models' histories and policies; it says which symbols it needs bars of, in
//! which timeframe, and proposes (the policy's choice on a closed bar). What becomes of a
//! proposal is the decision step's (`decision`), the same as every evaluation's.

use super::bars::BarBuilder;
use super::portfolio::PortfolioSlot;
use super::slot::ModelSlot;
use crate::broker::types::normalize_symbol;
use crate::market::{AssetClass, Bar, Symbol};
use chrono::Duration;
use std::collections::{BTreeSet, HashMap};

pub enum Strategy {
    /// One model per symbol, traded as one portfolio.
    Models(Vec<ModelSlot>),
    /// One policy over a universe, alone in its session.
    /// Boxed: far larger than the other variant.
    Portfolio(Box<PortfolioSlot>),
}

impl Strategy {
    pub fn symbols(&self) -> Vec<Symbol> {
        match self {
            Strategy::Models(m) => m.iter().map(|s| s.symbol.clone()).collect(),
            Strategy::Portfolio(p) => p.symbols.clone(),
        }
    }

    /// Normalized keys of every symbol the session trades.
    pub fn traded_keys(&self) -> BTreeSet<String> {
        self.symbols()
            .iter()
            .map(|s| normalize_symbol(&s.name))
            .collect()
    }

    /// The name a symbol goes by, from its normalized key.
    pub fn name_of(&self, key: &str) -> Option<String> {
        self.symbols()
            .into_iter()
            .find(|s| normalize_symbol(&s.name) == key)
            .map(|s| s.name)
    }

    /// The shortest bar period traded (the feed watchdog's unit).
    pub fn bar_period(&self) -> Option<Duration> {
        match self {
            Strategy::Models(m) => m.iter().map(|s| s.timeframe.duration()).min(),
            Strategy::Portfolio(p) => Some(p.timeframe().duration()),
        }
    }

    pub fn has_crypto(&self) -> bool {
        self.symbols().iter().any(|s| s.class == AssetClass::Crypto)
    }

    /// A bar builder per symbol, in its model's timeframe, resuming after the history it has.
    pub fn builders(&self) -> HashMap<String, BarBuilder> {
        let mut out = HashMap::new();
        match self {
            Strategy::Models(m) => {
                for s in m {
                    let mut b = BarBuilder::new(s.symbol.class, s.timeframe);
                    if let Some(last) = s.last_bar() {
                        b.resume_after(last.ts);
                    }
                    out.insert(normalize_symbol(&s.symbol.name), b);
                }
            }
            Strategy::Portfolio(p) => {
                for s in &p.symbols {
                    let mut b = BarBuilder::new(s.class, p.timeframe());
                    if let Some(last) = p.last_time() {
                        b.resume_after(last);
                    }
                    out.insert(normalize_symbol(&s.name), b);
                }
            }
        }
        out
    }

    /// The index of the model trading `symbol` (single-symbol sessions).
    pub fn model(&self, symbol: &str) -> Option<usize> {
        let key = normalize_symbol(symbol);
        self.models()
            .iter()
            .position(|s| normalize_symbol(&s.symbol.name) == key)
    }

    pub fn models(&self) -> &[ModelSlot] {
        match self {
            Strategy::Models(m) => m,
            Strategy::Portfolio(_) => &[],
        }
    }

    pub fn models_mut(&mut self) -> &mut [ModelSlot] {
        match self {
            Strategy::Models(m) => m,
            Strategy::Portfolio(_) => &mut [],
        }
    }

    pub fn portfolio(&self) -> Option<&PortfolioSlot> {
        match self {
            Strategy::Portfolio(p) => Some(&**p),
            Strategy::Models(_) => None,
        }
    }

    pub fn portfolio_mut(&mut self) -> Option<&mut PortfolioSlot> {
        match self {
            Strategy::Portfolio(p) => Some(&mut **p),
            Strategy::Models(_) => None,
        }
    }

    /// A bar that closed while the daemon was away: history only, never decided. Returns the
    /// symbol when the bar was new.
    pub fn note_history(&mut self, symbol: &str, bar: Bar) -> Option<Symbol> {
        match self {
            Strategy::Models(m) => {
                let key = normalize_symbol(symbol);
                let s = m
                    .iter_mut()
                    .find(|s| normalize_symbol(&s.symbol.name) == key)?;
                s.push(bar).then(|| s.symbol.clone())
            }
            Strategy::Portfolio(p) => {
                let i = p.member(symbol)?;
                let sym = p.symbols[i].clone();
                p.push(i, bar).then_some(sym)
            }
        }
    }
}
