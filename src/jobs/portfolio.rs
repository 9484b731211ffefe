//! A portfolio universe as the jobs use it: the aligned panel from the store (generated first on
//! the synthetic market), its step features, the tape the training env's rules trade on, and the
//! as-traded evaluation over it — for the configured universe (training) or a model's recorded
//! one (evaluation, paper).

// Parts are used by the portfolio walk-forward and paper jobs as they land.
#![allow(dead_code)]

use super::ctx::Ctx;
use crate::config::Config;
use crate::data::panel::{load_panel, Panel};
use crate::data::Store;
use crate::engine::ModelMeta;
use crate::eval::PortfolioTrader;
use crate::features::portfolio::{self, PortfolioFeatures, PortfolioSpec};
use crate::sim::portfolio::{PortfolioRules, Tape};
use crate::sim::TradingRules;
use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Utc};
use std::ops::Range;

pub(super) struct PortfolioWorld {
    pub panel: Panel,
    pub spec: PortfolioSpec,
    pub features: PortfolioFeatures,
    pub tape: Tape,
    pub rules: PortfolioRules,
    pub sha256: String,
    /// `synthetic` when any member was generated or the source is synthetic, else the source.
    pub source: String,
}

impl PortfolioWorld {
    /// The configured universe (`portfolio.*`, `data.source`).
    pub fn configured(ctx: &Ctx) -> Result<Self> {
        let spec = PortfolioSpec::from_config(ctx.cfg)?;
        Self::load(ctx, ctx.cfg, spec)
    }

    /// The universe a portfolio model was trained on, in its column order, over the configured
    /// period (`portfolio.start ..= portfolio.end`); a single-symbol model is refused.
    pub fn for_model(ctx: &Ctx, meta: &ModelMeta) -> Result<Self> {
        let Some(spec) = meta.portfolio.clone() else {
            bail!(
                "{} is a single-symbol model ({}): portfolio evaluation takes a portfolio model",
                meta.symbol,
                meta.layout_describe()
            );
        };
        let mut cfg = ctx.cfg.clone();
        cfg.portfolio.symbols = spec.symbols.clone();
        cfg.portfolio.synthetic_symbols = spec.symbols.clone();
        cfg.portfolio.timeframe = spec.timeframe;
        let world = Self::load(ctx, &cfg, spec)?;
        if world.panel.ts.last().is_none_or(|&t| t < meta.data_last) {
            ctx.sink.warn(format!(
                "the configured portfolio period ends before the model's data ({}): extend portfolio.end",
                meta.data_last.format("%Y-%m-%d")
            ));
        }
        Ok(world)
    }

    fn load(ctx: &Ctx, cfg: &Config, spec: PortfolioSpec) -> Result<Self> {
        let store = Store::new(&ctx.paths.data);
        let loaded = load_panel(cfg, &store)?;
        if !loaded.generated.is_empty() {
            let names: Vec<String> = loaded.generated.iter().map(|s| s.to_string()).collect();
            ctx.sink.info(format!(
                "generated the synthetic universe's missing series: {}",
                names.join(", ")
            ));
        }
        for w in &loaded.warnings {
            ctx.sink.warn(w.clone());
        }
        let panel = loaded.panel;
        let r = &panel.report;
        ctx.sink.info(format!(
            "portfolio panel: {} symbols × {} bars ({} → {}){}",
            panel.n_symbols(),
            panel.n_bars(),
            panel
                .ts
                .first()
                .map_or("-".into(), |t| t.format("%Y-%m-%d").to_string()),
            panel
                .ts
                .last()
                .map_or("-".into(), |t| t.format("%Y-%m-%d").to_string()),
            match r.missing_cells() {
                0 => String::new(),
                n => format!("; {n} symbol-bars missing (masked, never filled)"),
            }
        ));
        for line in r.lines() {
            ctx.sink.info(line);
        }
        let features = portfolio::compute(&spec, &panel)?;
        let tape = Tape::new(&panel, &features.factors);
        let source = match cfg.data.source {
            crate::config::DataSource::Synthetic => crate::data::synthetic::SOURCE,
            crate::config::DataSource::Alpaca => "alpaca",
            crate::config::DataSource::Store => "store",
        }
        .to_string();
        Ok(PortfolioWorld {
            sha256: panel.sha256(),
            rules: PortfolioRules::from_config(&cfg.portfolio),
            panel,
            spec,
            features,
            tape,
            source,
        })
    }

    /// The universe as paper trading trades it under `rules` (validation, gate, walk-forward).
    pub fn trader(&self, rules: TradingRules) -> PortfolioTrader<'_> {
        PortfolioTrader {
            spec: &self.spec,
            panel: &self.panel,
            features: &self.features,
            rules,
        }
    }

    pub fn n_bars(&self) -> usize {
        self.panel.n_bars()
    }

    pub fn ts(&self, t: usize) -> DateTime<Utc> {
        self.panel.ts[t]
    }

    /// The panel rows strictly after `after` (the model's validation end), up to `to` inclusive.
    pub fn rows_after(
        &self,
        after: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Range<usize>> {
        let lo = self.panel.ts.partition_point(|&t| t <= after);
        let hi = match to {
            Some(to) => self.panel.ts.partition_point(|&t| t <= to),
            None => self.n_bars(),
        };
        if lo >= hi {
            return Err(anyhow!(
                "the portfolio panel has no bars after {} (it ends {}): extend portfolio.end or fetch newer bars",
                after.format("%Y-%m-%d"),
                self.panel
                    .ts
                    .last()
                    .map_or("-".into(), |t| t.format("%Y-%m-%d").to_string())
            ));
        }
        Ok(lo..hi)
    }
}
