use super::*;
use crate::config::{PortfolioConfig, SyntheticConfig};
use crate::data::{synthetic, Panel};
use crate::features::portfolio::{compute, PortfolioSpec};
use crate::market::{Symbol, Timeframe};
use chrono::NaiveDate;

struct Fixture {
    spec: PortfolioSpec,
    features: PortfolioFeatures,
    tape: Tape,
    rules: PortfolioRules,
}

impl Fixture {
    fn new() -> Fixture {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        let names: Vec<String> = (1..=4).map(|i| format!("SYNP{i:02}")).collect();
        let syms: Vec<Symbol> = names.iter().map(|n| Symbol::equity(n)).collect();
        let cfg = SyntheticConfig::default();
        let series: Vec<_> = syms
            .iter()
            .map(|s| {
                synthetic::generate_correlated(
                    &cfg,
                    s,
                    Timeframe::Day,
                    d(2023, 1, 3),
                    d(2023, 8, 31),
                )
                .unwrap()
            })
            .collect();
        let panel = Panel::align(&syms, Timeframe::Day, &series, None).unwrap();
        let spec = PortfolioSpec::new(&names, Timeframe::Day, 8, 20);
        let features = compute(&spec, &panel).unwrap();
        let tape = Tape::new(&panel, &features.factors);
        Fixture {
            spec,
            features,
            tape,
            rules: PortfolioRules::from_config(&PortfolioConfig::default()),
        }
    }

    fn market(&self) -> PortfolioMarket<'_> {
        PortfolioMarket {
            spec: &self.spec,
            features: &self.features,
            tape: &self.tape,
            rules: self.rules,
        }
    }
}

#[test]
fn buying_equal_weight_then_holding_is_the_baseline() {
    let f = Fixture::new();
    let mut first = true;
    let ev = evaluate(f.market(), 0..f.tape.n_bars, 5, |_| {
        let a = if first { 4 } else { 0 };
        first = false;
        a
    })
    .unwrap();
    assert_eq!(ev.bars, f.spec.first_exec_bar()..f.tape.n_bars);
    assert_eq!(ev.model, ev.equal_weight);
    assert_eq!(ev.excess_return(), 0.0);
    assert_eq!(ev.ts.len(), ev.model.equity.len());
    assert_eq!(ev.ts.len(), ev.bars.len() + 1);
    let eq = &ev.equal_weight;
    // From cash into four equal legs: turnover 1; each leg of P/4 pays its slippage draw,
    // the 0.02 % spread and 0.01 · √¼ = 0.5 % impact.
    assert!((eq.turnover - 1.0).abs() < 1e-9, "{}", eq.turnover);
    assert!(eq.costs > 0.0052 && eq.costs < 0.0057, "{}", eq.costs);
    assert!(eq.max_drawdown > 0.0 && eq.sharpe != 0.0);
    assert_eq!(ev.actions[4] + ev.actions[0], ev.bars.len());
    assert_eq!(ev.actions[4], 1);
    let last = *eq.equity.last().unwrap();
    assert!((eq.total_return - (last - 1.0)).abs() < 1e-12);
}

#[test]
fn full_cash_earns_nothing_and_pays_nothing() {
    let f = Fixture::new();
    let ev = evaluate(f.market(), 0..f.tape.n_bars, 5, |_| 1).unwrap();
    let m = &ev.model;
    assert_eq!((m.total_return, m.turnover, m.costs), (0.0, 0.0, 0.0));
    assert_eq!((m.sharpe, m.max_drawdown, m.win_rate), (0.0, 0.0, 0.0));
    assert_eq!(ev.actions[1], ev.bars.len());
    assert_eq!(ev.action_shares()[1], ("FULL_CASH", 1.0));
    assert_eq!(ev.mean_reward, 0.0);
    assert!(ev.excess_return() != 0.0);
}

