//! A portfolio model in the paper daemon: one policy over a universe that picks one of the 12
//! factor regimes per bar. It keeps a trailing history of every member's bars, knows when a bar
//! time is complete (every member's bar is in, or the feed moved past it), and decides it: the
//! aligned panel (missing bars masked, never filled), the shared portfolio features, the
//! observation ending at the decided bar with the account's actual weights as its tail, then
//! `sim::portfolio::decide` (threshold, the regime's targets over the members eligible now).
//!
//! Timing: a bar closes at T; the decision uses rows up to T and its orders fill at T's closes —
//! as `eval::portfolio_traded` steps the panel (the training env instead observes T−1 and
//! executes at T's open).

use crate::data::Panel;
use crate::engine::HostPolicy;
use crate::features::portfolio::{self, PortfolioSpec};
use crate::market::{Bar, Symbol, Timeframe};
pub use crate::sim::portfolio::decide::{target_quantities, PortfolioDecision};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, VecDeque};

pub struct PortfolioSlot {
    /// The training run the model comes from.
    pub run: String,
    pub spec: PortfolioSpec,
    /// The members, in the model's column order.
    pub symbols: Vec<Symbol>,
    policy: HostPolicy,
    /// Each member's bars within the trailing horizon, by bar start.
    history: Vec<BTreeMap<DateTime<Utc>, Bar>>,
    /// Bar times seen (any member), newest last: the horizon the history is trimmed to.
    times: VecDeque<DateTime<Utc>>,
    /// The bar time being collected and not yet decided.
    pending: Option<DateTime<Utc>>,
}

impl PortfolioSlot {
    pub fn new(run: &str, spec: PortfolioSpec, symbols: Vec<Symbol>, policy: HostPolicy) -> Self {
        let n = symbols.len();
        PortfolioSlot {
            run: run.to_string(),
            spec,
            symbols,
            policy,
            history: vec![BTreeMap::new(); n],
            times: VecDeque::new(),
            pending: None,
        }
    }

    pub fn timeframe(&self) -> Timeframe {
        self.spec.timeframe
    }

    /// Bar times of history a decision needs: the factor lookback and the observation window,
    /// plus one (the first factor row needs the close before it).
    pub fn history_needed(&self) -> usize {
        self.spec.first_exec_bar() + 1
    }

    /// The member index of a symbol (as the feed or the broker spells it).
    pub fn member(&self, symbol: &str) -> Option<usize> {
        let key = crate::broker::types::normalize_symbol(symbol);
        self.symbols
            .iter()
            .position(|s| crate::broker::types::normalize_symbol(&s.name) == key)
    }

    pub fn last_time(&self) -> Option<DateTime<Utc>> {
        self.times.back().copied()
    }

    /// Stores a member's closed bar (history only). False when it is not newer than that member's
    /// last bar.
    pub fn push(&mut self, member: usize, bar: Bar) -> bool {
        let Some(h) = self.history.get_mut(member) else {
            return false;
        };
        if h.last_key_value().is_some_and(|(t, _)| *t >= bar.ts) {
            return false;
        }
        h.insert(bar.ts, bar);
        if self.times.back().is_none_or(|t| *t < bar.ts) {
            self.times.push_back(bar.ts);
        } else if !self.times.contains(&bar.ts) {
            let at = self.times.partition_point(|t| *t < bar.ts);
            self.times.insert(at, bar.ts);
        }
        // A margin beyond what a decision reads: a late member's bar still lands inside it.
        let keep = self.history_needed() + 4;
        while self.times.len() > keep {
            self.times.pop_front();
        }
        if let Some(&from) = self.times.front() {
            for h in &mut self.history {
                *h = h.split_off(&from);
            }
        }
        true
    }

    /// Feeds a member's live bar and returns the bar times now complete, oldest first: the
    /// pending time once every member has its bar, or once a later bar shows the feed moved past
    /// it. `decided` is the newest time already decided (a restart never decides one again).
    pub fn on_bar(
        &mut self,
        member: usize,
        bar: Bar,
        decided: Option<DateTime<Utc>>,
    ) -> Vec<DateTime<Utc>> {
        if !self.push(member, bar) || decided.is_some_and(|d| bar.ts <= d) {
            return Vec::new();
        }
        let mut ready = Vec::new();
        match self.pending {
            Some(p) if p < bar.ts => {
                ready.push(p);
                self.pending = Some(bar.ts);
            }
            Some(_) => {}
            None => self.pending = Some(bar.ts),
        }
        if let Some(p) = self.pending {
            if self.history.iter().all(|h| h.contains_key(&p)) {
                ready.push(p);
                self.pending = None;
            }
        }
        ready
    }

