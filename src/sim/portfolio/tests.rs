use super::*;
use crate::features::portfolio::FactorScores;

/// The 3-symbol example, lookback 4 (5 closes each). By hand, with returns r:
/// - A: r = +10 %, −10 %, +10 %, +10 %: momentum 0.1979, vol 0.1, quality 0.5, price 119.79;
/// - B: r = +1 %, −1 %, +1 %, 0: momentum 0.009899, vol √(2.75e-4 / 3) = 0.0095743,
///   quality 0.0025 / 0.0095743 = 0.26112, price 50.49495;
/// - C: r = +6 %, −5 %, +6 %, −3 %: momentum 0.0353974, vol √(0.0102 / 3) = 0.0583095,
///   quality 0.01 / 0.0583095 = 0.17150, price 10.353974.
///
/// So momentum ranks A > C > B, calm (low-vol) B > C > A, quality A > B > C: the top halves
/// (⌈3/2⌉ = 2) differ — {A, C}, {B, C}, {A, B} — and RISK_ON's ⌈0.9⌉ = 1 is A alone.
fn example() -> Vec<Option<FactorScores>> {
    [
        [100.0, 110.0, 99.0, 108.9, 119.79],
        [50.0, 50.5, 49.995, 50.49495, 50.49495],
        [10.0, 10.6, 10.07, 10.6742, 10.353974],
    ]
    .iter()
    .map(|c| FactorScores::from_closes(c))
    .collect()
}

fn assert_weights(regime: Regime, symbols: [f64; 3], cash: f64) {
    let w = target_weights(regime, &example(), &[true; 3]).unwrap();
    for (got, want) in w.symbols.iter().zip(symbols) {
        assert!((got - want).abs() < 1e-12, "{regime:?}: {w:?}");
    }
    assert!((w.cash - cash).abs() < 1e-12, "{regime:?}: {w:?}");
}

#[test]
fn each_regime_on_three_symbols() {
    assert_eq!(target_weights(Regime::Hold, &example(), &[true; 3]), None);
    let third = 1.0 / 3.0;
    assert_weights(Regime::FullCash, [0.0; 3], 1.0);
    assert_weights(Regime::Defensive, [0.5 * third; 3], 0.5);
    assert_weights(Regime::LightCash, [0.25; 3], 0.25);
    assert_weights(Regime::EqualWeight, [third; 3], 0.0);
    assert_weights(Regime::Momentum, [0.5, 0.0, 0.5], 0.0);
    assert_weights(Regime::LowVol, [0.0, 0.5, 0.5], 0.0);
    assert_weights(Regime::Quality, [0.5, 0.5, 0.0], 0.0);
    // Proportional to 1 / price: 1/119.79 : 1/50.49495 : 1/10.353974.
    let inv = [1.0 / 119.79, 1.0 / 50.49495, 1.0 / 10.353974];
    let sum: f64 = inv.iter().sum();
    assert_weights(
        Regime::SizeSmall,
        [inv[0] / sum, inv[1] / sum, inv[2] / sum],
        0.0,
    );
    assert_weights(Regime::SafeMomentum, [0.35, 0.0, 0.35], 0.3);
    assert_weights(Regime::SafeQuality, [0.35, 0.35, 0.0], 0.3);
    assert_weights(Regime::RiskOn, [1.0, 0.0, 0.0], 0.0);
    assert_eq!(Regime::ALL.len(), N_REGIMES);
    for (i, r) in Regime::ALL.iter().enumerate() {
        assert_eq!((r.index(), Regime::from_index(i)), (i, Some(*r)));
        assert_eq!(r.name(), REGIME_NAMES[i]);
    }
    assert_eq!(Regime::from_index(12), None);
}

#[test]
fn regimes_rank_only_eligible_symbols() {
    // A not eligible: two left, top half is one.
    let w = target_weights(Regime::Momentum, &example(), &[false, true, true]).unwrap();
    assert_eq!(w.symbols, vec![0.0, 0.0, 1.0]);
    let w = target_weights(Regime::EqualWeight, &example(), &[false, true, true]).unwrap();
    assert_eq!(w.symbols, vec![0.0, 0.5, 0.5]);
    // Eligible but without scores counts as not eligible.
    let mut s = example();
    s[2] = None;
    let w = target_weights(Regime::LowVol, &s, &[true; 3]).unwrap();
    assert_eq!(w.symbols, vec![0.0, 1.0, 0.0]);
    // Nobody eligible: all cash, whatever the regime (HOLD still holds).
    for r in Regime::ALL.iter().skip(1) {
        assert_eq!(
            target_weights(*r, &example(), &[false; 3]),
            Some(Weights::all_cash(3))
        );
    }
    assert_eq!(target_weights(Regime::Hold, &example(), &[false; 3]), None);
    // The same 12 on 300 symbols: weights sum to 1 and the top-k sizes scale.
    let many: Vec<Option<FactorScores>> = (0..300)
        .map(|i| {
            let c: Vec<f64> = (0..21)
                .map(|k| 10.0 + i as f64 + (k * (i % 7)) as f64 * 0.1)
                .collect();
            FactorScores::from_closes(&c)
        })
        .collect();
    for r in Regime::ALL.iter().skip(1) {
        let w = target_weights(*r, &many, &[true; 300]).unwrap();
        let total: f64 = w.symbols.iter().sum::<f64>() + w.cash;
        assert!((total - 1.0).abs() < 1e-9, "{r:?}");
        assert!(w.symbols.iter().all(|x| *x >= 0.0));
    }
    let held = |r| {
        target_weights(r, &many, &[true; 300])
            .unwrap()
            .symbols
            .iter()
            .filter(|w| **w > 0.0)
            .count()
    };
    assert_eq!((held(Regime::Momentum), held(Regime::RiskOn)), (150, 90));
}

