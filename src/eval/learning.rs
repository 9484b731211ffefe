//! What "it learns" is measured against: on the built-in synthetic market, a trained policy's
//! out-of-sample result beside the oracle (which knows the planted drift: the upper bound), the
//! momentum rule fitted on the training bars (what a trivial trend follower gets), buy-and-hold,
//! random and flat — all through the same backtester with the same sizing and costs. Used by the
//! calibration test and `cargo bench --bench learning`; nothing user-facing offers the oracle.

use super::baselines::MomentumRule;
use super::{metrics, oracle, BacktestResult, Backtester};
use crate::config::Config;
use crate::data::load::parse_day;
use crate::data::synthetic::{self, SyntheticSeries};
use crate::engine::HostPolicy;
use crate::features::{self, events::EventTable, FeatureMatrix, FeatureSpec};
use crate::market::{AssetClass, Symbol};
use crate::rng::Rng;
use crate::sim::{Rules, TradingRules, N_ACTIONS};
use anyhow::{bail, Result};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::ops::Range;

/// A synthetic series ready for evaluation: bars with their drift, features and the split.
pub struct SyntheticMarket {
    pub symbol: Symbol,
    pub series: SyntheticSeries,
    pub spec: FeatureSpec,
    pub fm: FeatureMatrix,
    pub closes: Vec<f64>,
    /// The drift as estimated from past closes by a trader who knows `edge` and the half-life
    /// ([`oracle::filtered_drift`]): the observable counterpart of `series.drift`.
    pub filtered: Vec<f64>,
    /// The split of the configured period, as the train job makes it (`ppo::split`).
    pub train: Range<usize>,
    pub validation: Range<usize>,
    /// Every bar after the validation range: the configured period's unseen tail, plus any
    /// bars up to `eval_end` (generated from the same start, so the prefix is unchanged).
    pub test: Range<usize>,
    /// One past the configured period's last bar (`data.end`): `validation.end..period_end` is
    /// the out-of-sample tail a default training run leaves.
    pub period_end: usize,
}

impl SyntheticMarket {
    /// `cfg`'s synthetic market for `symbol`, generated to `eval_end` (default: `data.end`).
    pub fn build(
        cfg: &Config,
        symbol: &Symbol,
        events: &EventTable,
        eval_end: Option<NaiveDate>,
    ) -> Result<Self> {
        let start = parse_day(&cfg.data.start, "data.start")?;
        let end = parse_day(&cfg.data.end, "data.end")?;
        let to = eval_end.unwrap_or(end).max(end);
        let tf = cfg.data.timeframe;
        let series = synthetic::generate_with_truth(&cfg.synthetic, symbol, tf, start, to)?;
        let cal = crate::market::Calendar::for_class(symbol.class);
        let n_cfg = series.bars.partition_point(|b| cal.local_date(b.ts) <= end);
        let (train, validation) =
            crate::engine::ppo::split(n_cfg, cfg.data.train_split, cfg.data.validation_split);
        let test = validation.end..series.bars.len();
        if train.is_empty() || validation.is_empty() || test.len() < 2 {
            bail!(
                "{} bars of {symbol} are too few to split into training, validation and test ranges",
                series.bars.len()
            );
        }
        let spec = FeatureSpec::current(cfg.features.window, events);
        let fm = features::compute(&spec, symbol, &series.bars, events);
        let closes: Vec<f64> = series.bars.iter().map(|b| b.close).collect();
        let phi = synthetic::drift_phi(cfg.synthetic.drift_halflife);
        let filtered = oracle::filtered_drift(
            &closes,
            phi,
            synthetic::drift_loading(cfg.synthetic.edge, phi),
        );
        Ok(SyntheticMarket {
            symbol: symbol.clone(),
            series,
            spec,
            fm,
            closes,
            filtered,
            train,
            validation,
            test,
            period_end: n_cfg,
        })
    }

