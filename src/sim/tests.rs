use super::*;
use crate::config::{BacktestConfig, EnvConfig, EnvCosts};
use crate::market::AssetClass;

/// The training rules at the seed's own 0.1 % equity slippage (the figures below assume it).
fn rules() -> Rules {
    let env = EnvConfig {
        costs: EnvCosts::Own,
        ..EnvConfig::default()
    };
    Rules::training(&env, &BacktestConfig::default(), AssetClass::Equity)
}

#[test]
fn seed_position_sizing() {
    // min(acct·0.7·0.15, acct·0.2) = 10.5 % of the account at full size.
    assert!((rules().full_position - 0.105).abs() < 1e-12);
    let crypto = Rules::training(
        &EnvConfig::default(),
        &BacktestConfig::default(),
        AssetClass::Crypto,
    );
    assert!(!crypto.allow_short);
}

#[test]
fn training_pays_the_backtests_costs_unless_told_its_own() {
    let bt = BacktestConfig {
        slippage: 0.0007,
        commission: 2.0,
        initial_cash: 50_000.0,
        position_size: 0.2,
        ..BacktestConfig::default()
    };
    // 0.07 % slippage + $2 on a $10,000 full-size order = 0.09 % a unit, on either class.
    for class in [AssetClass::Equity, AssetClass::Crypto] {
        let r = Rules::training(&EnvConfig::default(), &bt, class);
        assert!(
            (r.slippage - 0.0009).abs() < 1e-15,
            "{class:?}: {}",
            r.slippage
        );
        assert_eq!(r.commission, 0.0);
    }
    let own = EnvConfig {
        costs: EnvCosts::Own,
        ..EnvConfig::default()
    };
    assert_eq!(
        Rules::training(&own, &bt, AssetClass::Equity).slippage,
        0.001
    );
    assert_eq!(
        Rules::training(&own, &bt, AssetClass::Crypto).slippage,
        0.0025
    );
}

#[test]
fn levels_follow_actions() {
    assert_eq!(target_level(0.0, 2, true), 0.5);
    assert_eq!(target_level(0.75, 3, true), 1.0);
    assert_eq!(target_level(0.25, 6, true), -0.5);
    assert_eq!(target_level(0.25, 6, false), 0.0);
    assert_eq!(target_level(-0.5, 7, true), 0.0);
    assert_eq!(target_level(-0.5, 0, true), -0.5);
}

#[test]
fn long_trade_pays_slippage_and_earns_the_move() {
    let r = rules();
    let mut a = Account::new(&r);
    // BUY 100 % in steps: 75 then 25.
    let rew = a.step_action(&r, 3, 100.0, 100.0, 1.0);
    let qty = 0.75 * 0.105 * 1000.0 / 100.0;
    assert!((a.qty - qty).abs() < 1e-12);
    assert!((rew - (-(qty * 100.0 * 0.001) / 1000.0)).abs() < 1e-12);
    let eq = a.equity;
    let rew = a.step_action(&r, 0, 100.0, 110.0, 1.0);
    assert!((a.equity - (eq + qty * 10.0)).abs() < 1e-9);
    assert!((rew - qty * 10.0 / eq).abs() < 1e-12);
}

#[test]
fn short_profits_when_price_falls() {
    let r = rules();
    let mut a = Account::new(&r);
    a.step_action(&r, 6, 100.0, 90.0, 1.0);
    assert!(a.qty < 0.0);
    assert!(a.equity > 1000.0 - 1.0);
    assert!(a.open_return(90.0) > 0.0);
    a.step_action(&r, 7, 90.0, 80.0, 1.0);
    assert_eq!(a.qty, 0.0);
    let flat = a.equity;
    a.step_action(&r, 0, 80.0, 50.0, 1.0);
    assert_eq!(a.equity, flat, "flat account does not move");
}

#[test]
fn risk_gates_stop_take_halve_and_halt() {
    let bt = BacktestConfig::default();
    let tr = TradingRules {
        confidence_threshold: 0.0,
        ..TradingRules::from_config(&crate::config::Config::default())
    };
    let r = Rules::backtest(&bt, &EnvConfig::default(), AssetClass::Equity);
    let mut a = Account::new(&r);
    let mut halted = false;
    let decide = |acct: &Account, action, price, halted: &mut bool| {
        let dd = acct.drawdown();
        decide::propose(&tr, acct, action, 1.0, price, dd, halted, true)
    };
    a.rebalance(&r, 1.0, 100.0, 1.0);
    assert_eq!(decide(&a, 0, 97.9, &mut halted).risk, Some("stop-loss"));
    assert_eq!(decide(&a, 0, 104.1, &mut halted).risk, Some("take-profit"));
    assert_eq!(decide(&a, 0, 100.5, &mut halted).risk, None);
    // Past 10 % drawdown sizes halve; past 15 % new entries stop for good.
    let mut b = Account::new(&r);
    b.peak = b.equity / 0.88;
    assert_eq!(decide(&b, 1, 100.0, &mut halted).size_mult, 0.5);
    b.peak = b.equity / 0.80;
    let d = decide(&b, 1, 100.0, &mut halted);
    assert_eq!((d.level, d.risk), (0.0, Some("drawdown halt")));
    b.peak = b.equity;
    assert!(
        decide(&b, 1, 100.0, &mut halted).risk.is_some(),
        "halt is sticky"
    );
}

#[test]
fn step_outcome_records_trades_exits_and_costs() {
    use super::reward::StepOutcome;
    let r = rules();
    let mut a = Account::new(&r);
    // BUY 50 at 100, the bar closes at 101.
    let o = a.step_outcome(&r, 2, 100.0, 101.0);
    let qty = 0.5 * 0.105 * 1000.0 / 100.0;
    let cost = qty * 100.0 * 0.001;
    assert_eq!(o.level, 0.5);
    assert!((o.price_return - 0.01).abs() < 1e-12);
    assert!((o.cost - cost / 1000.0).abs() < 1e-15);
    assert!((o.pnl - (qty * 1.0 - cost) / 1000.0).abs() < 1e-12);
    assert_eq!(o.exit_return, None);
    // Entry at 100.1 (slippage): open return at 101 is 101/100.1 − 1.
    assert!((o.open_return - (101.0 / 100.1 - 1.0)).abs() < 1e-12);
    // CLOSE at 105: the exit's return is measured at 105 against the 100.1 entry.
    let o: StepOutcome = a.step_outcome(&r, 7, 105.0, 104.0);
    assert_eq!(o.level, 0.0);
    assert!((o.exit_return.unwrap() - (105.0 / 100.1 - 1.0)).abs() < 1e-12);
    assert_eq!(o.open_return, 0.0);
    // SELL 75 from flat: a short, and HOLD keeps it without an exit.
    a.step_outcome(&r, 6, 100.0, 100.0);
    let o = a.step_outcome(&r, 0, 100.0, 97.0);
    assert_eq!(o.exit_return, None);
    assert!(o.open_return > 0.0, "a short gains when the price falls");
    assert_eq!(o.cost, 0.0);
}