fn rules() -> PortfolioRules {
    PortfolioRules {
        initial_cash: 100_000.0,
        frictions: Frictions {
            slippage_max: 0.0005,
            spread: 0.0002,
            impact: 0.01,
        },
        reward_scale: 100.0,
    }
}

#[test]
fn frictions_cost_what_the_seed_says() {
    let f = rules().frictions;
    // 50,000 traded out of 100,000 at a 0.02 % slippage draw:
    // slippage 10, spread 10, impact 0.01 · √0.5 · 50,000 = 353.5534.
    let c = f.cost(50_000.0, 100_000.0, 0.0002);
    assert!((c.slippage - 10.0).abs() < 1e-9);
    assert!((c.spread - 10.0).abs() < 1e-9);
    assert!((c.impact - 353.553_390_593_273_8).abs() < 1e-6);
    assert_eq!(f.cost(0.0, 100_000.0, 0.0004).total(), 0.0);
    let mut draws = vec![0.0; 1000];
    f.draw_slippage(&mut crate::rng::Rng::new(1), &mut draws);
    assert!(draws.iter().all(|s| (0.0..=0.0005).contains(s)));
    let mean = draws.iter().sum::<f64>() / 1000.0;
    assert!((mean - 0.00025).abs() < 0.00002, "{mean}");
}

#[test]
fn rebalance_pays_each_friction_and_freezes_untradable_holdings() {
    let r = rules();
    let mut a = PortfolioAccount::new(&r, 2);
    let ew = Weights {
        symbols: vec![0.5, 0.5],
        cash: 0.0,
    };
    // From cash into 50/50 at 100 and 50: each leg trades 50,000 of 100,000.
    let reb = a.rebalance(
        &r.frictions,
        &ew,
        &[100.0, 50.0],
        &[true, true],
        &[0.0002, 0.0005],
    );
    assert_eq!(a.qty, vec![500.0, 1000.0]);
    // Legs cost 10 + 10 + 353.5534 and 25 + 10 + 353.5534.
    assert!((reb.cost.total() - 762.106_781_186_547_7).abs() < 1e-6);
    assert!((reb.cost.slippage - 35.0).abs() < 1e-9);
    assert!((reb.traded - 100_000.0).abs() < 1e-9);
    assert!(
        (a.cash + 762.106_781_186_547_7).abs() < 1e-6,
        "costs come out of cash"
    );
    a.mark(&[100.0, 50.0]);
    assert!((a.equity - 99_237.893_218_813_46).abs() < 1e-6);

    // All to cash at 110 and 45 (value 99,237.8932): legs of 55,000 and 45,000 pay
    // 55,000 · (0.0001 + 0.0002 + 0.01 · √(55,000 / 99,237.8932)) = 425.9541 and
    // 45,000 · (0.0003 + 0.0002 + 0.01 · √(45,000 / 99,237.8932)) = 325.5261.
    let reb = a.rebalance(
        &r.frictions,
        &Weights::all_cash(2),
        &[110.0, 45.0],
        &[true, true],
        &[0.0001, 0.0003],
    );
    assert!((reb.value_before - 99_237.893_218_813_45).abs() < 1e-6);
    assert!((reb.cost.total() - (425.954_139_725_902_8 + 325.526_076_519_598_9)).abs() < 1e-6);
    assert_eq!(a.qty, vec![0.0, 0.0]);
    assert!((a.cash - 98_486.413_002_567_95).abs() < 1e-6);

    // A holding without a bar stays; the targets divide the rest of the portfolio.
    let mut b = PortfolioAccount::new(&r, 2);
    b.cash = 50_000.0;
    b.qty = vec![0.0, 1000.0];
    let reb = b.rebalance(
        &r.frictions,
        &ew,
        &[100.0, 50.0],
        &[true, false],
        &[0.0, 0.0],
    );
    assert_eq!(b.qty[1], 1000.0, "frozen");
    // Deployable 100,000 − 50,000: half of it in symbol 0.
    assert!((b.qty[0] - 250.0).abs() < 1e-12);
    assert!((reb.traded - 25_000.0).abs() < 1e-9);
}

