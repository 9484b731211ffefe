//! Market data: providers (the built-in synthetic market; Alpaca and file import in later work),
//! the parquet store, and data-quality summaries.

pub mod store;
pub mod synthetic;

pub use store::{SeriesInfo, Store};
