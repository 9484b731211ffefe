use super::*;
use crate::rng::Rng;
use crate::sim::portfolio::N_REGIMES;
use chrono::TimeZone;

const CAPITAL: CapitalRules = CapitalRules {
    cash_buffer: 0.30,
    max_position: 0.20,
    max_exposure: 0.80,
    min_order_value: 1.0,
};

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap()
}

/// Random scores for `m` members: some without a lookback yet.
fn scores(rng: &mut Rng, m: usize) -> Vec<Option<FactorScores>> {
    (0..m)
        .map(|_| {
            (rng.uniform() > 0.15).then(|| FactorScores {
                momentum: rng.normal() * 0.1,
                volatility: 0.01 + rng.uniform() * 0.05,
                low_vol: rng.uniform(),
                quality: rng.normal(),
                size: 0.01 + rng.uniform(),
            })
        })
        .collect()
}

/// Random closes for `m` members: some masked.
fn prices(rng: &mut Rng, m: usize) -> Vec<Option<f64>> {
    (0..m)
        .map(|_| (rng.uniform() > 0.2).then(|| 5.0 + rng.uniform() * 200.0))
        .collect()
}

fn decision(rng: &mut Rng, m: usize) -> PortfolioDecision {
    let action = rng.below(N_REGIMES);
    PortfolioDecision::new(at(), action, 1.0, 0.0, &scores(rng, m), prices(rng, m)).unwrap()
}

#[test]
fn the_threshold_holds_exactly_the_choices_below_it() {
    let mut rng = Rng::new(1);
    for _ in 0..500 {
        let m = 1 + rng.below(6);
        let (conf, thr) = (rng.uniform() as f32, rng.uniform() as f32);
        let action = rng.below(N_REGIMES);
        let d = PortfolioDecision::new(at(), action, conf, thr, &scores(&mut rng, m), {
            prices(&mut rng, m)
        })
        .unwrap();
        assert_eq!(d.chosen.index(), action);
        assert_eq!(d.regime == Regime::Hold, conf < thr || action == 0);
        assert_eq!(d.held(), conf < thr && action != 0);
        assert_eq!(d.targets.is_none(), d.regime == Regime::Hold);
        assert_eq!(d.hold_note(thr).starts_with("held"), d.held());
        // Only members with a bar and a lookback get weight.
        if let Some(w) = &d.targets {
            for i in 0..m {
                if d.prices[i].is_none() {
                    assert_eq!(w.symbols[i], 0.0, "{d:?}");
                }
            }
        }
    }
    assert!(PortfolioDecision::new(at(), 12, 1.0, 0.0, &[], Vec::new()).is_err());
}

#[test]
fn the_drawdown_rules_halve_then_latch_a_sticky_halt() {
    let risk = RiskRules {
        stop_loss: 0.02,
        take_profit: 0.04,
        drawdown_halve: 0.10,
        drawdown_halt: 0.15,
    };
    let mut halted = false;
    assert_eq!(drawdown_latch(&risk, 0.05, &mut halted), (1.0, false));
    assert_eq!(drawdown_latch(&risk, 0.12, &mut halted), (0.5, false));
    assert_eq!(drawdown_latch(&risk, 0.15, &mut halted), (0.5, true));
    assert!(halted);
    // Sticky: a recovery keeps the latch, and it is reported once.
    assert_eq!(drawdown_latch(&risk, 0.0, &mut halted), (1.0, false));
    assert!(halted);
}

/// Without gates the rebalance reaches the targets: every tradable member ends at its weight of
/// the deployable value, masked members keep what they hold, sells go first, and nothing under a
/// dollar is sent.
#[test]
fn a_plain_rebalance_reaches_the_targets_sells_first() {
    let mut rng = Rng::new(2);
    for _ in 0..500 {
        let m = 1 + rng.below(8);
        let d = decision(&mut rng, m);
        let current: Vec<f64> = (0..m).map(|_| rng.uniform() * 50.0).collect();
        let marks: Vec<f64> = (0..m)
            .map(|i| d.prices[i].unwrap_or(10.0 + rng.uniform()))
            .collect();
        let equity = 10_000.0 + rng.uniform() * 90_000.0;
        let frozen = frozen_value(&d.prices, &current, &marks);
        let mult = if rng.uniform() < 0.3 { 0.5 } else { 1.0 };
        let plan = rebalance(&d, &current, equity - frozen, mult, &vec![false; m], None);
        let Some(w) = &d.targets else {
            assert_eq!(plan, Plan::default());
            continue;
        };
        let mut after = current.clone();
        for o in &plan.orders {
            assert!(d.prices[o.member].is_some(), "a masked member traded");
            assert_eq!(o.current, current[o.member]);
            assert!(((o.target - o.current) * o.price).abs() >= MIN_CHANGE_VALUE);
            after[o.member] = o.target;
        }
        let sells = plan.orders.iter().take_while(|o| o.target < o.current);
        assert!(plan
            .orders
            .iter()
            .skip(sells.count())
            .all(|o| o.target >= o.current));
        for i in 0..m {
            match d.prices[i] {
                None => assert_eq!(after[i], current[i]),
                Some(p) => {
                    let want = w.symbols[i] * (equity - frozen).max(0.0) * mult;
                    assert!((after[i] * p - want).abs() < MIN_CHANGE_VALUE + 1e-9);
                }
            }
        }
        assert_eq!(plan.notes.len(), m, "one word per member");
    }
}

