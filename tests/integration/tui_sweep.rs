//! The Training pane's sweep view (`S`): the newest sweep's leaderboard, a task selected with ↑/↓
//! and opened with `o` in the same pane.

use crate::common::tui_fixture::full_app;
use crate::common::tui_screen::screen;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use quantdeck::config::Stage;
use quantdeck::eval::walkforward::Decision;
use quantdeck::eval::GateClass;
use quantdeck::jobs::sweep::record::SlurmState;
use quantdeck::jobs::sweep::report::{GroupRow, Leaderboard, TaskRow};
use quantdeck::jobs::sweep::TaskState;
use quantdeck::tui::{handle_key, App, Pane};

fn row(index: usize, seed: u64, state: TaskState) -> TaskRow {
    TaskRow {
        index,
        symbol: if index < 2 { "SYNA" } else { "SYNB" }.into(),
        seed,
        mode: "quick_test".into(),
        overrides: "ppo.actor_lr=0.0003".into(),
        group: index / 2,
        state,
        progress: None,
        train_run: None,
        gate: None,
        fitness: None,
        decision: None,
        sharpe: None,
        momentum: None,
        buy_hold: None,
    }
}

fn board() -> Leaderboard {
    let mut best = row(0, 1, TaskState::Completed);
    best.progress = Some((30, 30));
    best.train_run = Some("train-20240601-120000-syna".into());
    best.gate = Some(GateClass::Review);
    best.fitness = Some(0.412);
    best.decision = Some(Decision::Paper);
    (best.sharpe, best.momentum, best.buy_hold) = (Some(2.31), Some(1.80), Some(0.95));
    let mut second = row(1, 2, TaskState::Completed);
    second.progress = Some((30, 30));
    second.train_run = Some("train-20240601-120500-syna".into());
    second.gate = Some(GateClass::Drop);
    second.fitness = Some(-0.2);
    second.decision = Some(Decision::Retrain);
    (second.sharpe, second.momentum, second.buy_hold) = (Some(0.4), Some(1.80), Some(0.95));
    let mut running = row(
        2,
        1,
        TaskState::Running {
            stage: Some(Stage::Train),
            attempt: 1,
            host: "gpu-07".into(),
        },
    );
    running.progress = Some((12, 30));
    running.train_run = Some("train-20240601-121000-synb".into());
    let failed = row(
        3,
        2,
        TaskState::Failed {
            stage: Stage::WalkForward,
            exit_code: 1,
            message: "no stored SYNB bars".into(),
        },
    );
    let oom = row(
        4,
        3,
        TaskState::Scheduler {
            slurm: SlurmState::OutOfMemory,
        },
    );
    Leaderboard {
        sweep: "sweep-20240601-115900-syna-synb-2x5".into(),
        summary: "5 tasks: 2 completed, 1 running, 1 failed, 1 ended by Slurm".into(),
        tasks: vec![best, second, running, failed, oom],
        groups: vec![GroupRow {
            group: 0,
            symbol: "SYNA".into(),
            mode: "quick_test".into(),
            overrides: "ppo.actor_lr=0.0003".into(),
            gated: 2,
            seeds: 2,
            class: GateClass::Review,
            flags: vec![quantdeck::eval::GateFlag::WorstSeedDrop],
            median_seed: 2,
            median_fitness: -0.2,
            worst_seed: 2,
            worst_fitness: -0.2,
            median_run: "train-20240601-120500-syna".into(),
        }],
    }
}

fn press(app: &mut App, code: KeyCode) {
    handle_key(app, KeyEvent::new(code, KeyModifiers::NONE));
}

#[test]
fn the_leaderboard_is_a_view_of_the_training_pane_and_o_opens_a_tasks_run() {
    let mut app = full_app();
    app.pane = Pane::Data;
    press(&mut app, KeyCode::Char('S'));
    assert_eq!(app.pane, Pane::Training);
    assert!(app.sweep.show);
    assert!(screen(&app).contains("No sweep yet"), "{}", screen(&app));
    assert!(app.sweep.set_board(board()));
    insta::assert_snapshot!(screen(&app));
    // ↓ ↓ selects the running task; o shows its training run in the pane.
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down);
    assert_eq!(app.sweep.selected().map(|r| r.index), Some(2));
    press(&mut app, KeyCode::Char('o'));
    assert!(!app.sweep.show);
    assert_eq!(app.sel.train.as_deref(), Some("train-20240601-121000-synb"));
    // Back to the leaderboard, the same task still selected; a task without a run says so.
    press(&mut app, KeyCode::Char('S'));
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Char('o'));
    assert!(app.sweep.show);
    assert!(
        app.message.contains("no training run yet"),
        "{}",
        app.message
    );
}
