//! A portfolio model's bar times through the daemon: once a bar time is complete, the account's
//! actual weights (its own fills, from the broker's orders, at the last prices, over the
//! broker's equity) go into the observation, the policy picks a regime, and
//! `sim::portfolio::decide` — the path the as-traded evaluation takes — turns it into per-member
//! orders (threshold, drawdown rules, target quantities, the capital gates, sells before buys).
//! Those pass the broker's rules (`plan`) and the journaled `execute`, one order per member with
//! the deterministic id of (session, member, bar, intent). Each decided bar time is reported as
//! `Event::Decided` (symbol `portfolio`), durable before any order goes out, so a restart never
//! decides it again.

use super::daemon::Daemon;
use super::orders::plan as plan_order;
use super::state::PortfolioState;
use crate::broker::Broker;
use crate::market::{Bar, Calendar};
use crate::sim::portfolio::decide::{
    drawdown_latch, frozen_value, rebalance, Gates, MemberOrder, Plan, PortfolioDecision,
};
use crate::sim::portfolio::PortfolioAccount;
use anyhow::Result;
use chrono::{DateTime, Utc};

/// The `symbol` a portfolio session's decisions are reported under.
pub const PORTFOLIO_SYMBOL: &str = "portfolio";

impl<B: Broker> Daemon<'_, B> {
    /// One closed bar of a portfolio member.
    pub(super) async fn on_member_bar(&mut self, symbol: &str, bar: Bar) -> Result<()> {
        let decided = self.state.portfolio.as_ref().and_then(|p| p.last_bar);
        let Some(p) = self.strategy.portfolio_mut() else {
            return Ok(());
        };
        let Some(i) = p.member(symbol) else {
            return Ok(());
        };
        let sym = p.symbols[i].clone();
        let ready = p.on_bar(i, bar, decided);
        // A time the feed moved past is decided at its own prices, before this newer bar's.
        for t in ready.iter().filter(|t| **t < bar.ts) {
            self.rebalance(*t).await?;
        }
        self.mirror.set_price(&sym.name, bar.close, bar.ts);
        self.exec
            .broker
            .observe_price(&sym.name, sym.class, bar.close, bar.ts);
        for t in ready.iter().filter(|t| **t >= bar.ts) {
            self.rebalance(*t).await?;
        }
        Ok(())
    }

    /// Decides the bar time still being collected: at the end of a replay, or when a live feed
    /// stalled past `stale_after` behind the wall clock (a member with no bar is masked).
    pub(super) async fn decide_pending(
        &mut self,
        stale_after: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let Some(p) = self.strategy.portfolio_mut() else {
            return Ok(());
        };
        let due = p
            .pending()
            .is_some_and(|t| stale_after.is_none_or(|cut| t + p.timeframe().duration() < cut));
        if !due {
            return Ok(());
        }
        if let Some(t) = p.take_pending() {
            self.rebalance(t).await?;
        }
        Ok(())
    }

    /// Each member's own position (its fills at the broker) and last price.
    fn holdings(&self) -> (Vec<f64>, Vec<f64>) {
        let Some(p) = self.strategy.portfolio() else {
            return (Vec::new(), Vec::new());
        };
        p.symbols
            .iter()
            .map(|s| {
                (
                    self.exec.ledger.position(&s.name),
                    self.mirror.price(&s.name).unwrap_or(0.0),
                )
            })
            .unzip()
    }

    /// The account as the observation's tail sees it: cash, the session's holdings, the broker's
    /// equity, the session's peak and start.
    fn account_tail(&self, qty: &[f64], marks: &[f64]) -> Vec<f32> {
        let equity = self.equity();
        let held: f64 = qty.iter().zip(marks).map(|(q, p)| q * p).sum();
        let acct = PortfolioAccount {
            cash: self.mirror.cash().unwrap_or(equity - held),
            qty: qty.to_vec(),
            equity,
            peak: self.state.latches.peak_equity.max(equity),
            initial: self.state.initial_equity,
        };
        let mut tail = Vec::new();
        acct.tail(marks, &mut tail);
        tail
    }

    /// One complete bar time of the portfolio model: decide (`sim::portfolio::decide`, the path
    /// the as-traded evaluation takes), gate, report, and send.
    async fn rebalance(&mut self, at: DateTime<Utc>) -> Result<()> {
        let Some((run, class)) = self
            .strategy
            .portfolio()
            .map(|p| (p.run.clone(), p.symbols[0].class))
        else {
            return Ok(());
        };
        let decided = self.state.portfolio.as_ref().and_then(|s| s.last_bar);
        if decided.is_some_and(|t| at <= t) {
            return Ok(());
        }
        if self.needs_resync {
            self.reconcile().await?;
        }
        let (now, fills) = (self.now(), self.exec.fills);
        self.mirror
            .refresh_account(&self.exec.broker, self.out, now, fills)
            .await;
        let equity = self.equity();
        let dd = self.mark_day(Calendar::for_class(class).local_date(at), equity);
        let risk = self.settings.rules.risk;
        let (size_mult, halted_now) = drawdown_latch(&risk, dd, &mut self.state.latches.halted);
        if halted_now {
            self.halted_now(dd);
        }
        let (qty, marks) = self.holdings();
        let Some(d) = self.propose_portfolio(at, run, &qty, &marks) else {
            return self.save_state();
        };
        let frozen = frozen_value(&d.prices, &qty, &marks);
        let scale = if equity > 0.0 {
            (equity - frozen).max(0.0) / equity * size_mult
        } else {
            0.0
        };
        self.record(&d, &qty, &marks, equity, scale);
        let plan = self.plan_orders(&d, &qty, equity, frozen, size_mult);
        self.emit_decided(&d, equity, &plan);
        // Decided is durable before anything is sent: a restart never decides this bar again.
        self.save_state()?;
        if d.targets.is_some() {
            self.send(&d, plan).await?;
        }
        self.save_state()
    }

    /// The policy's regime for bar time `at` (the strategy's proposal), recorded as decided;
    /// `None` while warming up or when the bar time cannot be decided (said why).
    fn propose_portfolio(
        &mut self,
        at: DateTime<Utc>,
        run: String,
        qty: &[f64],
        marks: &[f64],
    ) -> Option<PortfolioDecision> {
        let tail = self.account_tail(qty, marks);
        let threshold = self.settings.rules.portfolio_confidence_threshold;
        let decided = self
            .strategy
            .portfolio()
            .map(|p| p.decide(at, &tail, threshold));
        let ps = self.state.portfolio.get_or_insert_with(|| PortfolioState {
            run,
            ..Default::default()
        });
        ps.last_bar = Some(at);
        self.state.first_bar.get_or_insert(at);
        match decided {
            Some(Ok(Some(d))) => Some(d),
            Some(Ok(None)) | None => {
                ps.regime = Some("WARMUP".into());
                None
            }
            Some(Err(e)) => {
                self.out.warn(format!(
                    "portfolio {}: no decision: {e:#}",
                    at.format("%Y-%m-%d %H:%M")
                ));
                None
            }
        }
    }

    /// The decision's orders (`sim::portfolio::decide::rebalance`): the session's situation,
    /// the members' cooldowns and open orders, the gates over the whole batch, sells first.
    fn plan_orders(
        &self,
        d: &PortfolioDecision,
        current: &[f64],
        equity: f64,
        frozen: f64,
        size_mult: f64,
    ) -> Plan {
        let Some(p) = self.strategy.portfolio() else {
            return Plan::default();
        };
        let cooldowns = self.state.portfolio.as_ref().map(|s| &s.cooldown_until);
        let cooling: Vec<bool> = p
            .symbols
            .iter()
            .map(|s| {
                cooldowns
                    .and_then(|c| c.get(&s.name))
                    .is_some_and(|t| d.bar < *t)
            })
            .collect();
        // A member with an order in flight sits out (its fills would count twice), as does one
        // whose broker quantity no longer matches the book; what they hold and have in flight
        // still counts against the exposure cap. (The as-traded evaluation fills at once:
        // nobody sits out there, and this adds nothing.)
        let busy: Vec<bool> = p
            .symbols
            .iter()
            .map(|s| self.exec.inflight.busy(&s.name) || self.state.stopped.contains_key(&s.name))
            .collect();
        let sitting_out: f64 = (0..p.symbols.len())
            .filter(|&i| busy[i] && d.prices[i].is_some())
            .map(|i| {
                let s = &p.symbols[i].name;
                let px = self.mirror.price(s).unwrap_or(0.0);
                (current[i].abs() + self.exec.inflight.signed(s).abs()) * px
            })
            .sum();
        let situation = self.situation(equity, frozen + sitting_out);
        let gates = Gates {
            rules: &self.settings.rules.capital,
            situation: &situation,
            cooling: &cooling,
            flip_in_one_order: self.exec.broker.rules().flip_in_one_order,
        };
        let mut plan = rebalance(d, current, equity - frozen, size_mult, &busy, Some(gates));
        for (i, note) in plan.notes.iter_mut() {
            if let Some(why) = self.symbol_stopped(&p.symbols[*i].name) {
                *note = why;
            }
        }
        plan
    }

    /// Sends the plan's orders through the broker's rules and the journal, in its order; a
    /// member that traded starts its cooldown.
    async fn send(&mut self, d: &PortfolioDecision, plan: Plan) -> Result<()> {
        let Some(p) = self.strategy.portfolio() else {
            return Ok(());
        };
        let symbols = p.symbols.clone();
        let mut notes: Vec<(String, String)> = plan
            .notes
            .iter()
            .map(|(i, n)| (symbols[*i].name.clone(), n.clone()))
            .collect();
        let mut sent_any = false;
        for o in &plan.orders {
            let sym = &symbols[o.member];
            match self.send_member(sym, o, d.bar).await? {
                Ok(sent) => sent_any |= sent,
                Err(why) => {
                    if let Some(n) = notes.iter_mut().find(|n| n.0 == sym.name) {
                        n.1 = format!("blocked: {why}");
                    }
                }
            }
        }
        if let Some(ps) = self.state.portfolio.as_mut() {
            ps.gates = notes.into_iter().collect();
        }
        if sent_any {
            // The account after the trades, for the pane's actual weights.
            let (now, fills) = (self.now(), self.exec.fills);
            self.mirror
                .refresh_account(&self.exec.broker, self.out, now, fills)
                .await;
        }
        Ok(())
    }

    /// One member's order through the broker's rules and the journal; a member that traded
    /// starts its cooldown. `Ok(Err(why))`: the broker's rules refused it.
    async fn send_member(
        &mut self,
        sym: &crate::market::Symbol,
        o: &MemberOrder,
        bar: DateTime<Utc>,
    ) -> Result<Result<bool, String>> {
        let asset = self
            .mirror
            .asset(&self.exec.broker, self.out, &sym.name)
            .await;
        let planned = match asset {
            Some(a) => plan_order(
                sym.class,
                &a,
                o.current,
                o.target,
                o.price,
                self.mirror.session_for(sym.class),
                self.settings.extended_hours,
                self.exec.broker.rules().fractional_shorts,
            ),
            None => Err("the broker does not know this asset".into()),
        };
        match planned {
            Ok(None) => Ok(Ok(false)),
            Ok(Some(pl)) => {
                let sent = self
                    .exec
                    .execute(&mut self.mirror, &sym.name, bar, pl)
                    .await?;
                if sent {
                    let until = self.settings.rules.cooldown_until(bar);
                    if let Some(ps) = self.state.portfolio.as_mut() {
                        ps.cooldown_until.insert(sym.name.clone(), until);
                    }
                }
                Ok(Ok(sent))
            }
            Err(why) => {
                self.out.warn(format!(
                    "{sym} {}: no order: {why}",
                    bar.format("%Y-%m-%d %H:%M")
                ));
                Ok(Err(why))
            }
        }
    }
}