    pub fn backtester(&self, rules: Rules, trading: Option<TradingRules>) -> Backtester<'_> {
        Backtester {
            spec: &self.spec,
            fm: &self.fm,
            closes: &self.closes,
            class: self.symbol.class,
            rules,
            trading,
        }
    }
}

/// Which account and frictions an evaluation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Costs {
    /// The training env's rules (`[env]`: $1,000, 10.5 % positions, env slippage, no
    /// commission), no risk gates: what the policy was trained to trade under.
    Training,
    /// The rules paper trading applies, as every evaluation does (`[backtest]` account, sizing
    /// and costs; `[live]` confidence threshold and gates; stop-loss, take-profit, drawdown
    /// rules): "as traded". Reference rules (oracle, baselines) trade plain at these costs.
    Backtest,
}

impl Costs {
    pub const ALL: [Costs; 2] = [Costs::Training, Costs::Backtest];

    pub fn rules(self, cfg: &Config, class: AssetClass) -> (Rules, Option<TradingRules>) {
        match self {
            Costs::Training => (Rules::training(&cfg.env, &cfg.backtest, class), None),
            Costs::Backtest => {
                let tr = TradingRules::from_config(cfg);
                let short = class == AssetClass::Equity && cfg.env.allow_short_equity;
                (tr.account(short), Some(tr))
            }
        }
    }
}

/// One contender's out-of-sample figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    /// Annualised, from daily returns (`metrics::daily_sharpe`).
    pub sharpe: f64,
    pub total_return: f64,
    pub max_drawdown: f64,
    pub trades: usize,
}

impl Row {
    pub fn of(name: &str, res: &BacktestResult, class: AssetClass) -> Row {
        Row {
            name: name.to_string(),
            sharpe: metrics::daily_sharpe(&res.equity, &res.ts, class),
            total_return: res.total_return(),
            max_drawdown: metrics::max_drawdown(&res.equity),
            trades: res.trades.len(),
        }
    }
}

pub const ORACLE: &str = "oracle";
/// Holds the sign of [`SyntheticMarket::filtered`]: the best an observer of past bars can do.
pub const FILTER: &str = "drift filter";
pub const MOMENTUM: &str = "momentum";

/// The rules every policy is compared with, over `range`: oracle (`drift`, the truth), drift
/// filter (`filtered`, its estimate from past closes), momentum (spans fitted on `fit_on`, the
/// training bars), buy-and-hold, random (seeded) and flat.
pub fn reference_rows(
    bt: &Backtester,
    drift: &[f64],
    filtered: &[f64],
    fit_on: Range<usize>,
    range: Range<usize>,
    seed: u64,
) -> (Vec<Row>, MomentumRule) {
    let momentum = MomentumRule::fit(bt, fit_on);
    let mut rng = Rng::new(seed);
    let class = bt.class;
    let rows = vec![
        Row::of(ORACLE, &oracle::run(bt, drift, range.clone()), class),
        Row::of(FILTER, &oracle::run(bt, filtered, range.clone()), class),
        Row::of(MOMENTUM, &momentum.run(bt, range.clone()), class),
        Row::of(
            "buy-and-hold",
            &bt.run_levels(range.clone(), |_| 1.0),
            class,
        ),
        Row::of(
            "random",
            &bt.plain()
                .run_with(range.clone(), |_| (rng.below(N_ACTIONS), 1.0)),
            class,
        ),
        Row::of("flat", &bt.run_levels(range, |_| 0.0), class),
    ];
    (rows, momentum)
}

/// A trained policy's row.
pub fn policy_row(name: &str, bt: &Backtester, policy: &HostPolicy, range: Range<usize>) -> Row {
    Row::of(name, &bt.run(policy, range), bt.class)
}

/// A Sharpe as a percentage of the oracle's; `None` when the oracle earned nothing to compare
/// with (a zero or negative Sharpe makes the ratio meaningless).
pub fn share_of_oracle(sharpe: f64, oracle: f64) -> Option<f64> {
    (oracle > 0.0 && sharpe.is_finite()).then(|| 100.0 * sharpe / oracle)
}

