//! Where bars come from. A replay feed serves stored bars of the models' own timeframe (the
//! simulated session); the Alpaca feed serves 1-minute bars from the market-data stream — or,
//! whenever the stream is not up, from polling the REST bars endpoint — which the daemon builds
//! into the models' timeframe. Every feed is cancel-safe: dropping a pending `next` loses
//! nothing.

mod alpaca;
mod replay;

pub use alpaca::AlpacaFeed;
pub use replay::ReplayFeed;

use super::view::Link;
use crate::market::Bar;

#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    /// A closed bar of the model's own timeframe (replay).
    Bar { symbol: String, bar: Bar },
    /// The replay's closing bar: it marks the book and is not decided (as a backtest's last
    /// point marks the last decision).
    Mark { symbol: String, bar: Bar },
    /// A 1-minute bar (live), or a revision of one. `catch_up`: it comes from a REST fetch
    /// and is not the newest of it — bars it closes fill the history but are not traded (the
    /// daemon never acts on a bar that closed while it was away).
    Minute {
        symbol: String,
        bar: Bar,
        revision: bool,
        catch_up: bool,
    },
    /// The market-data link changed (shown in the pane).
    Link(Link),
    /// Nothing more will come (the replay ended).
    End,
}

/// Something that yields feed events (the replay or the Alpaca feed); cancel-safe.
#[allow(async_fn_in_trait)]
pub trait AsyncFeed {
    async fn next_event(&mut self) -> FeedEvent;
}

impl AsyncFeed for ReplayFeed {
    async fn next_event(&mut self) -> FeedEvent {
        self.next().await
    }
}

impl AsyncFeed for AlpacaFeed {
    async fn next_event(&mut self) -> FeedEvent {
        self.next().await
    }
}
