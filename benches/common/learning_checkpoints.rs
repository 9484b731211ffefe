//! The learning bench's checkpoint curve (included by `benches/learning.rs`): every checkpoint a
//! run kept (each `keep_every`-th validation's, the best, the newest), backtested out of sample
//! as traded, so that a rule for choosing among them can be judged against what validation said
//! (the validation curve is in the same log). Also the average of the last kept checkpoints'
//! weights: whether averaging along the trajectory steadies a policy whose out-of-sample Sharpe
//! swings from checkpoint to checkpoint.

use quantdeck::config::Config;
use quantdeck::engine::prune::CHECKPOINT_DIR;
use quantdeck::engine::state::update_of;
use quantdeck::engine::{checkpoint, ActorCritic, HostPolicy};
use quantdeck::eval::learning::{self, Costs, SyntheticMarket};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The kept checkpoints' files, oldest first.
fn kept(run_dir: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(run_dir.join(CHECKPOINT_DIR)) else {
        return Vec::new();
    };
    let mut files: Vec<(usize, PathBuf)> = entries
        .flatten()
        .filter_map(|e| Some((update_of(&e.path())?, e.path())))
        .collect();
    files.sort();
    files
}

fn sharpe(cfg: &Config, market: &SyntheticMarket, policy: &HostPolicy) -> f64 {
    let (rules, risk) = Costs::Backtest.rules(cfg, market.symbol.class);
    let bt = market.backtester(rules, risk);
    learning::policy_row("checkpoint", &bt, policy, market.test.clone()).sharpe
}

/// (update, out-of-sample Sharpe as traded) of each kept checkpoint, oldest first.
pub fn curve(cfg: &Config, market: &SyntheticMarket, run_dir: &Path) -> Vec<(usize, f64)> {
    kept(run_dir)
        .into_iter()
        .filter_map(|(update, path)| {
            let (model, _) = checkpoint::load_model(&path, &candle_core::Device::Cpu).ok()?;
            let policy = HostPolicy::from_model(&model).ok()?;
            Some((update, sharpe(cfg, market, &policy)))
        })
        .collect()
}

/// (k, out-of-sample Sharpe as traded) of the policy whose weights are the mean of the last k
/// kept checkpoints', for each k in `ks` that the run has.
pub fn averaged(
    cfg: &Config,
    market: &SyntheticMarket,
    run_dir: &Path,
    ks: &[usize],
) -> Vec<(usize, f64)> {
    let dev = candle_core::Device::Cpu;
    let models: Vec<_> = kept(run_dir)
        .iter()
        .filter_map(|(_, p)| checkpoint::load_model(p, &dev).ok())
        .collect();
    ks.iter()
        .filter(|&&k| k >= 2 && k <= models.len())
        .filter_map(|&k| {
            let last = &models[models.len() - k..];
            let (first, meta) = &last[0];
            let mut sum: HashMap<String, candle_core::Tensor> =
                first.named_tensors().into_iter().collect();
            for (m, _) in &last[1..] {
                for (name, t) in m.named_tensors() {
                    let acc = sum.get(&name)?.add(&t).ok()?;
                    sum.insert(name, acc);
                }
            }
            let mean: HashMap<String, candle_core::Tensor> = sum
                .into_iter()
                .filter_map(|(n, t)| Some((n, t.affine(1.0 / k as f64, 0.0).ok()?)))
                .collect();
            let model = ActorCritic::from_tensors(
                meta.obs_dim,
                &meta.hidden_dims,
                meta.n_actions,
                &mean,
                &dev,
            )
            .ok()?;
            let policy = HostPolicy::from_model(&model).ok()?;
            Some((k, sharpe(cfg, market, &policy)))
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
