//! Where bars come from. A replay feed serves stored bars of the models' own timeframe (the
//! simulated session); the Alpaca feed serves 1-minute bars from the market-data stream — or, when
//! the stream is unavailable, from polling the REST bars endpoint — which the daemon builds into
//! the models' timeframe. Every feed is cancel-safe: dropping a pending `next` loses nothing.

use super::view::Link;
use crate::data::alpaca::stream::{BarStream, MarketMsg};
use crate::data::alpaca::DataClient;
use crate::market::{Bar, Symbol};
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    /// A closed bar of the model's own timeframe (replay).
    Bar { symbol: String, bar: Bar },
    /// The replay's closing bar: it marks the book and is not decided (as a backtest's last
    /// point marks the last decision).
    Mark { symbol: String, bar: Bar },
    /// A 1-minute bar (live), or a revision of one. `catch_up`: it comes from a REST gap fill
    /// and is not the newest of it — bars it closes fill the history but are not traded (the
    /// daemon never acts on a bar that closed while it was away).
    Minute {
        symbol: String,
        bar: Bar,
        revision: bool,
        catch_up: bool,
    },
    /// The market-data link changed (shown in the pane; a new `Up` calls for a REST gap fill).
    Link(Link),
    /// Nothing more will come (the replay ended).
    End,
}

/// Stored bars, merged across symbols in time order, at `bars_per_second` (0 = at once).
pub struct ReplayFeed {
    queue: VecDeque<(String, Bar)>,
    pace: Option<Duration>,
    next_due: Instant,
    /// Bars at this time (the last) only mark the books.
    mark_at: Option<DateTime<Utc>>,
}

impl ReplayFeed {
    /// `per_symbol`: each model's bars to replay; at most `max_times` distinct bar times.
    pub fn new(
        per_symbol: Vec<(String, Vec<Bar>)>,
        max_times: Option<usize>,
        bars_per_second: f64,
    ) -> Self {
        let mut all: Vec<(String, Bar)> = per_symbol
            .into_iter()
            .flat_map(|(s, bars)| bars.into_iter().map(move |b| (s.clone(), b)))
            .collect();
        all.sort_by(|a, b| a.1.ts.cmp(&b.1.ts).then(a.0.cmp(&b.0)));
        if let Some(n) = max_times {
            let mut times = 0;
            let mut last = None;
            all.retain(|(_, b)| {
                if last != Some(b.ts) {
                    times += 1;
                    last = Some(b.ts);
                }
                times <= n
            });
        }
        ReplayFeed {
            queue: all.into(),
            pace: (bars_per_second > 0.0).then(|| Duration::from_secs_f64(1.0 / bars_per_second)),
            next_due: Instant::now(),
            mark_at: None,
        }
    }

    /// The last bar time is served as [`FeedEvent::Mark`]: marked, not decided.
    pub fn marking_the_last(mut self) -> Self {
        self.mark_at = self.queue.back().map(|(_, b)| b.ts);
        self
    }

    pub fn remaining(&self) -> usize {
        self.queue.len()
    }

    pub async fn next(&mut self) -> FeedEvent {
        let Some((_, bar)) = self.queue.front() else {
            return FeedEvent::End;
        };
        let ts = bar.ts;
        if let Some(p) = self.pace {
            tokio::time::sleep_until(self.next_due).await;
            // Bars of one time go out together; the pace is per bar time.
            if self.queue.get(1).is_none_or(|(_, b)| b.ts != ts) {
                self.next_due = Instant::now() + p;
            }
        }
        match self.queue.pop_front() {
            Some((symbol, bar)) if self.mark_at == Some(bar.ts) => FeedEvent::Mark { symbol, bar },
            Some((symbol, bar)) => FeedEvent::Bar { symbol, bar },
            None => FeedEvent::End,
        }
    }
}

/// Live 1-minute bars from Alpaca: the stream while it works, REST polling when it does not.
pub struct AlpacaFeed {
    streams: Vec<BarStream>,
    client: Arc<DataClient>,
    symbols: Vec<Symbol>,
    /// The newest minute seen: polling and gap fills ask for bars after it.
    last: DateTime<Utc>,
    poll_every: Duration,
    polling: Option<String>,
    next_poll: Instant,
    pending: VecDeque<FeedEvent>,
    /// A (re)connect's gap fill is owed. Kept until the fill completes: the daemon's `select!`
    /// drops `next()` mid-await whenever another branch wins, and the `Connected` message that
    /// asked for the fill is gone by then.
    gap_due: bool,
}