#[test]
fn account_tail_reports_weights_cash_pnl_and_drawdown() {
    let r = rules();
    let mut a = PortfolioAccount::new(&r, 2);
    a.cash = 40_000.0;
    a.qty = vec![300.0, 0.0];
    a.peak = 125_000.0;
    a.mark(&[200.0, 10.0]);
    assert_eq!(a.equity, 100_000.0);
    let mut tail = Vec::new();
    a.tail(&[200.0, 10.0], &mut tail);
    assert_eq!(tail.len(), 5);
    assert!((tail[0] - 0.6).abs() < 1e-7 && tail[1] == 0.0);
    assert!((tail[2] - 0.4).abs() < 1e-7);
    assert!(tail[3].abs() < 1e-7, "no P&L");
    assert!((tail[4] - 0.2).abs() < 1e-7, "20 % below the peak");
}

mod tape {
    use super::*;
    use crate::data::Panel;
    use crate::features::portfolio::FactorTable;
    use crate::market::{Bar, Calendar, Symbol, Timeframe};
    use chrono::NaiveDate;

    /// Two symbols over eight March 2024 sessions; B has no bar on the sixth (row 5).
    fn panel() -> Panel {
        let days = [4, 5, 6, 7, 8, 11, 12, 13];
        let bar = |d: u32, open: f64, close: f64| Bar {
            ts: Calendar::Nyse
                .session(NaiveDate::from_ymd_opt(2024, 3, d).unwrap())
                .unwrap()
                .open,
            open,
            high: open.max(close) + 1.0,
            low: open.min(close) - 1.0,
            close,
            volume: 1.0,
        };
        let a: Vec<Bar> = days
            .iter()
            .enumerate()
            .map(|(k, &d)| bar(d, 100.0 + k as f64, 101.0 + k as f64))
            .collect();
        let b: Vec<Bar> = days
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != 5)
            .map(|(k, &d)| bar(d, 50.0 - k as f64, 49.5 - k as f64))
            .collect();
        let syms = [Symbol::equity("AAA"), Symbol::equity("BBB")];
        Panel::align(&syms, Timeframe::Day, &[a, b], None).unwrap()
    }

    #[test]
    fn missing_bars_freeze_holdings_and_leave_the_universe() {
        let p = panel();
        let tape = Tape::new(&p, &FactorTable::compute(&p, 2));
        // Scores need closes t−2..=t: B has them at rows 2–4 only (row 5 is missing), so B is
        // eligible to execute at rows 3 and 4; A from row 3 on.
        let elig = |i: usize| {
            (0..8)
                .filter(|&t| tape.eligible_at(t)[i])
                .collect::<Vec<_>>()
        };
        assert_eq!(elig(0), vec![3, 4, 5, 6, 7]);
        assert_eq!(elig(1), vec![3, 4]);
        assert!(!tape.tradable_at(5)[1] && tape.tradable_at(6)[1]);
        // B at row 5: valued at its last close (row 4: 45.5), never a made-up bar.
        assert_eq!(tape.marks(5)[1], 45.5);
        assert_eq!(tape.exec_prices(5)[1], 45.5);
        assert_eq!(tape.exec_prices(6)[1], 44.0, "the open of row 6");

        let r = rules();
        let mut acct = PortfolioAccount::new(&r, 2);
        let draws = [0.0001, 0.0004];
        let out = tape
            .step(&mut acct, &r, 4, Regime::EqualWeight.index(), &draws)
            .unwrap();
        let reb = out.rebalance.unwrap();
        // Bought at the open of row 4 (104 and 46), marked at its close (105 and 45.5).
        assert!((acct.qty[0] - 50_000.0 / 104.0).abs() < 1e-9);
        assert!((acct.qty[1] - 50_000.0 / 46.0).abs() < 1e-9);
        let expect = 100_000.0 - reb.cost.total() + acct.qty[0] * 1.0 - acct.qty[1] * 0.5;
        assert!((out.equity - expect).abs() < 1e-6);
        assert!((out.reward - (expect / 100_000.0).ln() * 100.0).abs() < 1e-9);

        // Row 5: B cannot trade; EQUAL_WEIGHT over the eligible (A alone) takes the rest.
        let b_qty = acct.qty[1];
        let before = acct.equity;
        let out = tape
            .step(&mut acct, &r, 5, Regime::EqualWeight.index(), &draws)
            .unwrap();
        assert_eq!(acct.qty[1], b_qty, "frozen");
        let reb = out.rebalance.unwrap();
        let deployable = reb.value_before - b_qty * 45.5;
        assert!((acct.qty[0] - deployable / 105.0).abs() < 1e-9);
        assert!((out.reward - (acct.equity / before).ln() * 100.0).abs() < 1e-9);
        // HOLD trades nothing and costs nothing.
        let cash = acct.cash;
        let out = tape
            .step(&mut acct, &r, 6, Regime::Hold.index(), &draws)
            .unwrap();
        assert_eq!((out.rebalance, acct.cash), (None, cash));

        let e = tape.step(&mut acct, &r, 6, 12, &draws).unwrap_err();
        assert!(format!("{e}").contains("not one of the 12"), "{e}");
        assert!(tape.step(&mut acct, &r, 8, 0, &draws).is_err());
        assert_eq!(tape.exec_range(4, 0..8).unwrap(), 4..8);
        assert!(tape.exec_range(4, 0..4).is_err());
    }
}