    /// The incomplete bar time, if any: decided as it is when the feed ends or stalls.
    pub fn take_pending(&mut self) -> Option<DateTime<Utc>> {
        self.pending.take()
    }

    pub fn pending(&self) -> Option<DateTime<Utc>> {
        self.pending
    }

    /// The aligned panel of the trailing history up to `at` (inclusive).
    fn panel_until(&self, at: DateTime<Utc>) -> Result<Panel> {
        let series: Vec<Vec<Bar>> = self
            .history
            .iter()
            .map(|h| h.range(..=at).map(|(_, b)| *b).collect())
            .collect();
        // A member with no bar in the horizon cannot be aligned: it is absent, not zero.
        if let Some(i) = series.iter().position(|s| s.is_empty()) {
            anyhow::bail!("{} has no bar in the trailing history", self.symbols[i]);
        }
        Panel::align(&self.symbols, self.spec.timeframe, &series, None)
    }

    /// The observation for a decision on bar time `at` (rows up to `at`, then `tail`), with the
    /// panel and features it comes from; `None` while the history is too short.
    fn observe(
        &self,
        at: DateTime<Utc>,
        tail: &[f32],
    ) -> Result<Option<(Vec<f32>, Panel, portfolio::PortfolioFeatures)>> {
        let panel = match self.panel_until(at) {
            Ok(p) => p,
            Err(_) if self.times.len() < self.history_needed() => return Ok(None),
            Err(e) => return Err(e),
        };
        let n = panel.n_bars();
        if n < self.spec.first_exec_bar() || panel.ts.last() != Some(&at) {
            return Ok(None);
        }
        let features = portfolio::compute(&self.spec, &panel).context("portfolio features")?;
        let mut obs = Vec::with_capacity(self.spec.obs_dim());
        portfolio::observation(&self.spec, &features, n, tail, &mut obs);
        Ok(Some((obs, panel, features)))
    }