/// One evaluation of several contenders on the same bars with the same costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scoreboard {
    pub costs: Costs,
    pub rows: Vec<Row>,
}

impl Scoreboard {
    pub fn get(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// `name`'s Sharpe as a percentage of the oracle's.
    pub fn share_of_oracle(&self, name: &str) -> Option<f64> {
        share_of_oracle(self.get(name)?.sharpe, self.get(ORACLE)?.sharpe)
    }

    /// Whether `name` has a higher Sharpe than the momentum rule.
    pub fn beats_momentum(&self, name: &str) -> Option<bool> {
        Some(self.get(name)?.sharpe > self.get(MOMENTUM)?.sharpe)
    }

    /// The median board of several runs of one setting (seeds): per contender, the median of
    /// each figure over the boards that have it (the reference rows are the same in each).
    pub fn median_of(boards: &[Scoreboard]) -> Option<Scoreboard> {
        let first = boards.first()?;
        let med = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        };
        let rows = first
            .rows
            .iter()
            .map(|r| {
                let all: Vec<&Row> = boards.iter().filter_map(|b| b.get(&r.name)).collect();
                Row {
                    name: r.name.clone(),
                    sharpe: med(all.iter().map(|x| x.sharpe).collect()),
                    total_return: med(all.iter().map(|x| x.total_return).collect()),
                    max_drawdown: med(all.iter().map(|x| x.max_drawdown).collect()),
                    trades: med(all.iter().map(|x| x.trades as f64).collect()).round() as usize,
                }
            })
            .collect();
        Some(Scoreboard {
            costs: first.costs,
            rows,
        })
    }

    /// A plain-text table: one line per contender, Sharpe as % of the oracle's last.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<22} {:>8} {:>9} {:>8} {:>7} {:>10}\n",
            "", "Sharpe", "return", "max DD", "trades", "% oracle"
        );
        for r in &self.rows {
            let pct = self
                .share_of_oracle(&r.name)
                .map(|p| format!("{p:.0} %"))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                out,
                "{:<22} {:>8.2} {:>8.2}% {:>7.2}% {:>7} {:>10}",
                r.name,
                r.sharpe,
                100.0 * r.total_return,
                100.0 * r.max_drawdown,
                r.trades,
                pct
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, sharpe: f64) -> Row {
        Row {
            name: name.into(),
            sharpe,
            total_return: 0.01,
            max_drawdown: 0.02,
            trades: 3,
        }
    }

    #[test]
    fn shares_of_the_oracle() {
        assert_eq!(share_of_oracle(1.5, 3.0), Some(50.0));
        assert_eq!(share_of_oracle(-1.5, 3.0), Some(-50.0));
        assert_eq!(share_of_oracle(1.0, 0.0), None);
        assert_eq!(share_of_oracle(1.0, -2.0), None);
        assert_eq!(share_of_oracle(f64::NAN, 2.0), None);
    }

    #[test]
    fn the_scoreboard_compares_with_oracle_and_momentum() {
        let b = Scoreboard {
            costs: Costs::Training,
            rows: vec![row("policy", 2.0), row(ORACLE, 4.0), row(MOMENTUM, 2.5)],
        };
        assert_eq!(b.share_of_oracle("policy"), Some(50.0));
        assert_eq!(b.share_of_oracle(ORACLE), Some(100.0));
        assert_eq!(b.beats_momentum("policy"), Some(false));
        assert_eq!(b.beats_momentum("nobody"), None);
        let t = b.table();
        let line = t.lines().find(|l| l.starts_with("policy")).unwrap();
        assert!(line.contains("2.00") && line.contains("50 %"), "{line}");
        assert_eq!(t.lines().count(), 4);
        // Without a positive oracle there is no share to show.
        let b = Scoreboard {
            costs: Costs::Training,
            rows: vec![row("policy", 2.0), row(ORACLE, -1.0)],
        };
        assert_eq!(b.share_of_oracle("policy"), None);
        assert!(b.table().lines().nth(1).unwrap().ends_with('—'));
    }
}
