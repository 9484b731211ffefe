//! Live 1-minute bars from Alpaca, whatever the stream does. The market-data stream is used
//! while it is up; whenever it is not — still connecting, refused, DNS, TLS, a timeout, a 406,
//! dropped — the REST bars endpoint is polled every `poll_every` instead, starting at once with
//! a catch-up of the minutes missed. The stream task keeps retrying in the background; when it
//! connects again, the gap is filled over REST and the stream takes over.

use super::FeedEvent;
use crate::data::alpaca::stream::{BarStream, MarketMsg};
use crate::data::alpaca::DataClient;
use crate::live::view::Link;
use crate::market::{Bar, Symbol};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

struct Stream {
    rx: BarStream,
    up: bool,
}

pub struct AlpacaFeed {
    streams: Vec<Stream>,
    client: Arc<DataClient>,
    symbols: Vec<Symbol>,
    /// The newest minute seen: polling and gap fills ask for bars after it.
    last: DateTime<Utc>,
    poll_every: Duration,
    /// Why REST polling stands in; `None` while every stream is up.
    polling: Option<String>,
    next_poll: Instant,
    pending: VecDeque<FeedEvent>,
    /// A (re)connect's gap fill is owed. Kept until the fill completes: the daemon's `select!`
    /// drops `next()` mid-await whenever another branch wins.
    gap_due: bool,
}

impl AlpacaFeed {
    /// `streams` empty: poll only (`poll_reason` says why). Minutes after `since` are fetched
    /// over REST first.
    pub fn new(
        streams: Vec<BarStream>,
        client: Arc<DataClient>,
        symbols: Vec<Symbol>,
        since: DateTime<Utc>,
        poll_every: Duration,
        poll_reason: Option<String>,
    ) -> Self {
        let reason = if streams.is_empty() {
            poll_reason.unwrap_or_else(|| "polling REST bars".into())
        } else {
            "the market-data stream is connecting; polling REST bars meanwhile".into()
        };
        AlpacaFeed {
            streams: streams
                .into_iter()
                .map(|rx| Stream { rx, up: false })
                .collect(),
            client,
            symbols,
            last: since,
            poll_every,
            polling: Some(reason),
            next_poll: Instant::now(),
            pending: VecDeque::new(),
            gap_due: false,
        }
    }

    /// The minutes after the newest one seen, over REST (a gap fill, or a poll).
    async fn fill_gap(&mut self) -> Result<(), String> {
        let got = self
            .client
            .minute_bars_after(&self.symbols, self.last, Utc::now())
            .await
            .map_err(|e| format!("{e:#}"))?;
        let mut minutes: Vec<(String, Bar)> = got
            .into_iter()
            .flat_map(|(s, bars)| bars.into_iter().map(move |b| (s.clone(), b)))
            .filter(|(_, b)| b.ts > self.last)
            .collect();
        minutes.sort_by(|a, b| a.1.ts.cmp(&b.1.ts).then(a.0.cmp(&b.0)));
        let newest: HashMap<String, DateTime<Utc>> =
            minutes.iter().map(|(s, b)| (s.clone(), b.ts)).collect();
        let fresh = minutes.iter().map(|(_, b)| b.ts).max();
        for (symbol, bar) in minutes {
            let catch_up = newest.get(&symbol).is_some_and(|t| bar.ts < *t);
            self.pending.push_back(FeedEvent::Minute {
                symbol,
                bar,
                revision: false,
                catch_up,
            });
        }
        self.last = self.last.max(fresh.unwrap_or(self.last));
        Ok(())
    }

    async fn recv_any(streams: &mut [Stream]) -> (usize, Option<MarketMsg>) {
        if streams.is_empty() {
            return std::future::pending().await;
        }
        let futs = streams
            .iter_mut()
            .enumerate()
            .map(|(i, s)| Box::pin(async move { (i, s.rx.recv().await) }));
        let ((i, m), _, _) = futures_util::future::select_all(futs).await;
        (i, m)
    }

    /// Sleeps until the next poll when polling, forever when the streams carry the bars.
    async fn poll_due(at: Option<Instant>) {
        match at {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    }

    /// REST stands in from now, beginning with a catch-up at once.
    fn fall_back(&mut self, reason: String) -> FeedEvent {
        if self.polling.is_none() {
            self.next_poll = Instant::now();
        }
        let why = format!("{reason}; polling REST bars");
        self.polling = Some(why.clone());
        FeedEvent::Link(Link::Polling(why))
    }

    pub async fn next(&mut self) -> FeedEvent {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return e;
            }
            if self.gap_due {
                // Cancel-safe: nothing is taken from the fill until its request has completed.
                if let Err(e) = self.fill_gap().await {
                    let down = Link::Down(format!("gap fill failed: {e}"));
                    self.pending.push_back(FeedEvent::Link(down));
                }
                self.gap_due = false;
                if self.streams.iter().all(|s| s.up) {
                    self.polling = None;
                    self.pending.push_back(FeedEvent::Link(Link::Up));
                }
                continue;
            }
            let poll_at = self.polling.as_ref().map(|_| self.next_poll);
            let (i, msg) = tokio::select! {
                m = Self::recv_any(&mut self.streams) => m,
                _ = Self::poll_due(poll_at) => {
                    let reason = self.polling.clone().unwrap_or_default();
                    let link = match self.fill_gap().await {
                        Ok(()) => Link::Polling(reason),
                        Err(e) => Link::Down(format!("polling REST bars failed: {e}")),
                    };
                    self.next_poll = Instant::now() + self.poll_every;
                    self.pending.push_back(FeedEvent::Link(link));
                    continue;
                }
            };
            if let Some(e) = self.on_stream(i, msg) {
                return e;
            }
        }
    }

    fn on_stream(&mut self, i: usize, msg: Option<MarketMsg>) -> Option<FeedEvent> {
        match msg {
            Some(MarketMsg::Bar {
                symbol,
                bar,
                revision,
            }) => {
                if !revision {
                    self.last = self.last.max(bar.ts);
                }
                Some(FeedEvent::Minute {
                    symbol,
                    bar,
                    revision,
                    catch_up: false,
                })
            }
            Some(MarketMsg::Connected) => {
                // The stream does not replay what was missed: fill the gap over REST first.
                self.streams[i].up = true;
                self.gap_due = true;
                None
            }
            Some(MarketMsg::Disconnected { reason }) => {
                self.streams[i].up = false;
                Some(self.fall_back(reason))
            }
            Some(MarketMsg::Fatal(e)) => {
                // A 406 is retried by the stream task; anything else cannot be (keys refused,
                // no subscription): REST for good.
                if e.retried() {
                    self.streams[i].up = false;
                } else {
                    self.streams.remove(i);
                }
                Some(self.fall_back(format!("stream unavailable ({e})")))
            }
            None => {
                self.streams.remove(i);
                Some(self.fall_back("the stream task ended".into()))
            }
        }
    }
}
