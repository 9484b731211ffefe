//! Training paths drawn from the synthetic market (`synthetic.train_paths`): one stored path is
//! one history, and a policy trained on it alone learns where it is on that history instead of
//! the drift. Each drawn path has the stored market's parameters and calendar and its own seed
//! (derived from the market seed and the path's number, so a resume redraws the same paths); the
//! stored path keeps its validation and out-of-sample bars and is not trained on.

use crate::config::Config;
use crate::data::synthetic;
use crate::features::{self, events::EventTable, FeatureMatrix, FeatureSpec};
use crate::market::{Bar, Calendar, Symbol};
use anyhow::{bail, Result};
use std::ops::Range;

/// One drawn path's training bars as the env reads them.
pub struct DrawnPath {
    pub fm: FeatureMatrix,
    pub closes: Vec<f64>,
}

impl DrawnPath {
    /// `bars` as a training path: their features under `spec` and their closes.
    pub fn from_bars(
        spec: &FeatureSpec,
        symbol: &Symbol,
        bars: &[Bar],
        events: &EventTable,
    ) -> Self {
        DrawnPath {
            fm: features::compute(spec, symbol, bars, events),
            closes: bars.iter().map(|b| b.close).collect(),
        }
    }

    /// Bytes it holds (features and closes).
    pub fn bytes(&self) -> f64 {
        self.fm.values.len() as f64 * 4.0 + self.closes.len() as f64 * 8.0
    }
}

/// Bytes `n` drawn paths of `bars` bars need while training: features and closes on the host,
/// their copy in the env's tensors, and one path's bars while it is generated.
pub fn estimate_bytes(n: usize, bars: usize, spec: &FeatureSpec) -> f64 {
    let per_bar = spec.n_features() as f64 * 4.0 + 8.0;
    2.0 * n as f64 * bars as f64 * (per_bar + 4.0) + bars as f64 * std::mem::size_of::<Bar>() as f64
}

/// What a single-symbol run's episodes come from besides its own training range: the drawn
/// paths' first generation (then any pooled or augmented series), and the drawer that makes the
/// next generations (`synthetic.redraw_every`). Empty: the training range alone.
#[derive(Default)]
pub struct TrainPaths {
    pub paths: Vec<DrawnPath>,
    pub drawer: Option<PathDrawer>,
}

/// The generation of drawn paths that update `update` (counted from 1; 0: before the first)
/// trains on when they are redrawn every `every` updates (0: never).
pub fn generation(update: usize, every: usize) -> usize {
    match every {
        0 => 0,
        e => update.saturating_sub(1) / e,
    }
}

/// Draws a run's training paths: `synthetic.train_paths` of them a generation, each the bars
/// over the same days as the stored path's training range. Generation `g`'s path `i` is the
/// market's path number `g × train_paths + i`, so every generation is new and any one can be
/// drawn again (a resume, an early-stop retry) without the others.
pub struct PathDrawer {
    synthetic: crate::config::SyntheticConfig,
    timeframe: crate::market::Timeframe,
    symbol: Symbol,
    spec: FeatureSpec,
    events: EventTable,
    first: chrono::NaiveDate,
    last: chrono::NaiveDate,
    /// The training range's length and its last bar's time, which every drawn path must share.
    bars: usize,
    last_ts: chrono::DateTime<chrono::Utc>,
}

