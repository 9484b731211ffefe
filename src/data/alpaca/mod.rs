//! The Alpaca market-data client: typed requests over reqwest, paging until `next_page_token` is
//! null, a shared rate limiter that also obeys the `X-Ratelimit-*` headers, retries with
//! exponential backoff and jitter, and errors that say what the user must do; plus the live bar
//! stream (`stream`) and the websocket plumbing it shares with the trade-updates stream (`ws`).

mod client;
mod error;
mod keys;
mod ratelimit;
pub mod stream;
mod stream_wire;
mod wire;
pub(crate) mod ws;

pub(crate) use client::{ensure_tls_provider, host_of};
pub use client::{CalendarDay, ClientSettings, DataClient, FetchStats, DATA_HOST, PAPER_HOST};
pub use error::AlpacaError;
pub use keys::{load_credentials, Credentials};
pub use ratelimit::RateLimiter;
pub use wire::parse_bars_page;
