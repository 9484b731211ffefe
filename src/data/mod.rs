//! Market data: providers (the built-in synthetic market, the Alpaca client, CSV/parquet import),
//! the parquet store, resampling, refresh planning and data-quality reports.

pub mod alpaca;
pub mod budget;
pub mod coverage;
pub mod epoch;
pub mod import;
pub mod load;
pub mod panel;
pub mod plan;
pub mod quality;
pub mod resample;
pub mod store;
pub mod synthetic;

pub use load::{generate_synthetic, load_bars, LoadedBars};
pub use panel::{load_panel, Panel, PanelReport};
pub use store::{SeriesInfo, Store};
