//! A single-symbol model's closed bar: the strategy's proposal (the policy's choice), then the
//! one decision path of `sim::decide` — what every backtest takes, so a simulated replay trades
//! what the evaluation reported — with the orders in flight counted as held, then the broker's
//! rules (`orders::plan`) and the journaled send (`exec`).

use super::daemon::Daemon;
use super::orders::plan;
use super::state::ModelState;
use super::view::DecidedBar;
use crate::broker::Broker;
use crate::market::{Bar, Calendar};
use crate::sim::decide::{propose, step, Circumstances, Step};
use crate::sim::Action;
use anyhow::Result;

impl<B: Broker> Daemon<'_, B> {
    /// One closed bar of a model's timeframe (a portfolio member's goes to the portfolio).
    pub(super) async fn on_model_bar(&mut self, symbol: &str, bar: Bar) -> Result<()> {
        let Some(i) = self.strategy.model(symbol) else {
            return self.on_member_bar(symbol, bar).await;
        };
        let sym = self.strategy.models()[i].symbol.clone();
        if !self.strategy.models_mut()[i].push(bar) {
            return Ok(());
        }
        self.mirror.set_price(&sym.name, bar.close, bar.ts);
        self.exec
            .broker
            .observe_price(&sym.name, sym.class, bar.close, bar.ts);
        let decided = self.state.models.get(&sym.name).and_then(|m| m.last_bar);
        if decided.is_some_and(|t| bar.ts <= t) {
            // Already decided before a restart: the broker has whatever it sent.
            return Ok(());
        }
        if self.needs_resync {
            self.reconcile().await?;
        }
        let (now, fills) = (self.now(), self.exec.fills);
        self.mirror
            .account_for(&self.exec.broker, self.out, bar.ts, now, fills)
            .await;
        let equity = self.equity();
        let dd = self.mark_day(Calendar::for_class(sym.class).local_date(bar.ts), equity);
        let Some(mut st) = self.decide_single(i, &bar, equity, dd) else {
            return self.save_state();
        };
        if let Some(why) = self.symbol_stopped(&sym.name) {
            st.order = None;
            st.note = why;
            self.set_gate(&sym.name, &st.note);
        }
        self.state.first_bar.get_or_insert(bar.ts);
        self.out.decided(&DecidedBar {
            symbol: sym.name.clone(),
            bar: bar.ts,
            equity,
            chosen: Action::name(st.proposal.action).to_string(),
            confidence: st.proposal.confidence,
            acted: Action::name(st.proposal.acted).to_string(),
            note: st.note.clone(),
            targets: st
                .order
                .map(|(q, _)| vec![(sym.name.clone(), q)])
                .unwrap_or_default(),
        });
        match st.order {
            Some((sized, level)) => self.send_single(i, &bar, sized, level).await,
            None => self.save_state(),
        }
    }

    /// The model's proposal on the newest bar through `sim::decide`, recorded in the model's
    /// state; `None` while its history is too short (warm-up).
    fn decide_single(&mut self, i: usize, bar: &Bar, equity: f64, dd: f64) -> Option<Step> {
        let rules = self.settings.rules;
        let was_halted = self.state.latches.halted;
        let slot = &mut self.strategy.models_mut()[i];
        slot.book.mark(bar.close);
        let (choice, book, short) = (slot.choose(), slot.book.clone(), slot.allow_short);
        let (sym, run) = (slot.symbol.name.clone(), slot.run.clone());
        let ms = self
            .state
            .models
            .entry(sym.clone())
            .or_insert_with(|| ModelState {
                run,
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
            symbol: sym.clone(),
            price: bar.close,
            equity,
            situation: self.situation(equity, self.other_exposure(&sym)),
            cooling,
            flip_in_one_order: self.exec.broker.rules().flip_in_one_order,
            in_flight: self.exec.inflight.signed(&sym),
        };
        let st = step(&rules, p, book.qty, book.level, &c);
        if let Some(ms) = self.state.models.get_mut(&sym) {
            ms.last_action = Some(Action::name(p.acted).to_string());
            ms.confidence = p.confidence;
            ms.gate = st.note.clone();
        }
        if self.state.latches.halted && !was_halted {
            self.halted_now(dd);
        }
        Some(st)
    }

    fn set_gate(&mut self, sym: &str, note: &str) {
        if let Some(m) = self.state.models.get_mut(sym) {
            m.gate = note.to_string();
        }
    }

    /// Sends the order that moves the model to `sized` units (level `level`) from what it holds
    /// with its orders in flight, through the broker's rules and the journal; the level and the
    /// cooldown are recorded once it went out.
    async fn send_single(&mut self, i: usize, bar: &Bar, sized: f64, level: f64) -> Result<()> {
        let s = &self.strategy.models()[i];
        let (sym, level_now) = (s.symbol.clone(), s.book.level);
        let held = s.book.qty + self.exec.inflight.signed(&sym.name);
        let asset = self
            .mirror
            .asset(&self.exec.broker, self.out, &sym.name)
            .await;
        let planned = match asset {
            Some(a) => plan(
                sym.class,
                &a,
                held,
                sized,
                bar.close,
                self.mirror.session_for(sym.class),
                self.settings.extended_hours,
                self.exec.broker.rules().fractional_shorts,
            ),
            None => Err("the broker does not know this asset".into()),
        };
        let sent = match planned {
            Ok(None) => true,
            Ok(Some(pl)) => {
                // Decided is durable before anything is sent: a restart never decides this bar
                // again (its order, if any, is settled against the journal and the broker).
                self.set_level(&sym.name, level);
                self.save_state()?;
                let ok = self
                    .exec
                    .execute(&mut self.mirror, &sym.name, bar.ts, pl)
                    .await?;
                if !ok {
                    self.set_level(&sym.name, level_now);
                }
                ok
            }
            Err(why) => {
                self.out.warn(format!(
                    "{sym} {}: no order: {why}",
                    bar.ts.format("%Y-%m-%d %H:%M")
                ));
                self.set_gate(&sym.name, &format!("blocked: {why}"));
                false
            }
        };
        if sent {
            let until = self.settings.rules.cooldown_until(bar.ts);
            self.set_level(&sym.name, level);
            if let Some(m) = self.state.models.get_mut(&sym.name) {
                if sized != held {
                    m.cooldown_until = Some(until);
                }
            }
            self.rebuild_book(&sym.name);
        }
        self.save_state()
    }

    fn set_level(&mut self, sym: &str, level: f64) {
        if let Some(m) = self.state.models.get_mut(sym) {
            m.level = level;
        }
    }
}
