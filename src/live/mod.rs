//! The paper-trading loop: each closed bar → features (the shared pipeline, recomputed from the
//! trailing history it needs) → policy → risk gates → orders at the broker. The trader keeps its
//! intended book in a `sim::Account`, and the broker stays the source of truth: after every order
//! the book is reconciled to the broker's position and cash.

use crate::broker::{Broker, OrderRequest, OrderView, Side};
use crate::engine::HostPolicy;
use crate::features::{self, FeatureSpec};
use crate::market::{Bar, Symbol};
use crate::sim::{Account, RiskGate, RiskRules, Rules, N_ACTIONS};
use anyhow::Result;
use std::collections::VecDeque;

/// What the trader did on one bar.
#[derive(Debug, Clone, PartialEq)]
pub struct PaperStep {
    pub bar: Bar,
    /// `None` while the history is still shorter than the features' warm-up + window.
    pub action: Option<usize>,
    pub confidence: f32,
    /// Equity marked at this bar's close, before the trader acted.
    pub equity_before: f64,
    pub order: Option<OrderView>,
    pub risk_reason: Option<&'static str>,
}

pub struct PaperTrader {
    run_id: String,
    symbol: Symbol,
    spec: FeatureSpec,
    events: features::events::EventTable,
    policy: HostPolicy,
    rules: Rules,
    risk: RiskRules,
    gate: RiskGate,
    confidence_threshold: f32,
    book: Account,
    history: VecDeque<Bar>,
}

impl PaperTrader {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        run_id: &str,
        symbol: Symbol,
        spec: FeatureSpec,
        events: features::events::EventTable,
        policy: HostPolicy,
        rules: Rules,
        risk: RiskRules,
        confidence_threshold: f32,
    ) -> Self {
        PaperTrader {
            run_id: run_id.to_string(),
            symbol,
            book: Account::new(&rules),
            spec,
            events,
            policy,
            rules,
            risk,
            gate: RiskGate::default(),
            confidence_threshold,
            history: VecDeque::new(),
        }
    }

    /// Bars of history needed before the first decision.
    pub fn history_needed(&self) -> usize {
        self.spec.warmup + self.spec.window
    }

    /// Feeds history without trading (the bars before the replay starts).
    pub fn warm(&mut self, bars: &[Bar]) {
        for b in bars {
            self.push(*b);
        }
    }

    fn push(&mut self, bar: Bar) {
        self.history.push_back(bar);
        while self.history.len() > self.history_needed() {
            self.history.pop_front();
        }
    }

    pub fn book(&self) -> &Account {
        &self.book
    }

    pub fn on_bar(&mut self, broker: &mut dyn Broker, bar: &Bar) -> Result<PaperStep> {
        self.push(*bar);
        self.book.mark(bar.close);
        let equity_before = self.book.equity;
        let mut step = PaperStep {
            bar: *bar,
            action: None,
            confidence: 0.0,
            equity_before,
            order: None,
            risk_reason: None,
        };
        if self.history.len() < self.history_needed() {
            return Ok(step);
        }
        let bars: Vec<Bar> = self.history.iter().copied().collect();
        let fm = features::compute(&self.spec, &self.symbol, &bars, &self.events);
        let mut obs = Vec::with_capacity(self.spec.obs_dim());
        features::observation(
            &self.spec,
            &fm,
            bars.len() - 1,
            &self.book.features(),
            &mut obs,
        );
        let (mut action, confidence) = self.policy.act(&obs);
        if confidence < self.confidence_threshold {
            action = 0;
        }
        step.action = Some(action.min(N_ACTIONS - 1));
        step.confidence = confidence;
        let d = self.gate.decide(
            &self.risk,
            &self.book,
            action,
            self.rules.allow_short,
            bar.close,
        );
        step.risk_reason = d.reason;
        let Some(fill) = self
            .book
            .rebalance(&self.rules, d.level, bar.close, d.size_mult)
        else {
            return Ok(step);
        };
        if fill.qty != 0.0 {
            let order = OrderRequest {
                client_order_id: format!(
                    "{}-{}-{}",
                    self.run_id,
                    self.symbol.file_stem(),
                    bar.ts.timestamp_millis()
                ),
                symbol: self.symbol.name.clone(),
                side: if fill.qty > 0.0 {
                    Side::Buy
                } else {
                    Side::Sell
                },
                qty: fill.qty.abs(),
            };
            step.order = Some(broker.submit(order)?);
        }
        self.reconcile(broker)?;
        Ok(step)
    }

    /// The broker is the source of truth: adopt its position and cash if they differ.
    fn reconcile(&mut self, broker: &dyn Broker) -> Result<()> {
        let qty = broker
            .positions()?
            .into_iter()
            .find(|p| p.symbol == self.symbol.name)
            .map(|p| p.qty)
            .unwrap_or(0.0);
        let acct = broker.account()?;
        let tol = 1e-6 * self.book.equity.abs().max(1.0);
        if (qty - self.book.qty).abs() > 1e-9 || (acct.cash - self.book.cash).abs() > tol {
            tracing::warn!(
                "{}: book ({:.6} @ cash {:.2}) differs from broker ({qty:.6} @ cash {:.2}); adopting the broker's",
                self.symbol,
                self.book.qty,
                self.book.cash,
                acct.cash
            );
            self.book.qty = qty;
            self.book.cash = acct.cash;
            if let Some(px) = broker.last_price(&self.symbol.name) {
                self.book.mark(px);
            }
        }
        Ok(())
    }
}
