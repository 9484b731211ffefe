//! The paper-trading daemon: the components a session is made of, and what they share. The
//! strategy proposes (`strategy`), the decision step decides (`single`, `rebalance` through
//! `sim::decide` / `sim::portfolio::decide`), execution talks to the broker (`exec`), the mirror
//! holds what the broker last said (`mirror`), the latches stop trading (`latches`, kept in the
//! persisted `state`), and a short loop routes one `Input` at a time to them (`input`).

use super::bars::BarBuilder;
use super::clock::Clock;
use super::exec::Execution;
use super::journal::Journal;
use super::ledger::Ledger;
use super::mirror::Mirror;
use super::output::{Alert, Output};
use super::reconcile::check_positions;
use super::state::DaemonState;
use super::strategy::Strategy;
use super::view::{Health, Link};
use crate::broker::types::normalize_symbol;
use crate::broker::Broker;
use crate::sim::gates::Situation;
use crate::sim::TradingRules;
use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// The daemon's settings: the trading rules every evaluation applies too, and its own.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Threshold, sizing, risk rules, capital gates, daily loss limit, cooldown (`sim::decide`);
    /// the drawdown rules are judged on the whole session's equity.
    pub rules: TradingRules,
    /// The broker's fixed cost per filled order (the simulated broker's; 0 for Alpaca).
    pub commission: f64,
    /// An order with no terminal update after this long is looked up over REST; positions are
    /// re-read as often (at most every 30 s) to catch a mismatch with the book.
    pub order_timeout: std::time::Duration,
    pub extended_hours: bool,
    /// Close a live bar by the wall clock this long after its end when its last minute never came.
    pub late_bar_grace: Duration,
}

impl Settings {
    pub(super) fn positions_every(&self) -> Duration {
        Duration::from_std(self.order_timeout)
            .unwrap_or(Duration::seconds(30))
            .min(Duration::seconds(30))
    }
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
    pub(super) out: &'a dyn Output,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) settings: Settings,
    pub(super) state: DaemonState,
    pub(super) strategy: Strategy,
    pub(super) exec: Execution<'a, B>,
    pub(super) mirror: Mirror,
    pub(super) builders: HashMap<String, BarBuilder>,
    /// Per symbol, the last bar a REST gap fill closed, held until the fill's newest minute
    /// says whether it is still the current bar (see `on_minute`).
    pub(super) deferred: HashMap<String, crate::market::Bar>,
    pub(super) health: Health,
    /// A (re)connect of the trade stream: resync over REST before any new order.
    pub(super) needs_resync: bool,
    /// The feed watchdog's reason to halt entries.
    pub(super) stale_feed: Option<String>,
    /// Positions at the broker beyond the session's own, as last read.
    pub(super) external: Vec<(String, f64)>,
    pub(super) last_snapshot: Option<DateTime<Utc>>,
    /// Walk-forward's expected daily return per symbol (a portfolio session: per run).
    pub expected_daily: HashMap<String, f64>,
    pub(super) ended: Option<Ended>,
}

impl<'a, B: Broker> Daemon<'a, B> {
    /// A session's daemon in its run directory `dir`. `streams`: live links are used (Alpaca);
    /// a replay has none.
    pub fn new(
        dir: PathBuf,
        out: &'a dyn Output,
        broker: B,
        settings: Settings,
        state: DaemonState,
        journal: Journal,
        strategy: Strategy,
    ) -> Self {
        let clock = super::clock::system();
        let adopted: Vec<String> = state.adopted.clone();
        let ledger = Ledger::new(&state.session, &adopted);
        let mut exec = Execution::new(
            broker,
            journal,
            ledger,
            out,
            clock.clone(),
            &state.session,
            settings.order_timeout,
        );
        exec.journal_lost = state.journal_lost;
        Daemon {
            dir,
            out,
            clock,
            builders: strategy.builders(),
            deferred: HashMap::new(),
            settings,
            state,
            strategy,
            exec,
            mirror: Mirror::default(),
            health: Health {
                trade_stream: Link::Unused,
                data_stream: Link::Unused,
                last_bar: None,
                last_bar_seen: None,
                market_open: None,
                next_open: None,
                rest_errors: 0,
                reconnects: 0,
            },
            needs_resync: true,
            stale_feed: None,
            external: Vec::new(),
            last_snapshot: None,
            expected_daily: HashMap::new(),
            ended: None,
        }
    }

