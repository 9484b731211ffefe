//! What a portfolio decision leaves behind: the durable record of it in `state.json` (the
//! regime, each member's target share, the gates' word) and the `Decided` event it is reported
//! as (symbol `portfolio`), both before any of its orders goes out.

use super::daemon::Daemon;
use super::rebalance::PORTFOLIO_SYMBOL;
use super::view::DecidedBar;
use crate::broker::Broker;
use crate::sim::portfolio::decide::{Plan, PortfolioDecision};

impl<B: Broker> Daemon<'_, B> {
    /// The decision into the durable state: the regime, and per member its target share of
    /// equity (the regime's weight × `scale`; a masked member, or any under HOLD: what it held).
    pub(super) fn record(
        &mut self,
        d: &PortfolioDecision,
        qty: &[f64],
        marks: &[f64],
        equity: f64,
        scale: f64,
    ) {
        let threshold = self.settings.rules.portfolio_confidence_threshold;
        let Some(p) = self.strategy.portfolio() else {
            return;
        };
        let names: Vec<String> = p.symbols.iter().map(|s| s.name.clone()).collect();
        let Some(ps) = self.state.portfolio.as_mut() else {
            return;
        };
        ps.chosen = Some(d.chosen.name().to_string());
        ps.regime = Some(d.regime.name().to_string());
        ps.confidence = d.confidence;
        ps.targets = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let held = if equity > 0.0 {
                    qty[i] * marks[i] / equity
                } else {
                    0.0
                };
                let w = match &d.targets {
                    Some(_) if d.prices[i].is_none() => held,
                    Some(w) => w.symbols.get(i).copied().unwrap_or(0.0) * scale,
                    None => held,
                };
                (n.clone(), w)
            })
            .collect();
        if d.targets.is_none() {
            let why = d.hold_note(threshold);
            ps.gates = names.iter().map(|n| (n.clone(), why.clone())).collect();
        }
    }

    /// `Event::Decided` for the bar time: the session's equity before the decision, the regime
    /// chosen and acted on, the gates' word, and each member's ordered position.
    pub(super) fn emit_decided(&self, d: &PortfolioDecision, equity: f64, plan: &Plan) {
        let Some(p) = self.strategy.portfolio() else {
            return;
        };
        let name = |i: usize| p.symbols.get(i).map_or(String::new(), |s| s.name.clone());
        let note = if d.targets.is_none() {
            d.hold_note(self.settings.rules.portfolio_confidence_threshold)
        } else {
            let odd: Vec<String> = plan
                .notes
                .iter()
                .filter(|(_, n)| n != "ok")
                .map(|(i, n)| format!("{}: {n}", name(*i)))
                .collect();
            if odd.is_empty() {
                "ok".into()
            } else {
                odd.join("; ")
            }
        };
        self.out.decided(&DecidedBar {
            symbol: PORTFOLIO_SYMBOL.into(),
            bar: d.bar,
            equity,
            chosen: d.chosen.name().to_string(),
            confidence: d.confidence,
            acted: d.regime.name().to_string(),
            note,
            targets: plan
                .orders
                .iter()
                .map(|o| (name(o.member), o.target))
                .collect(),
        });
    }
}