    /// The observation and the regime's targets for bar time `at`, with `tail` the account block
    /// (actual weights, cash share, P&L, drawdown; see `PortfolioAccount::tail`). `None` while
    /// the history is shorter than the lookback plus the window.
    pub fn decide(
        &self,
        at: DateTime<Utc>,
        tail: &[f32],
        threshold: f32,
    ) -> Result<Option<PortfolioDecision>> {
        let Some((obs, panel, features)) = self.observe(at, tail)? else {
            return Ok(None);
        };
        let (action, confidence) = self.policy.act(&obs);
        let last = panel.n_bars() - 1;
        let m = panel.n_symbols();
        let prices: Vec<Option<f64>> = (0..m).map(|i| panel.close(last, i)).collect();
        PortfolioDecision::new(
            at,
            action,
            confidence,
            threshold,
            features.factors.row(last),
            prices,
        )
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ActorCritic;
    use crate::market::AssetClass;
    use crate::sim::portfolio::{Regime, Weights};
    use chrono::{Duration, TimeZone};

    fn slot(n: usize) -> PortfolioSlot {
        let names: Vec<String> = (0..n).map(|i| format!("S{i}/USD")).collect();
        let spec = PortfolioSpec::new(&names, Timeframe::Minute(15), 3, 4);
        let model =
            ActorCritic::new(spec.obs_dim(), &[8], 12, 1, &candle_core::Device::Cpu).unwrap();
        let symbols = names
            .iter()
            .map(|s| Symbol {
                name: s.clone(),
                class: AssetClass::Crypto,
            })
            .collect();
        PortfolioSlot::new(
            "train-x",
            spec,
            symbols,
            HostPolicy::from_model(&model).unwrap(),
        )
    }

    fn bar(ts: DateTime<Utc>, px: f64) -> Bar {
        Bar {
            ts,
            open: px,
            high: px * 1.01,
            low: px * 0.99,
            close: px,
            volume: 1.0,
        }
    }

    #[test]
    fn a_bar_time_is_ready_when_all_members_are_in_or_the_feed_moves_past_it() {
        let mut s = slot(3);
        let t0 = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
        let t1 = t0 + Duration::minutes(15);
        assert!(s.on_bar(0, bar(t0, 10.0), None).is_empty());
        assert!(s.on_bar(1, bar(t0, 20.0), None).is_empty());
        assert_eq!(s.on_bar(2, bar(t0, 30.0), None), vec![t0]);
        // Member 2 never reports t1: the first bar of t2 completes t1 without it.
        assert!(s.on_bar(0, bar(t1, 10.0), None).is_empty());
        assert!(s.on_bar(1, bar(t1, 20.0), None).is_empty());
        let t2 = t1 + Duration::minutes(15);
        assert_eq!(s.on_bar(0, bar(t2, 10.0), None), vec![t1]);
        assert_eq!(s.pending(), Some(t2));
        // A time decided before a restart is history only.
        assert!(s.on_bar(1, bar(t2, 20.0), Some(t2)).is_empty());
    }

    /// The trailing history gives the observation the full stored series gives (what training
    /// and evaluation see), gaps included.
    #[test]
    fn the_trailing_history_observes_what_the_full_panel_does() {
        let mut s = slot(3);
        let t0 = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
        let mut rng = crate::rng::Rng::new(5);
        let mut px = [10.0, 20.0, 30.0];
        let mut series: Vec<Vec<Bar>> = vec![Vec::new(); 3];
        for k in 0..60 {
            let ts = t0 + Duration::minutes(15 * k);
            for i in 0..3 {
                px[i] *= 1.0 + 0.01 * rng.normal();
                // Member 2 misses every 7th bar; nothing is filled.
                if i == 2 && k % 7 == 3 {
                    continue;
                }
                series[i].push(bar(ts, px[i]));
                s.push(i, bar(ts, px[i]));
            }
        }
        let full = Panel::align(&s.symbols, s.spec.timeframe, &series, None).unwrap();
        let ff = portfolio::compute(&s.spec, &full).unwrap();
        let tail = vec![0.1, 0.2, 0.3, 0.4, 0.0, 0.0];
        let mut want = Vec::new();
        portfolio::observation(&s.spec, &ff, full.n_bars(), &tail, &mut want);
        let at = *full.ts.last().unwrap();
        let (got, panel, _) = s.observe(at, &tail).unwrap().unwrap();
        assert!(panel.n_bars() < full.n_bars());
        assert_eq!(got, want);
        // An earlier bar time (still inside the horizon) too.
        let k = full.n_bars() - 2;
        let mut want = Vec::new();
        let trimmed: Vec<Vec<Bar>> = series
            .iter()
            .map(|b| b.iter().filter(|x| x.ts <= full.ts[k]).copied().collect())
            .collect();
        let fp = Panel::align(&s.symbols, s.spec.timeframe, &trimmed, None).unwrap();
        portfolio::observation(
            &s.spec,
            &portfolio::compute(&s.spec, &fp).unwrap(),
            k + 1,
            &tail,
            &mut want,
        );
        assert_eq!(s.observe(full.ts[k], &tail).unwrap().unwrap().0, want);
    }

    #[test]
    fn a_masked_member_is_neither_priced_nor_eligible_and_keeps_its_holding() {
        let mut s = slot(3);
        let t0 = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
        let mut last = t0;
        for k in 0..12 {
            last = t0 + Duration::minutes(15 * k);
            for i in 0..3 {
                // Member 1 misses the newest bar.
                if !(i == 1 && k == 11) {
                    let px =
                        10.0 * (i + 1) as f64 * (1.0 + 0.01 * ((k * (i as i64 + 2)) % 5) as f64);
                    s.push(i, bar(last, px));
                }
            }
        }
        let tail = vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        // Below an impossible threshold every choice is HOLD: no targets.
        let held = s.decide(last, &tail, 2.0).unwrap().unwrap();
        assert_eq!(held.regime, Regime::Hold);
        assert!(held.targets.is_none());
        let d = s.decide(last, &tail, 0.0).unwrap().unwrap();
        assert_eq!(d.prices[1], None);
        assert!(d.prices[0].is_some() && d.prices[2].is_some());
        if let Some(w) = &d.targets {
            assert_eq!(w.symbols[1], 0.0, "{w:?}");
        }
        let q = target_quantities(
            &Weights {
                symbols: vec![0.5, 0.3, 0.2],
                cash: 0.0,
            },
            &d.prices,
            &[0.0, 7.0, 0.0],
            1000.0,
            1.0,
        );
        assert_eq!(q[1], 7.0);
        assert!((q[0] * d.prices[0].unwrap() - 500.0).abs() < 1e-9);
        // Too little history: no decision yet.
        let mut short = slot(3);
        for i in 0..3 {
            short.push(i, bar(t0, 10.0));
        }
        assert_eq!(short.decide(t0, &tail, 0.0).unwrap(), None);
    }
}
