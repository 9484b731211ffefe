use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One OHLCV bar. `ts` is the bar's start in UTC; the bar covers `[ts, ts + timeframe)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub ts: DateTime<Utc>,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

impl Bar {
    /// OHLC consistency: high is the highest and low the lowest price, all positive and finite.
    pub fn is_consistent(&self) -> bool {
        let prices = [self.open, self.high, self.low, self.close];
        prices.iter().all(|p| p.is_finite() && *p > 0.0)
            && self.high >= self.open.max(self.close)
            && self.low <= self.open.min(self.close)
            && self.volume.is_finite()
            && self.volume >= 0.0
    }
}

/// Closing prices of a bar series.
pub fn closes(bars: &[Bar]) -> Vec<f64> {
    bars.iter().map(|b| b.close).collect()
}
