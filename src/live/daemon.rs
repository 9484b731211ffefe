//! The paper-trading daemon: one loop that owns the broker connections. Bars come from a feed
//! (replayed, or Alpaca's stream/REST); each closed bar runs its model (`slot`), the portfolio
//! gates (`gates`) and the broker rules (`orders`), and what goes out is journaled first
//! (`exec`). Trade updates are hints folded into the ledger; the broker's REST answers are the
//! truth, read at start, after every reconnect, and for any order that stays silent too long.
//! Commands arrive through the run directory; the latches they set survive restarts.

use super::bars::BarBuilder;
use super::feed::FeedEvent;
use super::gates::Situation;
use super::journal::Journal;
use super::ledger::Ledger;
use super::orders::Session;
use super::portfolio::PortfolioSlot;
use super::slot::ModelSlot;
use super::state::DaemonState;
use super::view::{
    AccountView, Command, ExternalPosition, FillView, Health, Link, Modes, OrderView,
    PaperSnapshot, PositionView, SymbolRow,
};
use crate::broker::alpaca::TradeStreamMsg;
use crate::broker::simulated::f;
use crate::broker::types::{normalize_symbol, Account, Asset, Clock, Order, Position};
use crate::broker::Broker;
use crate::jobs::{CancelToken, Event, EventSink};
use crate::market::{AssetClass, Bar, Calendar};
use crate::sim::TradingRules;
use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// The daemon's settings: the trading rules every evaluation applies too, and its own.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Threshold, sizing, risk rules, capital gates, daily loss limit, cooldown (`sim::decide`);
    /// the drawdown rules are judged on the whole session's equity.
    pub rules: TradingRules,
    /// The broker's fixed cost per filled order (the simulated broker's; 0 for Alpaca).
    pub commission: f64,
    /// An order with no terminal update after this long is looked up over REST.
    pub order_timeout: std::time::Duration,
    pub extended_hours: bool,
    /// Close a live bar by the wall clock this long after its end when its last minute never came.
    pub late_bar_grace: Duration,
}

/// Why the loop ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// The replay ran out of bars.
    ReplayDone,
    /// `stop` command.
    Stopped,
    /// A signal or the job's cancel token.
    Cancelled,
}

pub struct Daemon<'a, B: Broker> {
    pub(super) dir: PathBuf,
    pub(super) sink: &'a EventSink,
    pub(super) cancel: &'a CancelToken,
    pub(super) broker: B,
    pub(super) settings: Settings,
    pub(super) state: DaemonState,
    pub(super) journal: Journal,
    pub(super) ledger: Ledger,
    pub(super) slots: Vec<ModelSlot>,
    /// A portfolio session's model (then `slots` is empty).
    pub(super) portfolio: Option<PortfolioSlot>,
    pub(super) builders: HashMap<String, BarBuilder>,
    pub(super) assets: HashMap<String, Asset>,
    pub(super) account: Option<Account>,
    /// When the account was last read, and the fill count then.
    pub(super) account_read: Option<(std::time::Instant, usize)>,
    /// The bar time the account was read for.
    pub(super) account_bar: Option<DateTime<Utc>>,
    pub(super) positions: Vec<Position>,
    /// Positions this session did not make, as of the last reading with nothing of ours in flight.
    pub(super) external: Vec<(String, f64)>,
    pub(super) last_positions: Option<std::time::Instant>,
    /// Latest price per normalized symbol.
    pub(super) prices: HashMap<String, (f64, DateTime<Utc>)>,
    pub(super) health: Health,
    clock: Option<Clock>,
    last_clock: Option<std::time::Instant>,
    /// Walk-forward's expected daily return per symbol (a portfolio session: per run), when known.
    pub expected_daily: HashMap<String, f64>,
    /// A (re)connect of the trade stream: resync over REST before any new order.
    pub(super) needs_resync: bool,
    /// Orders whose submit outcome is unknown: looked up until resolved.
    pub(super) unresolved: BTreeMap<String, std::time::Instant>,
    /// When each open order of ours was last heard of.
    pub(super) heard: HashMap<String, std::time::Instant>,
    pub(super) stale_feed: Option<String>,
    ended: Option<Ended>,
    pub orders_sent: usize,
    pub fills: usize,
}

