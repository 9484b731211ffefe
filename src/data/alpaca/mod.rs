//! The Alpaca market-data client: typed requests over reqwest, paging until `next_page_token` is
//! null, a shared rate limiter that also obeys the `X-Ratelimit-*` headers, retries with
//! exponential backoff and jitter, and errors that say what the user must do.

mod client;
mod error;
mod keys;
mod ratelimit;
mod wire;

pub use client::{CalendarDay, ClientSettings, DataClient, FetchStats};
pub use error::AlpacaError;
pub use keys::{load_credentials, Credentials};
pub use ratelimit::RateLimiter;
pub use wire::parse_bars_page;