#[test]
fn the_policy_sees_the_layouts_observation() {
    let f = Fixture::new();
    let (w, sd) = (f.spec.window, f.spec.step_dim());
    let start = f.spec.first_exec_bar() + 10;
    let mut t = start;
    let mut calls = 0;
    let ev = evaluate(f.market(), start..start + 30, 5, |obs| {
        assert_eq!(obs.len(), f.spec.obs_dim());
        // Rows t − window ..= t − 1: observations end at the bar before execution.
        assert_eq!(&obs[..w * sd], &f.features.values[(t - w) * sd..t * sd]);
        let tail = &obs[w * sd..];
        if calls == 0 {
            assert_eq!(
                tail,
                &[0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
                "all cash at the start"
            );
        } else {
            let invested: f32 = tail[..4].iter().sum();
            assert!((invested + tail[4] - 1.0).abs() < 1e-4, "{tail:?}");
        }
        t += 1;
        calls += 1;
        // Cycle through the regimes.
        calls % N_REGIMES
    })
    .unwrap();
    assert_eq!(calls, 30);
    assert!(ev.actions.iter().all(|&c| c >= 2), "{:?}", ev.actions);
    assert!(ev.model.turnover > 1.0 && ev.model.costs > 0.0);
    assert!(ev.mean_reward.is_finite());
}

#[test]
fn an_action_outside_the_regimes_is_an_error() {
    let f = Fixture::new();
    let e = evaluate(f.market(), 0..f.tape.n_bars, 5, |_| 12).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("not one of the 12 portfolio regimes"), "{msg}");
    assert!(msg.contains("at bar 28"), "{msg}");
    let e = evaluate(f.market(), 0..10, 5, |_| 0).unwrap_err();
    assert!(format!("{e:#}").contains("no bar to trade"), "{e:#}");
}

#[test]
fn validation_metrics_read_daily_returns_and_count_rebalances() {
    use chrono::TimeZone;
    let day = |d| Utc.with_ymd_and_hms(2024, 3, d, 21, 0, 0).unwrap();
    let stats = |equity: Vec<f64>| PortfolioStats {
        total_return: equity[equity.len() - 1] - 1.0,
        sharpe: 1.5,
        max_drawdown: 0.01,
        turnover: 2.0,
        costs: 0.001,
        win_rate: 2.0 / 3.0,
        equity,
    };
    let mut actions = [0usize; N_REGIMES];
    actions[Regime::Hold.index()] = 1;
    actions[Regime::Momentum.index()] = 2;
    let ev = PortfolioEvaluation {
        bars: 10..13,
        ts: vec![day(4), day(5), day(6), day(7)],
        model: stats(vec![1.0, 1.02, 1.01, 1.03]),
        equal_weight: stats(vec![1.0, 1.0, 1.0, 1.0]),
        actions,
        mean_reward: 0.0,
    };
    let evidence = Evidence {
        min_trades: 2,
        min_days: 3,
    };
    let m = ev.validation_metrics(crate::market::AssetClass::Equity, 3, evidence);
    // Up days +2 % and +1.98 %, one down day −0.98 %: PF = (0.02 + 0.0198) / 0.0098.
    let (up, down) = (0.02 + (1.03 / 1.01 - 1.0), 1.0 - 1.01 / 1.02);
    assert!(
        (m.profit_factor - up / down).abs() < 1e-9,
        "{}",
        m.profit_factor
    );
    assert_eq!((m.trades, m.days), (2, 3));
    assert!((m.hold_pct - 1.0 / 3.0).abs() < 1e-12);
    assert!((m.consistency - 2.0 / 3.0).abs() < 1e-12);
    assert!(!m.insufficient);
    let block = m.portfolio.as_ref().unwrap();
    assert_eq!(block.regimes.len(), N_REGIMES);
    assert_eq!(block.regimes[Regime::Momentum.index()].steps, 2);
    assert_eq!(block.equal_weight.total_return, 0.0);
    // One rebalance fewer than the evidence asks for: reported, never scored.
    actions[Regime::Momentum.index()] = 1;
    actions[Regime::Hold.index()] = 2;
    let thin = PortfolioEvaluation { actions, ..ev };
    assert!(
        thin.validation_metrics(crate::market::AssetClass::Equity, 3, evidence)
            .insufficient
    );
}
