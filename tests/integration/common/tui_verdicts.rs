//! The verdict parts of the TUI fixture: the rules a walk-forward traded by, the gates' checks
//! against the baselines, and a seed group's gate. A child module of `tui_fixture`.

use super::{feed, graded, GATE, GATE_REVIEW};
use quantdeck::eval::gate::{BaselineCheck, SeedGrade};
use quantdeck::eval::walkforward::GateVerdict;
use quantdeck::eval::{
    Baseline, GateClass, GateFlag, GateResult, MomentumRule, RawFigures, ValidationMetrics,
};
use quantdeck::jobs::{Event, JobKind, JobStatus};
use quantdeck::sim::gates::CapitalRules;
use quantdeck::sim::{RiskRules, TradingRules};
use quantdeck::tui::App;

/// The rules the fixture's walk-forward traded by (the defaults' values, written out so a
/// change of default does not move the snapshots).
pub fn walk_rules() -> TradingRules {
    TradingRules {
        confidence_threshold: 0.40,
        portfolio_confidence_threshold: 0.0,
        position_size: 0.10,
        risk: RiskRules {
            stop_loss: 0.02,
            take_profit: 0.04,
            drawdown_halve: 0.10,
            drawdown_halt: 0.20,
        },
        capital: CapitalRules {
            cash_buffer: 0.30,
            max_position: 0.20,
            max_exposure: 0.80,
            min_order_value: 1.0,
        },
        daily_loss_limit: 0.05,
        cooldown_s: 60,
        initial_cash: 100_000.0,
        slippage: 0.0005,
        commission: 1.0,
    }
}

/// The verdict of the fixture's gate on `TRAIN` (APPROVED, no flags).
pub fn approved() -> GateVerdict {
    GateVerdict {
        class: GateClass::Approved,
        flags: Vec::new(),
    }
}

fn figures(total_return: f64, sharpe: f64, max_drawdown: f64, trades: usize) -> RawFigures {
    RawFigures {
        total_return,
        sharpe,
        max_drawdown,
        trades,
    }
}

/// The baseline check of a gate: the newest beats both rules (its raw policy beside it); the
/// REVIEW one trails momentum (so it gets BELOW_BASELINE).
pub fn baseline_check(id: &str, m: &ValidationMetrics) -> Option<BaselineCheck> {
    let model = figures(m.total_return, m.sharpe, m.max_drawdown, m.trades);
    let (raw, momentum, buy_hold, source) = match id {
        GATE => (
            Some(figures(0.091, 0.77, 0.061, 88)),
            figures(0.031, 0.55, 0.04, 12),
            figures(0.052, 0.61, 0.07, 1),
            "runs/train-20240601-091500-syna/best.safetensors re-run on the validation bars as paper trades it",
        ),
        GATE_REVIEW => (
            None,
            figures(0.045, 0.52, 0.05, 14),
            figures(0.012, 0.20, 0.09, 1),
            "runs/train-20240531-230000-btc/checkpoints/update_00010.safetensors re-run on the validation bars as paper trades it",
        ),
        _ => return None,
    };
    Some(BaselineCheck::new(
        model,
        raw,
        vec![
            (Baseline::Momentum, momentum),
            (Baseline::BuyHold, buy_hold),
        ],
        Some(MomentumRule { fast: 8, slow: 32 }),
        source.into(),
    ))
}

/// One configuration trained with seeds 11, 12 and 13.
pub const GROUP: &str = "seeds-20240601-084500-syna";
pub const SEED_RUNS: [&str; 3] = [
    "train-20240601-084500-syna",
    "train-20240601-085000-syna",
    "train-20240601-085500-syna",
];
/// Gates the group (asked on its second seed): the median seed is APPROVED, the worst DROP, so
/// the group is REVIEW with WORST_SEED_DROP.
pub const GATE_GROUP: &str = "gate-20240601-104500-train-20240601-085000-syna";

pub fn add_group_gate(app: &mut App) {
    use GateFlag::*;
    #[rustfmt::skip]
    let seeds = [
        (11, GateClass::Drop, vec![LowFitness, LowPf, HighDrawdown], graded(-0.12, 0.85, 0.22)),
        (12, GateClass::Approved, vec![], graded(0.38, 1.55, 0.06)),
        (13, GateClass::Approved, vec![], graded(0.45, 1.70, 0.05)),
    ];
    let seeds = seeds
        .into_iter()
        .zip(SEED_RUNS)
        .map(|((seed, class, flags, metrics), run)| {
            let m = &metrics;
            let model = figures(m.total_return, m.sharpe, m.max_drawdown, m.trades);
            let check = BaselineCheck::new(
                model,
                Some(figures(m.total_return * 0.8, m.sharpe - 0.1, 0.08, 90)),
                vec![
                    (Baseline::Momentum, figures(0.021, 0.40, 0.04, 12)),
                    (Baseline::BuyHold, figures(0.015, 0.33, 0.07, 1)),
                ],
                Some(MomentumRule { fast: 8, slow: 32 }),
                format!(
                    "runs/{run}/model.safetensors re-run on the validation bars as paper trades it"
                ),
            );
            let result = GateResult {
                class,
                flags,
                use_checkpoint: None,
                metrics,
                composite: None,
                baselines: None,
                group: None,
            }
            .with_baselines(check);
            SeedGrade {
                run: run.into(),
                seed,
                result,
            }
        })
        .collect();
    let result = quantdeck::eval::gate::grade_group(GROUP, seeds).expect("a group of three");
    let mut f = feed(app, GATE_GROUP);
    f.send(
        225,
        Event::Started {
            kind: JobKind::Gate,
            label: SEED_RUNS[1].into(),
        },
    );
    let class = result.class;
    f.send(226, Event::Gate(result));
    f.send(
        226,
        Event::Finished {
            status: JobStatus::Completed,
            message: class.as_str().into(),
        },
    );
    f.app.run_mut(GATE_GROUP).parent = Some(SEED_RUNS[1].into());
}
