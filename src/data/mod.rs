//! Market data: providers (the built-in synthetic market, the Alpaca client, CSV/parquet import),
//! the parquet store, resampling, and data-quality reports.

pub mod alpaca;
pub mod import;
pub mod quality;
pub mod resample;
pub mod store;
pub mod synthetic;

pub use store::{SeriesInfo, Store};
