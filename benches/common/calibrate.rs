//! The learning bench's `calibrate`: no training, the oracle and the momentum rule over a grid
//! of `synthetic.edge` × `synthetic.drift_halflife` on the three equities and several market
//! seeds (included by `benches/learning.rs`).

use chrono::NaiveDate;
use quantdeck::config::{self, Config};
use quantdeck::eval::learning::{Costs, SyntheticMarket};
use quantdeck::eval::metrics;
use quantdeck::features::events::EventTable;
use quantdeck::market::Symbol;

/// The oracle and the momentum rule across a grid of market settings: mean and worst
/// out-of-sample Sharpe over the three equities × `seeds` seeds, on the configured period's
/// out-of-sample tail ("default OOS") and on the longer tail to `eval_end`.
pub fn calibrate(cfg: &Config, seeds: u64, eval_end: NaiveDate) {
    let events = EventTable::embedded();
    let edges = [0.0, 0.01, 0.05, 0.10, 0.15];
    let halflives = [24.0, 48.0, 96.0];
    println!(
        "mean (worst) out-of-sample Sharpe over 3 equities × {seeds} seeds; load average {}",
        super::load_average()
    );
    println!(
        "{:>5} {:>5} | {:>16} {:>16} | {:>16} {:>16} | {:>16} {:>16}",
        "edge",
        "h-l",
        "oracle env",
        "momentum env",
        "oracle bt",
        "momentum bt",
        "oracle env long",
        "mom env long"
    );
    for &edge in &edges {
        for &hl in &halflives {
            let mut c = cfg.clone();
            c.synthetic.edge = edge;
            c.synthetic.drift_halflife = hl;
            if config::validate(&c).is_err() {
                continue;
            }
            let mut cols: Vec<Vec<f64>> = vec![Vec::new(); 6];
            for seed in 1..=seeds {
                c.synthetic.seed = seed;
                for name in ["SYNA", "SYNB", "SYNC"] {
                    let sym = Symbol::equity(name);
                    let m =
                        SyntheticMarket::build(&c, &sym, &events, Some(eval_end)).expect("market");
                    let short = m.test.start..m.period_end;
                    for (k, costs) in Costs::ALL.iter().enumerate() {
                        let (rules, risk) = costs.rules(&c, sym.class);
                        let bt = m.backtester(rules, risk);
                        let mom = quantdeck::eval::MomentumRule::fit(&bt, m.train.clone());
                        let sh = |r: &quantdeck::eval::BacktestResult| {
                            metrics::daily_sharpe(&r.equity, &r.ts, sym.class)
                        };
                        cols[2 * k].push(sh(&quantdeck::eval::oracle::run(
                            &bt,
                            &m.series.drift,
                            short.clone(),
                        )));
                        cols[2 * k + 1].push(sh(&mom.run(&bt, short.clone())));
                        if *costs == Costs::Training {
                            cols[4].push(sh(&quantdeck::eval::oracle::run(
                                &bt,
                                &m.series.drift,
                                m.test.clone(),
                            )));
                            cols[5].push(sh(&mom.run(&bt, m.test.clone())));
                        }
                    }
                }
            }
            let cell = |v: &[f64]| {
                let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
                let worst = v.iter().copied().fold(f64::INFINITY, f64::min);
                format!("{mean:>7.2} ({worst:>6.2})")
            };
            println!(
                "{edge:>5.2} {hl:>5.0} | {:>16} {:>16} | {:>16} {:>16} | {:>16} {:>16}",
                cell(&cols[0]),
                cell(&cols[1]),
                cell(&cols[2]),
                cell(&cols[3]),
                cell(&cols[4]),
                cell(&cols[5])
            );
        }
    }
}
