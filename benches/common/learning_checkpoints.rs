//! The learning bench's checkpoint curve (included by `benches/learning.rs`): every checkpoint a
//! run kept (each `keep_every`-th validation's, the best, the newest), backtested out of sample
//! as traded, so that a rule for choosing among them can be judged against what validation said
//! (the validation curve is in the same log). Also the average of the last kept checkpoints'
//! weights: whether averaging along the trajectory steadies a policy whose out-of-sample Sharpe
//! swings from checkpoint to checkpoint.

use candle_core::{Device, Tensor};
use quantdeck::config::Config;
use quantdeck::engine::prune::CHECKPOINT_DIR;
use quantdeck::engine::state::update_of;
use quantdeck::engine::{checkpoint, ActorCritic, HostPolicy, ModelMeta};
use quantdeck::eval::learning::{self, Costs, SyntheticMarket};
use std::collections::HashMap;
use std::path::Path;

/// (update or k, out-of-sample Sharpe as traded) pairs.
pub type Scores = Vec<(usize, f64)>;

/// The kept checkpoints' models, oldest first, each loaded once.
fn kept(run_dir: &Path) -> Vec<(usize, ActorCritic, ModelMeta)> {
    let Ok(entries) = std::fs::read_dir(run_dir.join(CHECKPOINT_DIR)) else {
        return Vec::new();
    };
    let mut files: Vec<(usize, std::path::PathBuf)> = entries
        .flatten()
        .filter_map(|e| Some((update_of(&e.path())?, e.path())))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|(update, path)| {
            let (model, meta) = checkpoint::load_model(&path, &Device::Cpu).ok()?;
            Some((update, model, meta))
        })
        .collect()
}

/// The run's kept checkpoints scored out of sample as traded: (update, Sharpe) of each, oldest
/// first, and (k, Sharpe) of the mean weights of the last k, for each k in `ks` the run has;
/// then (update, `also`'s score) of each checkpoint where `also` gives one (the drawn paths).
pub fn study(
    cfg: &Config,
    market: &SyntheticMarket,
    run_dir: &Path,
    ks: &[usize],
    also: &dyn Fn(&HostPolicy) -> Option<f64>,
) -> (Scores, Scores, Scores) {
    let (rules, risk) = Costs::Backtest.rules(cfg, market.symbol.class);
    let bt = market.backtester(rules, risk);
    let sharpe = |model: &ActorCritic| {
        let policy = HostPolicy::from_model(model).ok()?;
        Some(learning::policy_row("checkpoint", &bt, &policy, market.test.clone()).sharpe)
    };
    let models = kept(run_dir);
    let curve = models
        .iter()
        .filter_map(|(update, model, _)| Some((*update, sharpe(model)?)))
        .collect();
    let elsewhere = models
        .iter()
        .filter_map(|(update, model, _)| {
            Some((*update, also(&HostPolicy::from_model(model).ok()?)?))
        })
        .collect();
    let averaged = ks
        .iter()
        .filter(|&&k| k >= 2 && k <= models.len())
        .filter_map(|&k| Some((k, sharpe(&mean_model(&models[models.len() - k..])?)?)))
        .collect();
    (curve, averaged, elsewhere)
}

/// The model whose every weight is the mean of `models`' (which share one layout).
fn mean_model(models: &[(usize, ActorCritic, ModelMeta)]) -> Option<ActorCritic> {
    let (_, first, meta) = models.first()?;
    let mut sum: HashMap<String, Tensor> = first.named_tensors().into_iter().collect();
    for (_, m, _) in &models[1..] {
        for (name, t) in m.named_tensors() {
            let acc = sum.get(&name)?.add(&t).ok()?;
            sum.insert(name, acc);
        }
    }
    let k = models.len() as f64;
    let mean: HashMap<String, Tensor> = sum
        .into_iter()
        .filter_map(|(n, t)| Some((n, t.affine(1.0 / k, 0.0).ok()?)))
        .collect();
    let dev = Device::Cpu;
    ActorCritic::from_tensors(meta.obs_dim, &meta.hidden_dims, meta.n_actions, &mean, &dev).ok()
}

/// One line: `update: Sharpe` for each checkpoint.
pub fn line(curve: &[(usize, f64)]) -> String {
    curve
        .iter()
        .map(|(u, s)| format!("{u}: {s:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}