/// Waits on the trade stream if there is one, forever if not.
async fn trade_msg(s: &mut Option<crate::broker::alpaca::TradeStream>) -> Option<TradeStreamMsg> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

impl<'a, B: Broker> Daemon<'a, B> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dir: PathBuf,
        sink: &'a EventSink,
        cancel: &'a CancelToken,
        broker: B,
        settings: Settings,
        state: DaemonState,
        journal: Journal,
        slots: Vec<ModelSlot>,
        uses_streams: bool,
    ) -> Self {
        let link = if uses_streams {
            Link::Connecting
        } else {
            Link::Unused
        };
        let ledger = Ledger::new(&state.session, &state.adopted);
        let builders = slots
            .iter()
            .map(|s| {
                let mut b = BarBuilder::new(s.symbol.class, s.timeframe);
                if let Some(last) = s.last_bar() {
                    b.resume_after(last.ts);
                }
                (normalize_symbol(&s.symbol.name), b)
            })
            .collect();
        Daemon {
            dir,
            sink,
            cancel,
            broker,
            settings,
            state,
            journal,
            ledger,
            slots,
            portfolio: None,
            builders,
            assets: HashMap::new(),
            account: None,
            account_read: None,
            account_bar: None,
            positions: Vec::new(),
            external: Vec::new(),
            last_positions: None,
            prices: HashMap::new(),
            health: Health {
                trade_stream: link.clone(),
                data_stream: link,
                last_bar: None,
                last_bar_seen: None,
                market_open: None,
                next_open: None,
                rest_errors: 0,
                reconnects: 0,
            },
            clock: None,
            last_clock: None,
            expected_daily: HashMap::new(),
            needs_resync: true,
            unresolved: BTreeMap::new(),
            heard: HashMap::new(),
            stale_feed: None,
            ended: None,
            orders_sent: 0,
            fills: 0,
        }
    }

    /// Marks the session's equity at a decision (`sim::decide::Latches`): a new trading day,
    /// the daily loss limit (latched, with a warning), the peak; returns the drawdown from it.
    pub(super) fn mark_day(&mut self, day: chrono::NaiveDate, equity: f64) -> f64 {
        let m = self
            .state
            .latches
            .mark(day, equity, self.settings.rules.daily_loss_limit);
        if m.daily_loss_now {
            let start = self.state.latches.day.map_or(equity, |d| d.1);
            self.sink.warn(format!(
                "daily loss limit: equity {equity:.2} is {:.1} % below the day's start {start:.2}; no new entries today",
                (1.0 - equity / start) * 100.0
            ));
        }
        m.drawdown
    }

    pub fn state(&self) -> &DaemonState {
        &self.state
    }

    pub fn broker(&self) -> &B {
        &self.broker
    }

    /// A model's own book (its fills, marked at the last price).
    pub fn book(&self, symbol: &str) -> Option<&crate::sim::Account> {
        let key = normalize_symbol(symbol);
        self.slots
            .iter()
            .find(|s| normalize_symbol(&s.symbol.name) == key)
            .map(|s| &s.book)
    }

    /// One closed bar of a model's timeframe, through the whole decision and execution path —
    /// what the event loop does for each bar of a feed.
    pub async fn process_bar(&mut self, symbol: &str, bar: Bar) -> Result<()> {
        self.on_model_bar(symbol, bar).await
    }

    pub(super) fn save_state(&self) -> Result<()> {
        self.state.save(&self.dir)
    }

    pub(super) fn equity(&self) -> f64 {
        self.account
            .as_ref()
            .map_or(self.state.initial_equity, |a| f(a.equity))
    }

    pub(super) fn price(&self, symbol: &str) -> Option<f64> {
        self.prices.get(&normalize_symbol(symbol)).map(|p| p.0)
    }

    /// Runs until the replay ends, a `stop` command, or cancellation. The caller has reconciled.
    pub async fn run<F>(
        &mut self,
        mut next_feed: F,
        mut trades: Option<crate::broker::alpaca::TradeStream>,
    ) -> Result<Ended>
    where
        F: AsyncFeed,
    {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_snapshot = std::time::Instant::now();
        loop {
            if self.cancel.is_cancelled() {
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
            tokio::select! {
                ev = next_feed.next_event() => self.on_feed(ev).await?,
                msg = trade_msg(&mut trades) => self.on_trade(msg).await?,
                _ = tick.tick() => {
                    self.housekeeping().await?;
                    if last_snapshot.elapsed() >= std::time::Duration::from_secs(5) {
                        self.emit_snapshot();
                        last_snapshot = std::time::Instant::now();
                    }
                }
            }
        }
    }

    async fn on_feed(&mut self, ev: FeedEvent) -> Result<()> {
        match ev {
            FeedEvent::End => {
                // The replay's last bar time, complete or not, is decided before it ends.
                self.decide_pending(None).await?;
                self.ended = Some(Ended::ReplayDone);
            }
            FeedEvent::Link(l) => {
                if l == Link::Up && self.health.data_stream != Link::Connecting {
                    self.health.reconnects += 1;
                }
                if let Link::Down(r) | Link::Polling(r) = &l {
                    self.sink.warn(format!("market data: {r}"));
                }
                self.health.data_stream = l;
            }
            FeedEvent::Bar { symbol, bar } => {
                self.health.last_bar_seen = Some(Utc::now());
                self.health.last_bar = Some(bar.ts);
                self.on_model_bar(&symbol, bar).await?;
                self.emit_snapshot();
            }
            FeedEvent::Mark { symbol, bar } => {
                self.health.last_bar_seen = Some(Utc::now());
                self.health.last_bar = Some(bar.ts);
                // A portfolio time the feed moved past is decided at its own prices first.
                if self
                    .portfolio
                    .as_ref()
                    .and_then(|p| p.pending())
                    .is_some_and(|t| t < bar.ts)
                {
                    self.decide_pending(None).await?;
                }
                self.note_history(&symbol, bar);
                for slot in self.slots.iter_mut() {
                    if let Some(px) = self.prices.get(&normalize_symbol(&slot.symbol.name)) {
                        slot.book.mark(px.0);
                    }
                }
                self.refresh_account().await;
                self.emit_snapshot();
            }
            FeedEvent::Minute {
                symbol,
                bar,
                revision,
                catch_up,
            } => {
                self.health.last_bar_seen = Some(Utc::now());
                self.health.last_bar = self.health.last_bar.max(Some(bar.ts));
                let key = normalize_symbol(&symbol);
                let Some(b) = self.builders.get_mut(&key) else {
                    return Ok(());
                };
                let pushed = b.push(bar);
                if pushed.late && revision {
                    self.sink.info(format!(
                        "{symbol}: revised minute {} arrived after its bar closed; the next bars use it",
                        bar.ts.format("%H:%M")
                    ));
                }
                for closed in pushed.closed {
                    if catch_up {
                        self.note_history(&symbol, closed);
                    } else {
                        self.on_model_bar(&symbol, closed).await?;
                    }
                }
                if !pushed.late {
                    self.emit_snapshot();
                }
            }
        }
        Ok(())
    }

    async fn on_trade(&mut self, msg: Option<TradeStreamMsg>) -> Result<()> {
        match msg {
            None => self.health.trade_stream = Link::Down("stream task ended".into()),
            Some(TradeStreamMsg::Connected) => {
                if self.health.trade_stream != Link::Connecting {
                    self.health.reconnects += 1;
                }
                self.health.trade_stream = Link::Up;
                // The stream does not replay what was missed: the broker's REST view first.
                self.needs_resync = true;
            }
            Some(TradeStreamMsg::Disconnected { reason }) => {
                self.sink.warn(format!("trade updates: {reason}"));
                self.health.trade_stream = Link::Down(reason);
            }
            Some(TradeStreamMsg::Fatal(e)) => {
                self.sink.error(format!("trade updates stopped: {e}"));
                self.health.trade_stream = Link::Down(e.to_string());
            }
            Some(TradeStreamMsg::Update(u)) => {
                if u.event.is_fill() {
                    if let (Some(px), Some(q)) = (u.price, u.qty) {
                        self.sink.emit(Event::Fill(FillView {
                            at: u.timestamp.unwrap_or_else(Utc::now),
                            client_order_id: u.order.client_order_id.clone(),
                            symbol: u.order.symbol.clone(),
                            side: u.order.side.as_str().to_string(),
                            qty: f(q),
                            price: f(px),
                            execution_id: u.execution_id.clone(),
                        }));
                    }
                }
                self.absorb(u.order);
            }
        }
        Ok(())
    }

    /// Takes an order snapshot into the ledger; rebuilds the model's book when its fills moved.
    pub(super) fn absorb(&mut self, o: Order) {
        let id = o.client_order_id.clone();
        let view = order_view(&o, false);
        let Some(change) = self.ledger.absorb(o) else {
            return;
        };
        self.heard.insert(id.clone(), std::time::Instant::now());
        if change.newly_terminal {
            self.heard.remove(&id);
            self.unresolved.remove(&id);
        }
        if change.filled != 0.0 {
            self.fills += 1;
            self.rebuild_book(&change.symbol);
        }
        if change.filled != 0.0 || change.newly_terminal {
            self.sink.emit(Event::Order(view));
        }
    }

    /// A model's book from the ledger: its fills, its level, its peak, marked at the last price.
    pub(super) fn rebuild_book(&mut self, symbol: &str) {
        let key = normalize_symbol(symbol);
        let px = self.price(symbol);
        let initial = crate::sim::Account {
            cash: self.state.initial_equity,
            qty: 0.0,
            level: 0.0,
            entry_price: 0.0,
            equity: self.state.initial_equity,
            peak: self.state.initial_equity,
            initial: self.state.initial_equity,
        };
        for slot in self
            .slots
            .iter_mut()
            .filter(|s| normalize_symbol(&s.symbol.name) == key)
        {
            let ms = self.state.models.get(&slot.symbol.name);
            let mut book = self
                .ledger
                .book(&slot.symbol.name, &initial, self.settings.commission);
            book.level = ms.map_or(0.0, |m| m.level);
            book.peak = ms.map_or(book.peak, |m| m.peak).max(book.initial);
            book.mark_only(px.unwrap_or(book.entry_price.max(0.0)));
            if px.is_none() && book.qty == 0.0 {
                book.equity = book.cash;
            }
            slot.book = book;
        }
    }

    /// A bar that closed while the daemon was away: history and price only, no decision.
    fn note_history(&mut self, symbol: &str, bar: Bar) {
        let key = normalize_symbol(symbol);
        if let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| normalize_symbol(&s.symbol.name) == key)
        {
            if slot.push(bar) {
                self.prices.insert(key, (bar.close, bar.ts));
                self.broker
                    .observe_price(&slot.symbol.name, slot.symbol.class, bar.close, bar.ts);
            }
        } else {
            self.note_member_history(symbol, bar);
        }
    }

    /// What the capital gates weigh an order against: equity, buying power net of open buys,
    /// the exposure outside the order's symbol(s), and why entries are blocked, if they are.
    pub(super) fn situation(&self, equity: f64, other_exposure: f64) -> Situation {
        let block = self
            .state
            .entries_blocked()
            .map(String::from)
            .or_else(|| self.stale_feed.clone())
            .or_else(|| self.state.latches.entry_block().map(String::from));
        let open_buys = self.ledger.open_buy_notional(|s| self.price(s));
        Situation {
            equity,
            buying_power: self.account.as_ref().map_or(equity, |a| f(a.buying_power)) - open_buys,
            other_exposure,
            block,
        }
    }

    /// Gross exposure of everything but `symbol`: the other models' positions and open orders.
    pub(super) fn other_exposure(&self, symbol: &str) -> f64 {
        let key = normalize_symbol(symbol);
        let held: f64 = self
            .slots
            .iter()
            .filter(|s| normalize_symbol(&s.symbol.name) != key)
            .map(|s| (s.book.qty * self.price(&s.symbol.name).unwrap_or(0.0)).abs())
            .sum();
        let pending: f64 = self
            .ledger
            .open()
            .filter(|o| normalize_symbol(&o.symbol) != key)
            .map(|o| {
                f(o.qty.unwrap_or_default() - o.filled_qty).max(0.0)
                    * self.price(&o.symbol).unwrap_or(0.0)
            })
            .sum();
        held + pending
    }

    /// Regular, extended or closed for an equity order now (crypto: always regular).
    pub(super) fn session_for(&self, class: AssetClass) -> Session {
        if class == AssetClass::Crypto {
            return Session::Regular;
        }
        match &self.clock {
            Some(c) if c.is_open => Session::Regular,
            Some(c) => {
                let (minute, _) = Calendar::for_class(class).local_clock(c.timestamp);
                // 04:00–09:30 and 16:00–20:00 ET.
                if (240..570).contains(&minute) || (960..1200).contains(&minute) {
                    Session::Extended
                } else {
                    Session::Closed
                }
            }
            // Before the first clock answer (or on a broker without one): trust the bar.
            None => Session::Regular,
        }
    }

    pub(super) async fn asset(&mut self, symbol: &str) -> Option<Asset> {
        if let Some(a) = self.assets.get(symbol) {
            return Some(a.clone());
        }
        match self.broker.asset(symbol).await {
            Ok(a) => {
                self.assets.insert(symbol.to_string(), a.clone());
                Some(a)
            }
            Err(e) => {
                self.health.rest_errors += 1;
                self.sink.warn(format!("asset {symbol}: {e}"));
                None
            }
        }
    }

    pub(super) async fn refresh_account(&mut self) {
        match self.broker.account().await {
            Ok(a) => {
                self.account = Some(a);
                self.account_read = Some((std::time::Instant::now(), self.fills));
            }
            Err(e) => {
                self.health.rest_errors += 1;
                self.sink.warn(format!("account: {e}"));
            }
        }
    }

    async fn housekeeping(&mut self) -> Result<()> {
        self.apply_commands().await?;
        if self
            .state
            .flatten
            .as_ref()
            .is_some_and(|fl| fl.done.is_none())
        {
            self.flatten().await?;
        }
        self.chase_silent_orders().await;
        // The market clock, once a minute (the watchdog needs it).
        if self
            .last_clock
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60))
        {
            self.last_clock = Some(std::time::Instant::now());
            match self.broker.clock().await {
                Ok(c) => {
                    self.health.market_open = Some(c.is_open);
                    self.health.next_open = Some(c.next_open);
                    self.clock = Some(c);
                }
                Err(e) => {
                    self.health.rest_errors += 1;
                    self.sink.warn(format!("clock: {e}"));
                }
            }
        }
        self.watchdog();
        // Positions, every half minute while nothing of ours is in flight (a fill the ledger has
        // not heard of yet would look external).
        if self.ledger.open().next().is_none()
            && self
                .last_positions
                .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(30))
        {
            self.last_positions = Some(std::time::Instant::now());
            match self.broker.positions().await {
                Ok(p) => {
                    self.positions = p;
                    self.external = self.ledger.external_positions(&self.positions);
                }
                Err(e) => {
                    self.health.rest_errors += 1;
                    self.sink.warn(format!("positions: {e}"));
                }
            }
        }
        // A live bar whose last minute had no trades closes by the wall clock — only when the
        // feed is real-time (a replayed or accelerated feed closes bars by its data alone).
        let now = Utc::now();
        let real_time = self
            .health
            .last_bar
            .is_some_and(|t| now - t < Duration::minutes(3));
        if real_time {
            let grace = self.settings.late_bar_grace;
            let due: Vec<(String, Bar)> = self
                .builders
                .iter_mut()
                .filter_map(|(k, b)| b.close_if_due(now - grace).map(|bar| (k.clone(), bar)))
                .collect();
            for (k, bar) in due {
                if let Some(sym) = self.traded_name(&k) {
                    self.on_model_bar(&sym, bar).await?;
                }
            }
            // A member that never reports a bar time is masked once the feed is well past it.
            self.decide_pending(Some(now - grace * 3)).await?;
        }
        Ok(())
    }

    /// Halts entries when the market is open (per the broker's clock; crypto is always open) and
    /// no bar has arrived for two bar periods.
    fn watchdog(&mut self) {
        let Some(tf) = self
            .slots
            .iter()
            .map(|s| s.timeframe)
            .chain(self.portfolio.as_ref().map(|p| p.timeframe()))
            .min_by_key(|t| t.minutes())
        else {
            return;
        };
        if matches!(self.health.data_stream, Link::Unused) {
            return; // a replay decides its own pace
        }
        let open = self.health.market_open.unwrap_or(false)
            || self
                .slots
                .iter()
                .map(|s| &s.symbol)
                .chain(self.portfolio.iter().flat_map(|p| p.symbols.iter()))
                .any(|s| s.class == AssetClass::Crypto);
        let silent = self
            .health
            .last_bar_seen
            .map_or(Duration::zero(), |t| Utc::now() - t);
        let limit = tf.duration() * 2;
        let stale = (open && self.health.last_bar_seen.is_some() && silent > limit).then(|| {
            format!(
                "no bar for {} min while the market is open (limit {} min)",
                silent.num_minutes(),
                limit.num_minutes()
            )
        });
        if stale.is_some() && self.stale_feed.is_none() {
            self.sink.error(format!(
                "feed watchdog: {}; entries halted",
                stale.clone().unwrap_or_default()
            ));
        }
        self.stale_feed = stale;
    }

    async fn apply_commands(&mut self) -> Result<()> {
        let (cmds, bad) = super::commands::take(&self.dir);
        for b in bad {
            self.sink.warn(b);
        }
        for env in cmds {
            let msg = match env.command {
                Command::Pause => {
                    self.state.paused = true;
                    "entries paused: exits only".to_string()
                }
                Command::Resume => {
                    self.state.paused = false;
                    "entries resumed".to_string()
                }
                Command::Flatten => {
                    if self.state.flatten.is_none() {
                        self.state.flatten = Some(super::state::Flatten {
                            requested: Utc::now(),
                            by: env.from.clone(),
                            done: None,
                            ok: false,
                            rows: Vec::new(),
                        });
                    }
                    "flatten-all latched: entries blocked, cancelling orders and closing positions"
                        .to_string()
                }
                Command::Clear => {
                    let was = (self.state.flatten.is_some(), self.state.latches.halted);
                    self.state.flatten = None;
                    self.state.latches.halted = false;
                    format!(
                        "cleared{}{}",
                        if was.0 { " the flatten latch" } else { "" },
                        if was.1 { " the drawdown halt" } else { "" }
                    )
                }
                Command::Stop => {
                    self.ended = Some(Ended::Stopped);
                    "stopping (positions stay as they are)".to_string()
                }
            };
            self.save_state()?;
            self.sink.emit(Event::CommandDone {
                command: env.command,
                from: env.from.clone(),
                message: msg.clone(),
            });
            self.sink.info(format!(
                "{} (from {}): {msg}",
                env.command.as_str(),
                env.from
            ));
        }
        Ok(())
    }

    pub fn snapshot(&self) -> PaperSnapshot {
        let equity = self.equity();
        let a = self.account.as_ref();
        let day_start = self
            .state
            .latches
            .day
            .map_or(self.state.initial_equity, |d| d.1);
        // Bar time since the first decision (a replay runs faster than the clock), else wall time.
        let span = match (self.state.first_bar, self.health.last_bar) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => Utc::now() - self.state.started,
        };
        let started_days = (span.num_seconds() as f64 / 86_400.0).max(1.0 / 24.0);
        let rows = self
            .slots
            .iter()
            .map(|s| {
                let ms = self.state.models.get(&s.symbol.name);
                let px = self.price(&s.symbol.name).unwrap_or(0.0);
                let book = &s.book;
                let pnl = book.cash + book.qty * px - book.initial;
                SymbolRow {
                    symbol: s.symbol.name.clone(),
                    run: s.run.clone(),
                    timeframe: s.timeframe.to_string(),
                    last_bar: ms.and_then(|m| m.last_bar),
                    action: ms.and_then(|m| m.last_action.clone()),
                    confidence: ms.map_or(0.0, |m| m.confidence),
                    gate: ms.map_or(String::new(), |m| m.gate.clone()),
                    level: book.level,
                    position: PositionView {
                        qty: book.qty,
                        avg_price: book.entry_price,
                        price: px,
                        unrealized_pnl: if book.qty != 0.0 {
                            (px - book.entry_price) * book.qty
                        } else {
                            0.0
                        },
                    },
                    pnl,
                    live_daily: (book.initial > 0.0).then(|| pnl / book.initial / started_days),
                    expected_daily: self.expected_daily.get(&s.symbol.name).copied(),
                }
            })
            .collect();
        let mut open_orders: Vec<OrderView> =
            self.ledger.open().map(|o| order_view(o, false)).collect();
        open_orders.extend(self.ledger.external_open().map(|o| order_view(o, true)));
        PaperSnapshot {
            at: Utc::now(),
            broker: self.broker.kind(),
            session: self.state.session.clone(),
            account: AccountView {
                cash: a.map_or(equity, |a| f(a.cash)),
                equity,
                buying_power: a.map_or(equity, |a| f(a.buying_power)),
                day_pnl: equity - day_start,
                initial: self.state.initial_equity,
            },
            rows,
            open_orders,
            external_positions: self
                .external
                .iter()
                .map(|(symbol, qty)| ExternalPosition {
                    symbol: symbol.clone(),
                    qty: *qty,
                })
                .collect(),
            health: self.health.clone(),
            modes: Modes {
                paused: self.state.paused,
                flatten: self.state.flatten.as_ref().map(|fl| match fl.done {
                    None => format!("requested {} by {}", fl.requested.format("%H:%M:%S"), fl.by),
                    Some(t) if fl.ok => format!("done {}: flat", t.format("%H:%M:%S")),
                    Some(t) => format!(
                        "done {} with problems: {}",
                        t.format("%H:%M:%S"),
                        fl.rows.join("; ")
                    ),
                }),
                halted: self.state.latches.halted,
                stale_feed: self.stale_feed.clone(),
                daily_loss_hit: self.state.latches.daily_loss_hit,
            },
            portfolio: self.portfolio_view(started_days),
        }
    }

    pub fn emit_snapshot(&self) {
        self.sink.emit(Event::Paper(Box::new(self.snapshot())));
    }
}

/// Something that yields feed events (the replay or the Alpaca feed).
#[allow(async_fn_in_trait)]
pub trait AsyncFeed {
    async fn next_event(&mut self) -> FeedEvent;
}

impl AsyncFeed for super::feed::ReplayFeed {
    async fn next_event(&mut self) -> FeedEvent {
        self.next().await
    }
}

impl AsyncFeed for super::feed::AlpacaFeed {
    async fn next_event(&mut self) -> FeedEvent {
        self.next().await
    }
}

pub(super) fn order_view(o: &Order, external: bool) -> OrderView {
    OrderView {
        client_order_id: o.client_order_id.clone(),
        symbol: o.symbol.clone(),
        side: o.side.as_str().to_string(),
        qty: o.qty.map(f).unwrap_or(0.0),
        filled_qty: f(o.filled_qty),
        fill_price: o.filled_avg_price.map(f),
        order_type: o.order_type.as_str().to_string(),
        status: o.status.as_str().to_string(),
        external,
        at: o.updated_at.or(o.submitted_at),
    }
}
