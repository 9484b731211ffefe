//! The loop: one [`Input`] at a time — a bar, a minute, a link change, a trade update, a
//! command, a tick — routed to the component that owns it. Reconciliation comes first whenever
//! a (re)connect asked for it: nothing new is sent on a stale view of the broker.

use super::commands::Envelope;
use super::daemon::{Daemon, Ended};
use super::feed::{AsyncFeed, FeedEvent};
use super::output::Alert;
use super::view::Link;
use crate::broker::alpaca::{TradeStream, TradeStreamMsg};
use crate::broker::types::{normalize_symbol, TradeUpdate};
use crate::broker::Broker;
use crate::market::Bar;
use anyhow::Result;
use chrono::Duration;

/// Everything that moves the daemon.
#[derive(Debug)]
pub enum Input {
    /// A closed bar of a model's timeframe (replay).
    Bar {
        symbol: String,
        bar: Bar,
    },
    /// The replay's closing bar: marks the books, decides nothing.
    Mark {
        symbol: String,
        bar: Bar,
    },
    /// A live 1-minute bar, a revision, or a minute of a REST catch-up.
    Minute {
        symbol: String,
        bar: Bar,
        revision: bool,
        catch_up: bool,
    },
    /// The market-data link changed.
    DataLink(Link),
    /// The replay ended.
    FeedEnd,
    Trade(Box<TradeUpdate>),
    /// The trade-updates link changed (`Up`: reconcile before anything else).
    TradeLink(Link),
    Command(Envelope),
    /// Housekeeping: commands, flatten, silent orders, the market clock, positions, watchdog.
    Tick,
}

impl From<FeedEvent> for Input {
    fn from(ev: FeedEvent) -> Self {
        match ev {
            FeedEvent::Bar { symbol, bar } => Input::Bar { symbol, bar },
            FeedEvent::Mark { symbol, bar } => Input::Mark { symbol, bar },
            FeedEvent::Minute {
                symbol,
                bar,
                revision,
                catch_up,
            } => Input::Minute {
                symbol,
                bar,
                revision,
                catch_up,
            },
            FeedEvent::Link(l) => Input::DataLink(l),
            FeedEvent::End => Input::FeedEnd,
        }
    }
}

fn from_trade(msg: Option<TradeStreamMsg>) -> Input {
    match msg {
        None => Input::TradeLink(Link::Down("stream task ended".into())),
        Some(TradeStreamMsg::Connected) => Input::TradeLink(Link::Up),
        Some(TradeStreamMsg::Disconnected { reason }) => Input::TradeLink(Link::Down(reason)),
        Some(TradeStreamMsg::Fatal(e)) => Input::TradeLink(Link::Down(format!("stopped: {e}"))),
        Some(TradeStreamMsg::Update(u)) => Input::Trade(u),
    }
}

/// Waits on the trade stream if there is one, forever if not.
async fn trade_msg(s: &mut Option<TradeStream>) -> Option<TradeStreamMsg> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

const TICK: std::time::Duration = std::time::Duration::from_millis(250);

