//! One model in the paper portfolio: its symbol, its feature history, its policy, and its own book
//! (a `sim::Account` fed with this model's fills only). On each closed bar it gives the policy's
//! choice: features (the shared pipeline, recomputed from the trailing bars it needs) → policy.
//! The daemon passes it through `sim::decide`, as the backtest does, which is why replay
//! reproduces it.

use crate::engine::HostPolicy;
use crate::features::{self, events::EventTable, FeatureSpec};
use crate::market::{Bar, Symbol, Timeframe};
use crate::sim::Account;
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

    /// The policy's choice on the newest bar (pushed before) — its most probable action and
    /// that action's probability — or `None` while the history is shorter than the features'
    /// warm-up plus the window. What becomes of it is `sim::decide`'s to say.
    pub fn choose(&self) -> Option<(usize, f32)> {
        if self.history.len() < self.history_needed() {
            return None;
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
        Some(self.policy.act(&obs))
    }
}
