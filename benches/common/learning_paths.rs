//! Out of sample on many paths (included by `benches/learning.rs`). The stored path's
//! out-of-sample range is one history of about 290 sessions: a Sharpe measured there has a
//! standard error near 0.9, about the size of the gap the goal asks about. So every contender
//! also trades the test range of `--oos-paths` other paths of the same market — their seeds come
//! from a stream of their own ("evaluation path #k"), never a training or a validation path —
//! as traded, with momentum's spans fitted on each path's own training bars. The mean over the
//! paths, and the paired difference against momentum on the same bars (each path's luck cancels),
//! say what one path cannot.

use chrono::NaiveDate;
use quantdeck::config::Config;
use quantdeck::engine::HostPolicy;
use quantdeck::eval::learning::{self, Costs, SyntheticMarket};
use quantdeck::features::events::EventTable;
use quantdeck::market::Symbol;
use quantdeck::rng::Rng;

/// The reference rules scored on every path (random and flat add nothing here).
const REFERENCE: [&str; 4] = [
    learning::ORACLE,
    learning::FILTER,
    learning::MOMENTUM,
    "buy-and-hold",
];

/// The drawn markets of one symbol and the reference rules' Sharpe on each, as traded.
pub struct OosPaths {
    markets: Vec<SyntheticMarket>,
    /// (rule, its Sharpe on each path).
    pub reference: Vec<(String, Vec<f64>)>,
}

/// The seed of evaluation path `k` of the market seeded `seed`.
fn evaluation_seed(seed: u64, k: usize) -> u64 {
    Rng::derive(seed, &format!("evaluation path #{k}")).next_u64()
}

impl OosPaths {
    /// `n` drawn markets of `sym` over the configured period and on to `eval_end`, split as the
    /// stored one is, with the reference rules scored on each test range.
    pub fn build(
        cfg: &Config,
        sym: &Symbol,
        events: &EventTable,
        eval_end: NaiveDate,
        n: usize,
    ) -> Self {
        let markets: Vec<SyntheticMarket> = (0..n)
            .map(|k| {
                let mut c = cfg.clone();
                c.synthetic.seed = evaluation_seed(cfg.synthetic.seed, k);
                SyntheticMarket::build(&c, sym, events, Some(eval_end)).expect("drawn market")
            })
            .collect();
        let mut reference: Vec<(String, Vec<f64>)> = REFERENCE
            .iter()
            .map(|r| (r.to_string(), Vec::new()))
            .collect();
        for (k, m) in markets.iter().enumerate() {
            let (rules, risk) = Costs::Backtest.rules(cfg, m.symbol.class);
            let bt = m.backtester(rules, risk);
            let (rows, _) = learning::reference_rows(
                &bt,
                &m.series.drift,
                &m.filtered,
                m.train.clone(),
                m.test.clone(),
                1000 + k as u64,
            );
            for (name, scores) in &mut reference {
                let row = rows
                    .iter()
                    .find(|r| &r.name == name)
                    .expect("reference row");
                scores.push(row.sharpe);
            }
        }
        OosPaths { markets, reference }
    }

    pub fn len(&self) -> usize {
        self.markets.len()
    }

    /// `policy`'s Sharpe on each path's test range, as traded.
    pub fn score(&self, cfg: &Config, policy: &HostPolicy) -> Vec<f64> {
        self.markets
            .iter()
            .map(|m| {
                let (rules, risk) = Costs::Backtest.rules(cfg, m.symbol.class);
                let bt = m.backtester(rules, risk);
                learning::policy_row("policy", &bt, policy, m.test.clone()).sharpe
            })
            .collect()
    }

    /// Each named policy's Sharpe on each path, printed with `label` as it goes.
    pub fn score_all(
        &self,
        cfg: &Config,
        policies: &[(&str, HostPolicy)],
        label: &str,
    ) -> Vec<(String, Vec<f64>)> {
        policies
            .iter()
            .map(|(name, p)| {
                let scores = self.score(cfg, p);
                let line = line(name, &scores, self.momentum());
                println!("{label}, on {} drawn paths, {line}", self.len());
                (name.to_string(), scores)
            })
            .collect()
    }

    /// For each of `names`, the runs' policies of that name deciding together (the seeds'
    /// ensemble: their mean action probabilities), scored and printed with `label`.
    pub fn score_ensembles(
        &self,
        cfg: &Config,
        runs: &[&[(&str, HostPolicy)]],
        names: &[&str],
        label: &str,
    ) {
        for name in names {
            let members: Vec<HostPolicy> = runs
                .iter()
                .filter_map(|r| r.iter().find(|(n, _)| n == name))
                .map(|(_, p)| p.clone())
                .collect();
            let ensemble = HostPolicy::ensemble(members).expect("the seeds share one layout");
            let scores = self.score(cfg, &ensemble);
            println!(
                "{label}, the {} seeds' ensemble on {} drawn paths, {}",
                runs.len(),
                self.len(),
                line(name, &scores, self.momentum())
            );
        }
    }

    /// Momentum's Sharpe on each path.
    pub fn momentum(&self) -> &[f64] {
        self.reference
            .iter()
            .find(|(n, _)| n == learning::MOMENTUM)
            .map(|(_, s)| s.as_slice())
            .expect("momentum is a reference rule")
    }
}

/// Mean and its standard error.
pub fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// `name: mean ± se; minus momentum d ± se, above it on a/n`.
pub fn line(name: &str, scores: &[f64], momentum: &[f64]) -> String {
    let (m, se) = mean_se(scores);
    let diff: Vec<f64> = scores.iter().zip(momentum).map(|(a, b)| a - b).collect();
    let (d, dse) = mean_se(&diff);
    let above = diff.iter().filter(|d| **d > 0.0).count();
    format!(
        "{name}: {m:.2} ± {se:.2}; minus momentum {d:+.2} ± {dse:.2}, above it on {above}/{}",
        diff.len()
    )
}