impl AlpacaFeed {
    /// `streams` empty: poll from the start (`reason` says why).
    pub fn new(
        streams: Vec<BarStream>,
        client: Arc<DataClient>,
        symbols: Vec<Symbol>,
        since: DateTime<Utc>,
        poll_every: Duration,
        poll_reason: Option<String>,
    ) -> Self {
        AlpacaFeed {
            polling: if streams.is_empty() {
                Some(poll_reason.unwrap_or_else(|| "polling REST bars".into()))
            } else {
                None
            },
            streams,
            client,
            symbols,
            last: since,
            poll_every,
            next_poll: Instant::now(),
            pending: VecDeque::new(),
            gap_due: false,
        }
    }

    /// The minutes after the newest one seen, over REST (a gap fill, or a poll).
    async fn fill_gap(&mut self) -> Result<(), String> {
        let now = Utc::now();
        let got = self
            .client
            .minute_bars_after(&self.symbols, self.last, now)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let mut minutes: Vec<(String, Bar)> = got
            .into_iter()
            .flat_map(|(s, bars)| bars.into_iter().map(move |b| (s.clone(), b)))
            .collect();
        minutes.sort_by(|a, b| a.1.ts.cmp(&b.1.ts).then(a.0.cmp(&b.0)));
        let newest: std::collections::HashMap<String, DateTime<Utc>> =
            minutes.iter().map(|(s, b)| (s.clone(), b.ts)).collect();
        for (symbol, bar) in minutes {
            self.last = self.last.max(bar.ts);
            let catch_up = newest.get(&symbol).is_some_and(|t| bar.ts < *t);
            self.pending.push_back(FeedEvent::Minute {
                symbol,
                bar,
                revision: false,
                catch_up,
            });
        }
        Ok(())
    }

    async fn recv_any(streams: &mut [BarStream]) -> Option<(usize, Option<MarketMsg>)> {
        if streams.is_empty() {
            return std::future::pending().await;
        }
        let futs = streams
            .iter_mut()
            .enumerate()
            .map(|(i, s)| Box::pin(async move { (i, s.recv().await) }));
        let ((i, m), _, _) = futures_util::future::select_all(futs).await;
        Some((i, m))
    }

    pub async fn next(&mut self) -> FeedEvent {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return e;
            }
            if self.gap_due {
                // Cancel-safe: nothing is taken from the fill until its request has completed.
                if let Err(e) = self.fill_gap().await {
                    self.pending
                        .push_back(FeedEvent::Link(Link::Down(format!("gap fill failed: {e}"))));
                }
                self.gap_due = false;
                self.pending.push_back(FeedEvent::Link(Link::Up));
                continue;
            }
            if let Some(reason) = self.polling.clone() {
                tokio::time::sleep_until(self.next_poll).await;
                self.next_poll = Instant::now() + self.poll_every;
                match self.fill_gap().await {
                    Ok(()) => self
                        .pending
                        .push_back(FeedEvent::Link(Link::Polling(reason))),
                    Err(e) => self.pending.push_back(FeedEvent::Link(Link::Down(format!(
                        "polling REST bars failed: {e}"
                    )))),
                }
                continue;
            }
            let Some((i, msg)) = Self::recv_any(&mut self.streams).await else {
                continue;
            };
            match msg {
                Some(MarketMsg::Bar {
                    symbol,
                    bar,
                    revision,
                }) => {
                    if !revision {
                        self.last = self.last.max(bar.ts);
                    }
                    return FeedEvent::Minute {
                        symbol,
                        bar,
                        revision,
                        catch_up: false,
                    };
                }
                Some(MarketMsg::Connected) => {
                    // The stream does not replay what was missed: fill the gap over REST first.
                    self.gap_due = true;
                }
                Some(MarketMsg::Disconnected { reason }) => {
                    return FeedEvent::Link(Link::Down(reason));
                }
                Some(MarketMsg::Fatal(e)) => {
                    // E.g. 406: another connection already streams for this account. Poll instead.
                    self.streams.remove(i);
                    if self.streams.is_empty() {
                        self.polling = Some(format!("stream unavailable ({e}); polling REST bars"));
                    }
                    return FeedEvent::Link(Link::Polling(e.to_string()));
                }
                None => {
                    self.streams.remove(i);
                    if self.streams.is_empty() {
                        self.polling = Some("stream ended; polling REST bars".into());
                    }
                }
            }
        }
    }
}
