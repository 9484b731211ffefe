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

/// The training paths of a run on `stored` (the stored synthetic bars, split with `train`
/// first): `synthetic.train_paths` of them, each the bars over the same days as `train`; empty
/// when it is 1 (the stored path trains). A count whose paths would not fit in half of the
/// available memory is refused before any is drawn.
pub fn draw(
    cfg: &Config,
    symbol: &Symbol,
    spec: &FeatureSpec,
    events: &EventTable,
    stored: &[Bar],
    train: Range<usize>,
    available: f64,
) -> Result<Vec<DrawnPath>> {
    let n = cfg.synthetic.train_paths;
    if n <= 1 || train.end == 0 || train.end > stored.len() {
        return Ok(Vec::new());
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
    let first = cal.local_date(stored[0].ts);
    let last_bar = &stored[train.end - 1];
    let last = cal.local_date(last_bar.ts);
    let tf = cfg.data.timeframe;
    (0..n)
        .map(|k| {
            let mut bars = synthetic::generate_path(&cfg.synthetic, symbol, tf, first, last, k)?;
            if bars.len() < train.end || bars[train.end - 1].ts != last_bar.ts {
                bail!(
                    "the stored {symbol} bars are not on the synthetic market's calendar (a drawn path's bar {} is not at {}): regenerate them, or set synthetic.train_paths = 1",
                    train.end,
                    last_bar.ts
                );
            }
            bars.truncate(train.end);
            let fm = features::compute(spec, symbol, &bars, events);
            let closes = bars.iter().map(|b| b.close).collect();
            Ok(DrawnPath { fm, closes })
        })
        .collect()
}

const GIB: f64 = (1u64 << 30) as f64;
