//! Bars, timeframes, symbols and session calendars. Pure types and arithmetic: no I/O.

pub mod bar;
pub mod calendar;
pub mod symbol;
pub mod timeframe;

pub use bar::Bar;
pub use calendar::Calendar;
pub use symbol::{AssetClass, Symbol};
pub use timeframe::Timeframe;
