//! The portfolio half of the training bench: the configured synthetic universe (12 correlated
//! equities, 2016–2024 daily, obs 32 × 75 + 15 = 2415) trained by `ppo::train_portfolio`, and an
//! out-of-sample check of a short training against equal-weight buy-and-hold.

use quantdeck::config::Config;
use quantdeck::data::{load_panel, synthetic, Store};
use quantdeck::engine::ppo::{self, CheckpointReason, PortfolioTrainData, TrainObserver};
use quantdeck::engine::{load_policy, HostPolicy};
use quantdeck::eval::portfolio::evaluate;
use quantdeck::eval::PortfolioMarket;
use quantdeck::features::portfolio::{self as pfeat, PortfolioSpec};
use quantdeck::sim::portfolio::{PortfolioRules, Tape};
use std::path::Path;

/// The configured universe, generated into a temporary store.
pub fn data(cfg: &Config) -> PortfolioTrainData {
    let dir = tempfile::tempdir().expect("tmp");
    let panel = load_panel(cfg, &Store::new(dir.path()))
        .expect("synthetic panel")
        .panel;
    let spec = PortfolioSpec::from_config(cfg).expect("portfolio layout");
    let features = pfeat::compute(&spec, &panel).expect("portfolio features");
    let tape = Tape::new(&panel, &features.factors);
    let (train, validation) = ppo::split(
        panel.n_bars(),
        cfg.data.train_split,
        cfg.data.validation_split,
    );
    PortfolioTrainData {
        name: "portfolio".into(),
        source: synthetic::SOURCE.into(),
        sha256: panel.sha256(),
        spec,
        features,
        tape,
        rules: PortfolioRules::from_config(&cfg.portfolio),
        train,
        validation,
    }
}

/// Per-update throughput; validation scored by the greedy policy's validation Sharpe when
/// `validate` (the OOS run), else never (the speed run times training only).
struct Probe<'a> {
    sps: Vec<f64>,
    validate: Option<&'a PortfolioTrainData>,
    seed: u64,
}

impl TrainObserver for Probe<'_> {
    fn on_update(&mut self, m: &ppo::UpdateMetrics) {
        self.sps.push(m.sps);
    }
    fn validate(&mut self, _: usize, policy: &HostPolicy) -> anyhow::Result<Option<f64>> {
        let Some(d) = self.validate else {
            return Ok(None);
        };
        let ev = evaluate(market(d), d.validation.clone(), self.seed, |o| {
            policy.act(o).0
        })?;
        Ok(Some(ev.model.sharpe))
    }
    fn on_checkpoint(&mut self, _: &Path, _: usize, _: CheckpointReason) {}
    fn should_stop(&self) -> bool {
        false
    }
}

fn market(d: &PortfolioTrainData) -> PortfolioMarket<'_> {
    PortfolioMarket {
        spec: &d.spec,
        features: &d.features,
        tape: &d.tape,
        rules: d.rules,
    }
}

/// Env-steps/s of each timed update (after one warm-up update).
pub fn sps(cfg: &Config, data: &PortfolioTrainData, updates: usize) -> Vec<f64> {
    let mut cfg = cfg.clone();
    cfg.ppo.device = "cpu".into();
    cfg.ppo.total_timesteps = (updates as u64 + 1) * cfg.ppo.steps_per_update();
    cfg.ppo.validation_interval = usize::MAX;
    let dir = tempfile::tempdir().expect("tmp");
    let mut probe = Probe {
        sps: Vec::new(),
        validate: None,
        seed: cfg.ppo.seed,
    };
    ppo::train_portfolio(
        &cfg,
        data,
        &candle_core::Device::Cpu,
        dir.path(),
        &mut probe,
    )
    .expect("train");
    probe.sps[1..].to_vec()
}

/// Trains `updates` updates (validating as the config says), then evaluates the best checkpoint
/// (the final model when none was scored) on the rows after validation, beside equal weight.
pub fn out_of_sample(cfg: &Config, data: &PortfolioTrainData, updates: usize) {
    let mut cfg = cfg.clone();
    cfg.ppo.device = "cpu".into();
    cfg.ppo.total_timesteps = updates as u64 * cfg.ppo.steps_per_update();
    let dir = tempfile::tempdir().expect("tmp");
    let mut probe = Probe {
        sps: Vec::new(),
        validate: Some(data),
        seed: cfg.ppo.seed,
    };
    let out = ppo::train_portfolio(
        &cfg,
        data,
        &candle_core::Device::Cpu,
        dir.path(),
        &mut probe,
    )
    .expect("train");
    let path = out.best_path.clone().unwrap_or(out.model_path.clone());
    let (policy, meta) = load_policy(&path).expect("model");
    let rows = data.validation.end..data.tape.n_bars;
    let ev = evaluate(market(data), rows.clone(), cfg.ppo.seed, |o| {
        policy.act(o).0
    })
    .expect("evaluate");
    let (m, e) = (&ev.model, &ev.equal_weight);
    println!(
        "  out of sample ({} bars, {} → {}; model = update {} of {updates}, {} env-steps in {:.0} s):",
        ev.bars.len(),
        data.tape.ts[ev.bars.start].format("%Y-%m-%d"),
        data.tape.ts[ev.bars.end - 1].format("%Y-%m-%d"),
        meta.update,
        out.timesteps,
        out.elapsed_s
    );
    println!(
        "    model        return {:+.2} %  Sharpe {:+.2}  max DD {:.1} %  turnover {:.1}  costs {:.2} %",
        m.total_return * 100.0,
        m.sharpe,
        m.max_drawdown * 100.0,
        m.turnover,
        m.costs * 100.0
    );
    println!(
        "    equal weight return {:+.2} %  Sharpe {:+.2}  max DD {:.1} %  turnover {:.1}  costs {:.2} %",
        e.total_return * 100.0,
        e.sharpe,
        e.max_drawdown * 100.0,
        e.turnover,
        e.costs * 100.0
    );
    let shares: Vec<String> = ev
        .action_shares()
        .into_iter()
        .filter(|(_, s)| *s > 0.0)
        .map(|(n, s)| format!("{n} {:.0} %", s * 100.0))
        .collect();
    println!("    regimes chosen: {}", shares.join(", "));
}
