//! A single-symbol model's closed bar through the daemon: the model's choice on the bar, then the
//! one decision path of `sim::decide` — the path every backtest takes, so a simulated replay
//! trades what the evaluation reported — then the broker's rules (`plan`) and the journaled send.

use super::daemon::Daemon;
use super::orders::plan;
use super::state::ModelState;
use super::view::DecidedBar;
use crate::broker::types::normalize_symbol;
use crate::broker::Broker;
use crate::jobs::Event;
use crate::market::{Bar, Calendar};
use crate::sim::decide::{propose, step, Circumstances, Step};
use crate::sim::Action;
use anyhow::Result;

impl<B: Broker> Daemon<'_, B> {
    /// One closed bar of a model's timeframe (a portfolio member's goes to the portfolio).
    pub(super) async fn on_model_bar(&mut self, symbol: &str, bar: Bar) -> Result<()> {
        let key = normalize_symbol(symbol);
        let Some(i) = self
            .slots
            .iter()
            .position(|s| normalize_symbol(&s.symbol.name) == key)
        else {
            return self.on_member_bar(symbol, bar).await;
        };
        let (sym, class) = (
            self.slots[i].symbol.name.clone(),
            self.slots[i].symbol.class,
        );
        if !self.slots[i].push(bar) {
            return Ok(());
        }
        self.prices.insert(key, (bar.close, bar.ts));
        self.broker.observe_price(&sym, class, bar.close, bar.ts);
        let decided = self.state.models.get(&sym).and_then(|m| m.last_bar);
        if decided.is_some_and(|t| bar.ts <= t) {
            // Already decided before a restart: the broker has whatever it sent.
            return Ok(());
        }
        if self.needs_resync {
            self.reconcile().await?;
        }
        self.account_for(bar.ts).await;
        let equity = self.equity();
        let dd = self.mark_day(Calendar::for_class(class).local_date(bar.ts), equity);
        let Some(st) = self.decide_single(i, &sym, &bar, equity, dd) else {
            return self.save_state();
        };
        self.state.first_bar.get_or_insert(bar.ts);
        self.sink.emit(Event::Decided(Box::new(DecidedBar {
            symbol: sym.clone(),
            bar: bar.ts,
            equity,
            chosen: Action::name(st.proposal.action).to_string(),
            confidence: st.proposal.confidence,
            acted: Action::name(st.proposal.acted).to_string(),
            note: st.note.clone(),
            targets: st
                .order
                .map(|(q, _)| vec![(sym.clone(), q)])
                .unwrap_or_default(),
        })));
        match st.order {
            Some((sized, level)) => self.send_single(i, &sym, &bar, sized, level).await,
            None => self.save_state(),
        }
    }

    /// One account read per bar time: the models whose bars close together share it (Alpaca
    /// allows 200 requests a minute), unless a fill moved it since.
    async fn account_for(&mut self, bar: chrono::DateTime<chrono::Utc>) {
        let fresh = self.account_read.is_some_and(|(t, fills)| {
            fills == self.fills && t.elapsed() < std::time::Duration::from_secs(1)
        }) && self.account_bar == Some(bar);
        if !fresh {
            self.refresh_account().await;
            self.account_bar = Some(bar);
        }
    }

    /// The model's choice on the newest bar through `sim::decide`, recorded in the model's
    /// state; `None` while its history is too short (warm-up).
    fn decide_single(
        &mut self,
        i: usize,
        sym: &str,
        bar: &Bar,
        equity: f64,
        dd: f64,
    ) -> Option<Step> {
        let rules = self.settings.rules;
        let was_halted = self.state.latches.halted;
        let slot = &mut self.slots[i];
        slot.book.mark(bar.close);
        let (choice, book, short) = (slot.choose(), slot.book.clone(), slot.allow_short);
        let ms = self
            .state
            .models
            .entry(sym.to_string())
            .or_insert_with(|| ModelState {
                run: slot.run.clone(),
                peak: book.peak,
                ..Default::default()
            });
        ms.last_bar = Some(bar.ts);
        ms.peak = book.peak;
        let cooling = ms.cooldown_until.is_some_and(|t| bar.ts < t);
        let Some((action, confidence)) = choice else {
            ms.last_action = Some("WARMUP".into());
            return None;
        };
        let halted = &mut self.state.latches.halted;
        let p = propose(
            &rules, &book, action, confidence, bar.close, dd, halted, short,
        );
        // The situation after the risk rules, so a halt latched on this bar blocks it too (as
        // in the backtest).
        let c = Circumstances {
            symbol: sym.to_string(),
            price: bar.close,
            equity,
            situation: self.situation(equity, self.other_exposure(sym)),
            cooling,
            flip_in_one_order: self.broker.rules().flip_in_one_order,
        };
        let st = step(&rules, p, book.qty, book.level, &c);
        if let Some(ms) = self.state.models.get_mut(sym) {
            ms.last_action = Some(Action::name(p.acted).to_string());
            ms.confidence = p.confidence;
            ms.gate = st.note.clone();
        }
        if self.state.latches.halted && !was_halted {
            self.sink.error(format!(
                "drawdown halt: the portfolio is {:.1} % below its peak; new entries stop until cleared (`quantdeck paper clear`)",
                dd * 100.0
            ));
        }
        Some(st)
    }

    /// Sends the order that moves the model to `sized` units (level `level`), through the
    /// broker's rules and the journal; the level and the cooldown are recorded once it went out.
    async fn send_single(
        &mut self,
        i: usize,
        sym: &str,
        bar: &Bar,
        sized: f64,
        level: f64,
    ) -> Result<()> {
        let (class, current, level_now) = {
            let s = &self.slots[i];
            (s.symbol.class, s.book.qty, s.book.level)
        };
        let asset = self.asset(sym).await;
        let session = self.session_for(class);
        let planned = match asset {
            Some(a) => plan(
                class,
                &a,
                current,
                sized,
                bar.close,
                session,
                self.settings.extended_hours,
                self.broker.rules().fractional_shorts,
            ),
            None => Err("the broker does not know this asset".into()),
        };
        let sent = match planned {
            Ok(None) => true,
            Ok(Some(pl)) => {
                // Decided is durable before anything is sent: a restart never decides this bar
                // again (its order, if any, is settled against the journal and the broker).
                self.set_level(sym, level);
                self.save_state()?;
                let ok = self.execute(sym, bar.ts, pl).await?;
                if !ok {
                    self.set_level(sym, level_now);
                }
                ok
            }
            Err(why) => {
                self.sink.warn(format!(
                    "{sym} {}: no order: {why}",
                    bar.ts.format("%Y-%m-%d %H:%M")
                ));
                if let Some(m) = self.state.models.get_mut(sym) {
                    m.gate = format!("blocked: {why}");
                }
                false
            }
        };
        if sent {
            let until = self.settings.rules.cooldown_until(bar.ts);
            self.set_level(sym, level);
            if let Some(m) = self.state.models.get_mut(sym) {
                if sized != current {
                    m.cooldown_until = Some(until);
                }
            }
            self.rebuild_book(sym);
        }
        self.save_state()
    }

    fn set_level(&mut self, sym: &str, level: f64) {
        if let Some(m) = self.state.models.get_mut(sym) {
            m.level = level;
        }
    }
}