impl<B: Broker> Daemon<'_, B> {
    /// Runs until the replay ends, a `stop` command, or cancellation.
    pub async fn run<F: AsyncFeed>(
        &mut self,
        mut feed: F,
        mut trades: Option<TradeStream>,
    ) -> Result<Ended> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.out.cancelled() {
                self.ended = Some(Ended::Cancelled);
            }
            if let Some(e) = self.ended.clone() {
                self.emit_snapshot();
                self.save_state()?;
                if let Some(t) = trades.take() {
                    t.shutdown().await;
                }
                return Ok(e);
            }
            if self.needs_resync {
                self.reconcile().await?;
            }
            let input = tokio::select! {
                ev = feed.next_event() => Input::from(ev),
                msg = trade_msg(&mut trades) => from_trade(msg),
                _ = tick.tick() => Input::Tick,
            };
            self.handle(input).await?;
        }
    }

    pub async fn handle(&mut self, input: Input) -> Result<()> {
        match input {
            Input::Bar { symbol, bar } => {
                self.saw_bar(bar.ts);
                self.on_model_bar(&symbol, bar).await?;
                self.emit_snapshot();
            }
            Input::Mark { symbol, bar } => self.on_mark(&symbol, bar).await?,
            Input::Minute {
                symbol,
                bar,
                revision,
                catch_up,
            } => self.on_minute(&symbol, bar, revision, catch_up).await?,
            Input::DataLink(l) => self.on_data_link(l),
            Input::FeedEnd => {
                // The replay's last bar time, complete or not, is decided before it ends.
                self.decide_pending(None).await?;
                self.ended = Some(Ended::ReplayDone);
            }
            Input::Trade(u) => {
                if let Some(sym) = self.exec.absorb(u.order) {
                    self.rebuild_book(&sym);
                }
            }
            Input::TradeLink(l) => self.on_trade_link(l),
            Input::Command(env) => self.on_command(env).await?,
            Input::Tick => self.housekeeping().await?,
        }
        Ok(())
    }

    fn saw_bar(&mut self, ts: chrono::DateTime<chrono::Utc>) {
        self.health.last_bar_seen = Some(self.now());
        self.health.last_bar = self.health.last_bar.max(Some(ts));
    }

    async fn on_mark(&mut self, symbol: &str, bar: Bar) -> Result<()> {
        self.saw_bar(bar.ts);
        // A portfolio time the feed moved past is decided at its own prices first.
        let pending = self.strategy.portfolio().and_then(|p| p.pending());
        if pending.is_some_and(|t| t < bar.ts) {
            self.decide_pending(None).await?;
        }
        self.note_history(symbol, bar);
        let prices: Vec<Option<f64>> = self
            .strategy
            .models()
            .iter()
            .map(|s| self.mirror.price(&s.symbol.name))
            .collect();
        for (slot, px) in self.strategy.models_mut().iter_mut().zip(prices) {
            if let Some(px) = px {
                slot.book.mark(px);
            }
        }
        let (now, fills) = (self.now(), self.exec.fills);
        self.mirror
            .refresh_account(&self.exec.broker, self.out, now, fills)
            .await;
        self.emit_snapshot();
        Ok(())
    }

    async fn on_minute(
        &mut self,
        symbol: &str,
        bar: Bar,
        revision: bool,
        catch_up: bool,
    ) -> Result<()> {
        self.saw_bar(bar.ts);
        let Some(b) = self.builders.get_mut(&normalize_symbol(symbol)) else {
            return Ok(());
        };
        let pushed = b.push(bar);
        if pushed.late && revision {
            self.out.info(format!(
                "{symbol}: revised minute {} arrived after its bar closed; the next bars use it",
                bar.ts.format("%H:%M")
            ));
        }
        for closed in pushed.closed {
            if catch_up {
                self.note_history(symbol, closed);
            } else {
                self.on_model_bar(symbol, closed).await?;
            }
        }
        if !pushed.late {
            self.emit_snapshot();
        }
        Ok(())
    }

    /// A bar that closed while the daemon was away: history and price only, no decision.
    pub(super) fn note_history(&mut self, symbol: &str, bar: Bar) {
        if let Some(sym) = self.strategy.note_history(symbol, bar) {
            self.mirror.set_price(&sym.name, bar.close, bar.ts);
            self.exec
                .broker
                .observe_price(&sym.name, sym.class, bar.close, bar.ts);
        }
    }

    fn on_data_link(&mut self, l: Link) {
        if l == Link::Up && self.health.data_stream != Link::Connecting {
            self.health.reconnects += 1;
        }
        if let Link::Down(r) | Link::Polling(r) = &l {
            if self.health.data_stream != l {
                self.out.warn(format!("market data: {r}"));
            }
        }
        self.health.data_stream = l;
    }

    fn on_trade_link(&mut self, l: Link) {
        match &l {
            Link::Up => {
                if self.health.trade_stream != Link::Connecting {
                    self.health.reconnects += 1;
                }
                // The stream does not replay what was missed: the broker's REST view first.
                self.needs_resync = true;
            }
            Link::Down(r) if r.starts_with("stopped") => {
                self.out.error(format!("trade updates {r}"))
            }
            Link::Down(r) => self.out.warn(format!("trade updates: {r}")),
            _ => {}
        }
        self.health.trade_stream = l;
    }

    async fn on_command(&mut self, env: Envelope) -> Result<()> {
        let now = self.now();
        let applied = super::latches::apply(&mut self.state, &env, now);
        if applied.stop {
            self.ended = Some(Ended::Stopped);
        }
        if let Some(a) = &applied.alert {
            self.out.alert(a);
        }
        if env.command == super::view::Command::Clear {
            // What the broker holds now is the truth again for the symbols just cleared.
            self.needs_resync = true;
        }
        self.save_state()?;
        self.out
            .command_done(env.command, &env.from, &applied.message);
        self.out.info(format!(
            "{} (from {}): {}",
            env.command.as_str(),
            env.from,
            applied.message
        ));
        Ok(())
    }

    async fn housekeeping(&mut self) -> Result<()> {
        let (cmds, bad) = super::commands::take(&self.dir);
        for b in bad {
            self.out.warn(b);
        }
        for env in cmds {
            self.on_command(env).await?;
        }
        if self
            .state
            .flatten
            .as_ref()
            .is_some_and(|f| f.done.is_none())
        {
            self.flatten().await?;
        }
        self.exec.chase_silent().await;
        let now = self.now();
        self.mirror
            .refresh_market(&self.exec.broker, self.out, now)
            .await;
        if let Some(c) = &self.mirror.market {
            self.health.market_open = Some(c.is_open);
            self.health.next_open = Some(c.next_open);
        }
        self.watchdog();
        self.poll_positions().await;
        self.close_late_bars().await?;
        if super::clock::due(self.last_snapshot, now, Duration::seconds(5)) {
            self.emit_snapshot();
        }
        Ok(())
    }

    /// Positions, re-read while nothing of ours is in flight (a fill not heard of yet would
    /// look like a mismatch): someone else's holdings, and a book that no longer matches.
    async fn poll_positions(&mut self) {
        let now = self.now();
        let every = self.settings.positions_every();
        if !self.exec.inflight.is_empty()
            || !super::clock::due(self.mirror.positions_at, now, every)
        {
            return;
        }
        if self
            .mirror
            .refresh_positions(&self.exec.broker, self.out, now)
            .await
        {
            self.external = self.check_positions();
        }
    }

    /// A live bar whose last minute had no trades closes by the wall clock — only when the
    /// feed is real-time (a replayed or accelerated feed closes bars by its data alone).
    async fn close_late_bars(&mut self) -> Result<()> {
        let now = self.now();
        let real_time = self
            .health
            .last_bar
            .is_some_and(|t| now - t < Duration::minutes(3));
        if !real_time {
            return Ok(());
        }
        let grace = self.settings.late_bar_grace;
        let due: Vec<(String, Bar)> = self
            .builders
            .iter_mut()
            .filter_map(|(k, b)| b.close_if_due(now - grace).map(|bar| (k.clone(), bar)))
            .collect();
        for (k, bar) in due {
            if let Some(sym) = self.strategy.name_of(&k) {
                self.on_model_bar(&sym, bar).await?;
            }
        }
        // A member that never reports a bar time is masked once the feed is well past it.
        self.decide_pending(Some(now - grace * 3)).await
    }

    /// Halts entries when the market is open (per the broker's clock; crypto is always open)
    /// and no bar has arrived for two bar periods. A replay decides its own pace.
    fn watchdog(&mut self) {
        let Some(period) = self.strategy.bar_period() else {
            return;
        };
        if matches!(self.health.data_stream, Link::Unused) {
            return;
        }
        let open = self.health.market_open.unwrap_or(false) || self.strategy.has_crypto();
        let stale = super::latches::watchdog(self.now(), self.health.last_bar_seen, open, period);
        if let (Some(why), None) = (&stale, &self.stale_feed) {
            self.out
                .error(format!("feed watchdog: {why}; entries halted"));
            self.out.alert(&Alert::StaleFeed {
                detail: why.clone(),
            });
        }
        self.stale_feed = stale;
    }

    /// Flatten-all (latched): entries are already blocked by the latch.
    pub(super) async fn flatten(&mut self) -> Result<()> {
        self.out
            .warn("flatten-all: cancelling every open order and closing every position".into());
        let models: Vec<String> = self
            .strategy
            .symbols()
            .into_iter()
            .map(|s| s.name)
            .chain(self.state.models.keys().cloned())
            .chain(
                self.state
                    .portfolio
                    .iter()
                    .flat_map(|p| p.targets.keys().cloned()),
            )
            .collect();
        let done = self.exec.flatten(&mut self.mirror, &models).await;
        self.state.adopted.extend(done.adopted.iter().cloned());
        for m in self.state.models.values_mut() {
            m.level = 0.0;
        }
        for s in self.strategy.symbols() {
            self.rebuild_book(&s.name);
        }
        self.external = self.check_positions();
        if let Some(fl) = self.state.flatten.as_mut() {
            fl.done = Some(self.clock.now());
            fl.ok = done.ok;
            fl.rows = done.rows.clone();
        }
        self.save_state()?;
        self.needs_resync = true;
        if done.ok {
            self.out
                .warn("flatten-all done: no open orders, no positions".into());
        } else {
            self.out.error(format!(
                "flatten-all finished with problems: {}",
                done.rows.join("; ")
            ));
        }
        self.emit_snapshot();
        Ok(())
    }

    /// Flatten-all from outside a running loop (`quantdeck paper flatten` with no daemon): the
    /// latch is already set in the state; returns the outcome line.
    pub async fn flatten_once(&mut self) -> Result<String> {
        // The session's own orders first, so the closing orders land on the right books.
        for _ in 0..5 {
            if !self.needs_resync {
                break;
            }
            self.reconcile().await?;
        }
        self.flatten().await?;
        Ok(match &self.state.flatten {
            Some(f) if f.ok => "flatten-all done: no open orders, no positions (latched until `quantdeck paper clear`)".into(),
            Some(f) => format!("flatten-all finished with problems: {}", f.rows.join("; ")),
            None => "flatten-all: nothing recorded".into(),
        })
    }
}