impl PathDrawer {
    /// The drawer of a run on `stored` (the stored synthetic bars, split with `train` first);
    /// none when `synthetic.train_paths` is 1 (the stored path trains). A count whose paths
    /// would not fit in half of the `available` memory is refused.
    pub fn new(
        cfg: &Config,
        symbol: &Symbol,
        spec: &FeatureSpec,
        events: &EventTable,
        stored: &[Bar],
        train: Range<usize>,
        available: f64,
    ) -> Result<Option<Self>> {
        let n = cfg.synthetic.train_paths;
        if n <= 1 || train.end == 0 || train.end > stored.len() {
            return Ok(None);
        }
        let need = estimate_bytes(n, train.end, spec);
        if need > available / 2.0 {
            bail!(
                "synthetic.train_paths = {n} would hold ≈ {:.1} GiB of training paths ({n} paths × {} bars × {} features) but this machine has {:.1} GiB available: use fewer paths (at most half of the available memory is allowed)",
                need / GIB,
                train.end,
                spec.n_features(),
                available / GIB
            );
        }
        let cal = Calendar::for_class(symbol.class);
        let last_bar = &stored[train.end - 1];
        Ok(Some(PathDrawer {
            synthetic: cfg.synthetic.clone(),
            timeframe: cfg.data.timeframe,
            symbol: symbol.clone(),
            spec: spec.clone(),
            events: events.clone(),
            first: cal.local_date(stored[0].ts),
            last: cal.local_date(last_bar.ts),
            bars: train.end,
            last_ts: last_bar.ts,
        }))
    }

    /// Paths a generation holds (`synthetic.train_paths`).
    pub fn per_generation(&self) -> usize {
        self.synthetic.train_paths
    }

    /// Generation `g`'s paths (0: the paths a run without redraws trains on).
    pub fn draw(&self, g: usize) -> Result<Vec<DrawnPath>> {
        let n = self.per_generation();
        (g * n..(g + 1) * n)
            .map(|k| {
                let mut bars = synthetic::generate_path(
                    &self.synthetic,
                    &self.symbol,
                    self.timeframe,
                    self.first,
                    self.last,
                    k,
                )?;
                if bars.len() < self.bars || bars[self.bars - 1].ts != self.last_ts {
                    bail!(
                        "the stored {} bars are not on the synthetic market's calendar (a drawn path's bar {} is not at {}): regenerate them, or set synthetic.train_paths = 1",
                        self.symbol,
                        self.bars,
                        self.last_ts
                    );
                }
                bars.truncate(self.bars);
                Ok(DrawnPath::from_bars(&self.spec, &self.symbol, &bars, &self.events))
            })
            .collect()
    }
}

/// The `synthetic.validation_paths` validation paths of a run on `stored` (the stored synthetic
/// bars): each is the market's validation path `k` over the stored path's days up to the end of
/// its validation range (`val_end` bars), so it has the stored path's bar times and the same
/// validation range by index. Never trained on; empty when the setting is 0. A count whose
/// paths would not fit in a quarter of the `available` memory is refused.
pub fn validation_paths(
    cfg: &Config,
    symbol: &Symbol,
    spec: &FeatureSpec,
    events: &EventTable,
    stored: &[Bar],
    val_end: usize,
    available: f64,
) -> Result<Vec<DrawnPath>> {
    let n = cfg.synthetic.validation_paths;
    if n == 0 || val_end == 0 || val_end > stored.len() {
        return Ok(Vec::new());
    }
    let need = estimate_bytes(n, val_end, spec) / 2.0;
    if need > available / 4.0 {
        bail!(
            "synthetic.validation_paths = {n} would hold ≈ {:.1} GiB of validation paths ({n} paths × {val_end} bars × {} features) but this machine has {:.1} GiB available: use fewer paths",
            need / GIB,
            spec.n_features(),
            available / GIB
        );
    }
    let cal = Calendar::for_class(symbol.class);
    let (first, end_ts) = (stored[0].ts, stored[val_end - 1].ts);
    (0..n)
        .map(|k| {
            let mut bars = synthetic::generate_validation_path(
                &cfg.synthetic,
                symbol,
                cfg.data.timeframe,
                (cal.local_date(first), cal.local_date(end_ts)),
                k,
            )?;
            if bars.len() < val_end || bars[val_end - 1].ts != end_ts || bars[0].ts != first {
                bail!(
                    "the stored {symbol} bars are not on the synthetic market's calendar (validation path {k} does not end its validation range at {end_ts}): regenerate them, or set synthetic.validation_paths = 0"
                );
            }
            bars.truncate(val_end);
            Ok(DrawnPath::from_bars(spec, symbol, &bars, events))
        })
        .collect()
}

