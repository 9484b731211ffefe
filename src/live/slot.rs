//! One model in the paper portfolio: its symbol, its feature history, its policy, and its own book
//! (a `sim::Account` fed with this model's fills only). On each closed bar it proposes a position
//! level: features (the shared pipeline, recomputed from the trailing bars it needs) → policy →
//! confidence threshold → stop-loss/take-profit → the portfolio's drawdown rules. The backtest
//! composes exactly the same steps, which is why replay reproduces it.

use crate::engine::HostPolicy;
use crate::features::{self, events::EventTable, FeatureSpec};
use crate::market::{Bar, Symbol, Timeframe};
use crate::sim::{drawdown_rules, exit_rules, target_level, Account, RiskRules, N_ACTIONS};
use std::collections::VecDeque;
use std::sync::Arc;

pub struct ModelSlot {
    pub symbol: Symbol,
    pub timeframe: Timeframe,
    /// The training run the model comes from.
    pub run: String,
    spec: FeatureSpec,
    events: Arc<EventTable>,
    policy: HostPolicy,
    history: VecDeque<Bar>,
    /// This model's trades only (an account started with the session's equity).
    pub book: Account,
    pub allow_short: bool,
}

/// What the model asks for on one bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub bar: Bar,
    /// The policy's most probable action and its probability.
    pub action: usize,
    pub confidence: f32,
    /// The action after the confidence threshold (below it: HOLD).
    pub acted: usize,
    /// The level after the risk rules, and the size multiplier of the drawdown rules.
    pub level: f64,
    pub size_mult: f64,
    /// Why the risk rules changed the policy's wish (stop-loss, take-profit, drawdown halt).
    pub risk: Option<&'static str>,
}

impl Proposal {
    /// A new level: only then does the model trade (as in the backtest).
    pub fn changes(&self, current: f64) -> bool {
        self.level != current
    }
}

impl ModelSlot {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        symbol: Symbol,
        timeframe: Timeframe,
        run: &str,
        spec: FeatureSpec,
        events: Arc<EventTable>,
        policy: HostPolicy,
        book: Account,
        allow_short: bool,
    ) -> Self {
        ModelSlot {
            symbol,
            timeframe,
            run: run.to_string(),
            spec,
            events,
            policy,
            history: VecDeque::new(),
            book,
            allow_short,
        }
    }

    /// Bars of history needed before the first decision.
    pub fn history_needed(&self) -> usize {
        self.spec.warmup + self.spec.window
    }

    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    pub fn last_bar(&self) -> Option<&Bar> {
        self.history.back()
    }

    /// Appends a closed bar (older or equal timestamps are ignored).
    pub fn push(&mut self, bar: Bar) -> bool {
        if self.history.back().is_some_and(|b| b.ts >= bar.ts) {
            return false;
        }
        self.history.push_back(bar);
        while self.history.len() > self.history_needed() {
            self.history.pop_front();
        }
        true
    }

    /// The model's proposal for the newest bar (pushed before), or `None` while the history is
    /// shorter than the features' warm-up plus the window. `dd`/`halted` are the portfolio's
    /// drawdown and sticky halt latch.
    pub fn decide(
        &mut self,
        threshold: f32,
        risk: &RiskRules,
        dd: f64,
        halted: &mut bool,
    ) -> Option<Proposal> {
        if self.history.len() < self.history_needed() {
            return None;
        }
        let bars: Vec<Bar> = self.history.iter().copied().collect();
        let bar = *bars.last()?;
        let fm = features::compute(&self.spec, &self.symbol, &bars, &self.events);
        let mut obs = Vec::with_capacity(self.spec.obs_dim());
        features::observation(
            &self.spec,
            &fm,
            bars.len() - 1,
            &self.book.features(),
            &mut obs,
        );
        let (action, confidence) = self.policy.act(&obs);
        let action = action.min(N_ACTIONS - 1);
        let acted = if confidence < threshold { 0 } else { action };
        let want = target_level(self.book.level, acted, self.allow_short);
        let d = exit_rules(risk, &self.book, bar.close)
            .unwrap_or_else(|| drawdown_rules(risk, dd, halted, self.book.level, want));
        Some(Proposal {
            bar,
            action,
            confidence,
            acted,
            level: d.level,
            size_mult: d.size_mult,
            risk: d.reason,
        })
    }
}
