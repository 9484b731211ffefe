use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Account features appended to every observation at run time (from the trading account, not
/// from bars): position level in [-1, 1], tanh(10 × P&L / initial), drawdown from peak in [0, 1].
pub const ACCOUNT_FEATURES: [&str; 3] = ["account.position", "account.pnl", "account.drawdown"];

/// The current layout: the seed's v5.6 blocks in the seed's order (58 per-bar features).
pub const VERSION: &str = "qd-seed58-v1";

/// Blocks of the layout in column order, as (block name, feature names).
pub const BLOCKS: [(&str, &[&str]); 7] = [
    (
        "base",
        &[
            "base.norm_price",
            "base.returns",
            "base.log_returns",
            "base.vol",
            "base.momentum",
            "base.rsi",
        ],
    ),
    (
        "temporal",
        &[
            "time.tod_sin",
            "time.tod_cos",
            "time.day_of_week",
            "time.session_phase",
            "time.hour_weight",
            "time.fomc_day",
            "time.jobs_day",
        ],
    ),
    (
        "markov",
        &[
            "regime.vol_low",
            "regime.vol_med",
            "regime.vol_high",
            "regime.trend_down",
            "regime.trend_neutral",
            "regime.trend_up",
            "regime.mom_falling",
            "regime.mom_flat",
            "regime.mom_rising",
            "regime.macro_bull",
            "regime.macro_side",
            "regime.macro_bear",
        ],
    ),
    ("reversal", &["rev.bullish", "rev.bearish", "rev.none"]),
    (
        "extended",
        &[
            "ta.macd",
            "ta.macd_signal",
            "ta.macd_hist",
            "ta.adx",
            "ta.plus_di",
            "ta.minus_di",
            "ta.stoch_k",
            "ta.stoch_d",
            "ta.atr",
            "ta.bb_pctb",
            "ta.bb_width",
            "ta.cci",
            "ta.willr",
            "ta.roc",
        ],
    ),
    (
        "multiwin",
        &[
            "mw.ret_20",
            "mw.vol_20",
            "mw.eff_20",
            "mw.ret_50",
            "mw.vol_50",
            "mw.eff_50",
            "mw.ret_100",
            "mw.vol_100",
            "mw.eff_100",
        ],
    ),
    (
        "hourly",
        &[
            "h1.return",
            "h1.vol",
            "h1.trend",
            "h1.momentum",
            "h1.rsi",
            "h1.range",
            "h1.pos_in_hour",
        ],
    ),
];

/// Per-bar features in the layout.
pub const N_FEATURES: usize = 58;

/// Bars of history before a row whose values no longer depend on how much older history there
/// is (to 1e-6): the longest exact lookback (the regime filters reach back 120 bars) plus enough
/// bars for the recursive smoothers (Wilder 14 for RSI/ATR/ADX, EMA 26 for MACD) to forget their
/// seed: (13/14)^300 ≈ 2e-10, and ADX's double smoothing adds a factor of n, still < 1e-7.
/// `tests/features_parity.rs` proves it at random cut points.
pub const WARMUP: usize = 320;

/// The versioned observation layout. Stored in every model, so a model is only ever fed the
/// layout it was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub version: String,
    /// Per-bar feature names, in column order.
    pub names: Vec<String>,
    /// Bars per observation window.
    pub window: usize,
    /// Bars of history a feature row needs before its values are exact (see [`WARMUP`]). The
    /// paper trader keeps `warmup + window` bars; the first usable bar of a series is `warmup`.
    pub warmup: usize,
    pub account: Vec<String>,
    /// SHA-256 of the event-day table the features were computed with (see
    /// `events::EventTable::sha256`); empty in models made before it was recorded.
    #[serde(default)]
    pub events_sha256: String,
}

impl FeatureSpec {
    /// The current layout (`qd-seed58-v1`) with the given window, computed with `events`.
    pub fn current(window: usize, events: &super::events::EventTable) -> Self {
        FeatureSpec {
            events_sha256: events.sha256(),
            version: VERSION.to_string(),
            names: BLOCKS
                .iter()
                .flat_map(|(_, names)| names.iter().map(|s| s.to_string()))
                .collect(),
            window,
            warmup: WARMUP,
            account: ACCOUNT_FEATURES.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The layout a model names, if this build can compute it.
    pub fn by_version(
        version: &str,
        window: usize,
        events: &super::events::EventTable,
    ) -> Result<Self> {
        if version == VERSION {
            return Ok(Self::current(window, events));
        }
        bail!("feature layout {version:?} is not supported by this build (it computes {VERSION})")
    }

    pub fn n_features(&self) -> usize {
        self.names.len()
    }

    pub fn obs_dim(&self) -> usize {
        self.window * self.names.len() + self.account.len()
    }

    /// One line: `qd-seed58-v1: 58 features × 32 bars + 3 account = 1859 (warm-up 320 bars)`.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} features × {} bars + {} account = {} (warm-up {} bars)",
            self.version,
            self.names.len(),
            self.window,
            self.account.len(),
            self.obs_dim(),
            self.warmup
        )
    }

    /// The block a feature column belongs to.
    pub fn block_of(&self, col: usize) -> &'static str {
        let mut start = 0;
        for (block, names) in BLOCKS {
            if col < start + names.len() {
                return block;
            }
            start += names.len();
        }
        "other"
    }

    /// A warning when the model's features were computed with another event-day table (the user
    /// edited `events.csv` since training): the layout is the same, a few days' values are not.
    pub fn events_warning(&self, model: &FeatureSpec) -> Option<String> {
        (!model.events_sha256.is_empty() && model.events_sha256 != self.events_sha256).then(|| {
            format!(
                "the event-day table changed since this model was trained (hash {} then, {} now): \
                 calendar features differ on the changed days; retrain to use the new table",
                short(&model.events_sha256),
                short(&self.events_sha256)
            )
        })
    }

    /// Refuses a model trained on another layout, naming both. (The event table is compared by
    /// [`Self::events_warning`].)
    pub fn ensure_same(&self, model: &FeatureSpec) -> Result<()> {
        let same = self.version == model.version
            && self.names == model.names
            && self.window == model.window
            && self.warmup == model.warmup
            && self.account == model.account;
        if !same {
            let mut diff = Vec::new();
            if self.version != model.version {
                diff.push(format!("version {} vs {}", model.version, self.version));
            }
            if self.window != model.window {
                diff.push(format!("window {} vs {}", model.window, self.window));
            }
            if self.warmup != model.warmup {
                diff.push(format!("warm-up {} vs {}", model.warmup, self.warmup));
            }
            if self.names != model.names {
                diff.push(format!(
                    "feature names [{}] vs [{}]",
                    model.names.join(","),
                    self.names.join(",")
                ));
            }
            if self.account != model.account {
                diff.push("account block differs".to_string());
            }
            bail!(
                "model feature layout does not match the data's:\n  model: {}\n  data:  {}\n  ({})",
                model.describe(),
                self.describe(),
                diff.join("; ")
            );
        }
        Ok(())
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}