pub(crate) const GIB: f64 = (1u64 << 30) as f64;

/// `bars` with their volatility resampled and noise added, causally: bar t's log returns (open
/// from the last close, close from the open, high and low from the body) are scaled by `scale`
/// and the close gets `noise` × its own bar's absolute return × a standard normal, so each new
/// bar depends on the old bars up to t and its own draw only. Volume is kept.
pub fn augment(
    bars: &[Bar],
    scale: f64,
    noise: f64,
    rng: &mut crate::rng::Rng,
) -> Result<Vec<Bar>> {
    let mut out: Vec<Bar> = Vec::with_capacity(bars.len());
    let mut prev_old: Option<f64> = None;
    let mut prev_new = 0.0;
    for b in bars {
        let base = prev_old.unwrap_or(b.open);
        let from = if prev_old.is_some() { prev_new } else { b.open };
        let open = from * (scale * (b.open / base).ln()).exp();
        let body = (b.close / b.open).ln();
        let close = open * (scale * body + noise * body.abs() * rng.normal()).exp();
        let top_old = b.open.max(b.close);
        let bottom_old = b.open.min(b.close);
        let high = open.max(close) * (scale * (b.high / top_old).ln().max(0.0)).exp();
        let low = open.min(close) * (scale * (b.low / bottom_old).ln().min(0.0)).exp();
        if ![open, high, low, close]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0)
        {
            bail!(
                "bar {} cannot be augmented: its prices are not all positive",
                b.ts
            );
        }
        out.push(Bar {
            open,
            high,
            low,
            close,
            ..*b
        });
        prev_old = Some(b.close);
        prev_new = close;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SyntheticConfig;
    use crate::market::Timeframe;
    use crate::rng::Rng;
    use chrono::NaiveDate;

    fn bars() -> Vec<Bar> {
        let d = |m, dd| NaiveDate::from_ymd_opt(2024, m, dd).unwrap();
        let sym = Symbol::equity("SYNA");
        let cfg = SyntheticConfig::default();
        synthetic::generate(&cfg, &sym, Timeframe::Minute(15), d(3, 4), d(3, 15)).unwrap()
    }

    fn log_returns(b: &[Bar]) -> Vec<f64> {
        b.windows(2)
            .map(|w| (w[1].close / w[0].close).ln())
            .collect()
    }

    #[test]
    fn augmentation_scales_returns_and_sees_no_later_bar() {
        let b = bars();
        let same = augment(&b, 1.0, 0.0, &mut Rng::new(1)).unwrap();
        for (x, y) in same.iter().zip(&b) {
            assert!((x.close / y.close - 1.0).abs() < 1e-9 && x.ts == y.ts);
        }
        let doubled = augment(&b, 2.0, 0.0, &mut Rng::new(1)).unwrap();
        for (x, y) in log_returns(&doubled).iter().zip(log_returns(&b)) {
            assert!((x - 2.0 * y).abs() < 1e-9, "{x} vs 2 × {y}");
        }
        assert!(doubled
            .iter()
            .all(|x| x.low <= x.open.min(x.close) && x.high >= x.open.max(x.close)));
        // Causal: a copy of a prefix is the prefix of the copy (the same draws, bar by bar).
        let noisy = augment(&b, 1.3, 0.5, &mut Rng::new(9)).unwrap();
        let cut = augment(&b[..b.len() / 2], 1.3, 0.5, &mut Rng::new(9)).unwrap();
        assert_eq!(cut[..], noisy[..b.len() / 2]);
        assert_ne!(noisy, augment(&b, 1.3, 0.0, &mut Rng::new(9)).unwrap());
        // A bar with a zero price is refused, not turned into infinities.
        let mut bad = b.clone();
        bad[5].low = 0.0;
        assert!(augment(&bad, 1.5, 0.0, &mut Rng::new(1)).is_err());
    }
}
