//! The loop: one [`Input`] at a time — a bar, a minute, a link change, a trade update, a
//! command, a tick — routed to the component that owns it. Reconciliation comes first whenever
//! a (re)connect asked for it: nothing new is sent on a stale view of the broker.

use super::commands::Envelope;
use super::daemon::{Daemon, Ended};
use super::feed::{AsyncFeed, FeedEvent};
use super::view::Link;
use crate::broker::alpaca::{TradeStream, TradeStreamMsg};
use crate::broker::types::{normalize_symbol, TradeUpdate};
use crate::broker::Broker;
use crate::market::Bar;
use anyhow::Result;

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
            self.out.beat();
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
                self.exec.absorb(u.order);
            }
            Input::TradeLink(l) => self.on_trade_link(l),
            Input::Command(env) => self.on_command(env).await?,
            Input::Tick => self.housekeeping().await?,
        }
        // Fills learned from any source (stream, look-up, reconciliation) move the books.
        for sym in self.exec.take_moved() {
            self.rebuild_book(&sym);
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
        let key = normalize_symbol(symbol);
        let Some(b) = self.builders.get_mut(&key) else {
            return Ok(());
        };
        let pushed = b.push(bar);
        let current = |closed: &Bar| b.just_before(closed.ts, bar.ts);
        // The bar a REST gap fill closed last waits for the fill's newest minute: if that
        // minute lies in the very next bar, it is the current bar and is decided (a stream drop
        // across a bar's close must not skip the bar); anything older is history only.
        let deferred = if catch_up && pushed.closed.is_empty() {
            None // still waiting for the fill's newest minute
        } else {
            self.deferred.remove(&key)
        };
        let decide_deferred =
            !catch_up && pushed.closed.is_empty() && deferred.is_some_and(|d| current(&d));
        if pushed.late && revision {
            self.out.info(format!(
                "{symbol}: revised minute {} arrived after its bar closed; the next bars use it",
                bar.ts.format("%H:%M")
            ));
        }
        if let Some(d) = deferred {
            if decide_deferred {
                self.on_model_bar(symbol, d).await?;
            } else {
                self.note_history(symbol, d);
            }
        }
        let mut closed = pushed.closed.into_iter().peekable();
        while let Some(c) = closed.next() {
            if !catch_up {
                self.on_model_bar(symbol, c).await?;
            } else if closed.peek().is_none() {
                self.deferred.insert(key.clone(), c);
            } else {
                self.note_history(symbol, c);
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

    pub(super) async fn on_command(&mut self, env: Envelope) -> Result<()> {
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
}
