//! The learning bench's checkpoint curve (included by `benches/learning.rs`): every checkpoint a
//! run kept (each `keep_every`-th validation's, the best, the newest), backtested out of sample
//! as traded, so that a rule for choosing among them can be judged against what validation said
//! (the validation curve is in the same log).

use quantdeck::config::Config;
use quantdeck::engine::prune::CHECKPOINT_DIR;
use quantdeck::engine::state::update_of;
use quantdeck::engine::{checkpoint, HostPolicy};
use quantdeck::eval::learning::{self, Costs, SyntheticMarket};
use std::path::Path;

/// (update, out-of-sample Sharpe as traded) of each kept checkpoint, oldest first.
pub fn curve(cfg: &Config, market: &SyntheticMarket, run_dir: &Path) -> Vec<(usize, f64)> {
    let Ok(entries) = std::fs::read_dir(run_dir.join(CHECKPOINT_DIR)) else {
        return Vec::new();
    };
    let mut files: Vec<(usize, std::path::PathBuf)> = entries
        .flatten()
        .filter_map(|e| Some((update_of(&e.path())?, e.path())))
        .collect();
    files.sort();
    let (rules, risk) = Costs::Backtest.rules(cfg, market.symbol.class);
    let bt = market.backtester(rules, risk);
    files
        .into_iter()
        .filter_map(|(update, path)| {
            let (model, _) = checkpoint::load_model(&path, &candle_core::Device::Cpu).ok()?;
            let policy = HostPolicy::from_model(&model).ok()?;
            let row = learning::policy_row("checkpoint", &bt, &policy, market.test.clone());
            Some((update, row.sharpe))
        })
        .collect()
}

/// One line: `update: Sharpe` for each checkpoint.
pub fn line(curve: &[(usize, f64)]) -> String {
    curve
        .iter()
        .map(|(u, s)| format!("{u}: {s:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}