/// With gates: no member grows past the position cap or while cooling, nothing grows under a
/// block, the batch stays within the allocation, and exits always pass.
#[test]
fn gated_rebalances_keep_the_capital_rules() {
    let mut rng = Rng::new(3);
    for _ in 0..500 {
        let m = 1 + rng.below(8);
        let d = decision(&mut rng, m);
        let current: Vec<f64> = (0..m).map(|_| rng.uniform() * 20.0).collect();
        let marks: Vec<f64> = (0..m).map(|i| d.prices[i].unwrap_or(10.0)).collect();
        let held: f64 = current.iter().zip(&marks).map(|(q, p)| q * p).sum();
        let equity = held + 5_000.0 + rng.uniform() * 50_000.0;
        let frozen = frozen_value(&d.prices, &current, &marks);
        let cooling: Vec<bool> = (0..m).map(|_| rng.uniform() < 0.2).collect();
        let blocked = rng.uniform() < 0.2;
        let situation = Situation {
            equity,
            buying_power: 2.0 * equity - held,
            other_exposure: frozen,
            block: blocked.then(|| "paused".to_string()),
        };
        let g = Gates {
            rules: &CAPITAL,
            situation: &situation,
            cooling: &cooling,
            flip_in_one_order: true,
        };
        let plan = rebalance(&d, &current, equity - frozen, 1.0, &vec![false; m], Some(g));
        let mut after = current.clone();
        for o in &plan.orders {
            let grows = o.target > o.current;
            assert!(!(grows && (blocked || cooling[o.member])), "{o:?}");
            if grows {
                let cap = CAPITAL.max_position * equity / o.price;
                assert!(o.target <= cap.max(o.current) + 1e-9, "{o:?} over the cap");
            }
            after[o.member] = o.target;
        }
        let gross = |q: &[f64]| -> f64 { q.iter().zip(&marks).map(|(q, p)| q * p).sum() };
        let grew: f64 = (0..m)
            .map(|i| ((after[i] - current[i]) * marks[i]).max(0.0))
            .sum();
        if grew > 0.0 {
            assert!(
                gross(&after) <= CAPITAL.gross_cap(equity).max(gross(&current)) + 1e-6,
                "{} over the allocation",
                gross(&after)
            );
        }
    }
}

#[test]
fn a_member_with_an_open_order_or_no_bar_sits_out() {
    let scores = vec![
        Some(FactorScores {
            momentum: 0.1,
            volatility: 0.02,
            low_vol: 0.5,
            quality: 1.0,
            size: 0.1,
        });
        3
    ];
    let d = PortfolioDecision::new(
        at(),
        Regime::EqualWeight.index(),
        1.0,
        0.0,
        &scores,
        vec![Some(10.0), None, Some(20.0)],
    )
    .unwrap();
    let current = [0.0, 7.0, 0.0];
    let frozen = frozen_value(&d.prices, &current, &[10.0, 30.0, 20.0]);
    assert_eq!(frozen, 210.0);
    let plan = rebalance(
        &d,
        &current,
        1000.0 - frozen,
        1.0,
        &[true, false, false],
        None,
    );
    assert_eq!(plan.orders.len(), 1);
    assert_eq!(plan.orders[0].member, 2);
    // Half of the 790 deployable over the two eligible members, at $20.
    assert!((plan.orders[0].target - 395.0 / 20.0).abs() < 1e-12);
    let notes: Vec<&str> = plan.notes.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(
        notes,
        [
            "blocked: an earlier order is still open",
            "masked: no bar at this time",
            "ok"
        ]
    );
}