    /// Live links (Alpaca's streams) instead of a replay.
    pub fn with_streams(mut self) -> Self {
        self.health.trade_stream = Link::Connecting;
        self.health.data_stream = Link::Connecting;
        self
    }

    /// Time from `clock` instead of the wall clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.exec.set_clock(clock.clone());
        self.clock = clock;
        self
    }

    pub fn state(&self) -> &DaemonState {
        &self.state
    }

    pub fn broker(&self) -> &B {
        &self.exec.broker
    }

    pub fn orders_sent(&self) -> usize {
        self.exec.orders_sent
    }

    pub fn fills(&self) -> usize {
        self.exec.fills
    }

    /// A model's own book (its fills, marked at the last price).
    pub fn book(&self, symbol: &str) -> Option<&crate::sim::Account> {
        let i = self.strategy.model(symbol)?;
        Some(&self.strategy.models()[i].book)
    }

    /// One closed bar of a model's timeframe, through the whole decision and execution path —
    /// what the event loop does for each bar of a feed.
    pub async fn process_bar(&mut self, symbol: &str, bar: crate::market::Bar) -> Result<()> {
        self.on_model_bar(symbol, bar).await
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Saves `state.json` with the journal's synced length, so a journal cut later is noticed.
    pub(super) fn save_state(&self) -> Result<()> {
        let mut s = self.state.clone();
        s.journal_bytes = self.exec.journal_len()?;
        s.save(&self.dir)
    }

    pub(super) fn equity(&self) -> f64 {
        self.mirror.equity(self.state.initial_equity)
    }

    /// Marks the session's equity at a decision (`sim::decide::Latches`): a new trading day,
    /// the daily loss limit (latched, with a warning), the peak; returns the drawdown from it.
    pub(super) fn mark_day(&mut self, day: chrono::NaiveDate, equity: f64) -> f64 {
        let limit = self.settings.rules.daily_loss_limit;
        let m = self.state.latches.mark(day, equity, limit);
        if m.daily_loss_now {
            let start = self.state.latches.day.map_or(equity, |d| d.1);
            let text = format!(
                "daily loss limit: equity {equity:.2} is {:.1} % below the day's start {start:.2}; no new entries today",
                (1.0 - equity / start) * 100.0
            );
            self.out.alert(&Alert::Halt {
                detail: text.clone(),
            });
            self.out.warn(text);
        }
        m.drawdown
    }

    /// A drawdown halt that latched on this decision: said loudly.
    pub(super) fn halted_now(&self, dd: f64) {
        let text = format!(
            "drawdown halt: the portfolio is {:.1} % below its peak; new entries stop until cleared (`quantdeck paper clear`)",
            dd * 100.0
        );
        self.out.alert(&Alert::Halt {
            detail: text.clone(),
        });
        self.out.error(text);
    }

    /// What the capital gates weigh an order against: equity, buying power net of the buys in
    /// flight, the exposure outside the order's symbol(s), and why entries are blocked.
    pub(super) fn situation(&self, equity: f64, other_exposure: f64) -> Situation {
        let price = |s: &str| self.mirror.price(s);
        let in_flight_buys = self.exec.inflight.buy_notional(price)
            + self.exec.ledger.external_open_buy_notional(price);
        Situation {
            equity,
            buying_power: self.mirror.buying_power(equity) - in_flight_buys,
            other_exposure,
            block: super::latches::entry_block(&self.state, self.stale_feed.as_deref()),
        }
    }

    /// Gross exposure of everything but `symbol`: the other models' positions and what is in
    /// flight for them.
    pub(super) fn other_exposure(&self, symbol: &str) -> f64 {
        let key = normalize_symbol(symbol);
        let held: f64 = self
            .strategy
            .models()
            .iter()
            .filter(|s| normalize_symbol(&s.symbol.name) != key)
            .map(|s| (s.book.qty * self.mirror.price(&s.symbol.name).unwrap_or(0.0)).abs())
            .sum();
        held + self
            .exec
            .inflight
            .exposure_except(symbol, |s| self.mirror.price(s))
    }

    /// A model's book from the ledger: its fills, its level, its peak, marked at the last price.
    pub(super) fn rebuild_book(&mut self, symbol: &str) {
        let Some(i) = self.strategy.model(symbol) else {
            return;
        };
        let initial = self.state.initial_equity;
        let px = self.mirror.price(symbol);
        let name = self.strategy.models()[i].symbol.name.clone();
        let ms = self.state.models.get(&name).cloned();
        let start = crate::sim::Account {
            cash: initial,
            qty: 0.0,
            level: 0.0,
            entry_price: 0.0,
            equity: initial,
            peak: initial,
            initial,
        };
        let mut book = self
            .exec
            .ledger
            .book(&name, &start, self.settings.commission);
        book.level = ms.as_ref().map_or(0.0, |m| m.level);
        book.peak = ms.as_ref().map_or(book.peak, |m| m.peak).max(book.initial);
        book.mark_only(px.unwrap_or(book.entry_price.max(0.0)));
        if px.is_none() && book.qty == 0.0 {
            book.equity = book.cash;
        }
        self.strategy.models_mut()[i].book = book;
    }

    /// Reconciles with the broker (orders, positions, account) before any new order; books
    /// and position checks follow. Retried from the loop until the broker answers.
    pub(super) async fn reconcile(&mut self) -> Result<()> {
        let since = self.state.started - Duration::minutes(1);
        let adopted: BTreeSet<String> = self.state.adopted.iter().cloned().collect();
        let Some(r) = self
            .exec
            .reconcile(&mut self.mirror, &adopted, since)
            .await?
        else {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            return Ok(());
        };
        for s in self.strategy.symbols() {
            self.rebuild_book(&s.name);
        }
        let external = self.check_positions();
        self.out.info(format!(
            "reconciled with the broker: {} order(s) of this session{}, {} open external order(s), {} external position(s){}",
            r.ours.len(),
            if r.unknown.is_empty() {
                String::new()
            } else {
                format!(" ({} of unknown outcome, still looked up)", r.unknown.len())
            },
            self.exec.ledger.external_open().count(),
            external.len(),
            if external.is_empty() {
                String::new()
            } else {
                format!(
                    " ({}) — shown as EXTERNAL, never traded by a model",
                    external
                        .iter()
                        .map(|(s, q)| format!("{s} {q:+}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ));
        self.needs_resync = false;
        self.save_state()
    }

    /// The broker's positions against the session's books: what is someone else's, and which
    /// traded symbols no longer match (stopped, in red). Returns the external positions.
    pub(super) fn check_positions(&mut self) -> Vec<(String, f64)> {
        let ours = self.exec.ledger.positions();
        let traded = self.strategy.traded_keys();
        let busy = self.exec.busy_symbols();
        let c = check_positions(
            &self.mirror.positions,
            &ours,
            &self.state.external_baseline,
            &traded,
            &busy,
        );
        self.state.external_baseline = c.baseline;
        for m in c.mismatched {
            let name = self
                .strategy
                .name_of(&normalize_symbol(&m.symbol))
                .unwrap_or(m.symbol.clone());
            if self.state.stopped.contains_key(&name) {
                continue;
            }
            let detail = m.detail();
            self.out.error(format!("{name}: {detail}"));
            self.out.alert(&Alert::SymbolStopped {
                symbol: name.clone(),
                detail: detail.clone(),
            });
            self.state.stopped.insert(name, detail);
        }
        c.external
    }

    /// Why a symbol does not trade at all now, if it does not.
    pub(super) fn symbol_stopped(&self, symbol: &str) -> Option<String> {
        self.state
            .stopped
            .get(symbol)
            .map(|why| format!("stopped: {why}"))
    }
}
