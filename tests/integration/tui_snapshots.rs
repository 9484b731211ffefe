//! Every pane (and the overlays) rendered from a fixed state into a `TestBackend`, compared
//! with reviewed snapshots; and every pane at degenerate sizes, which must not panic.

use crate::common::tui_fixture::*;
use crate::common::tui_screen::*;
use quantdeck::features::events::EventTable;
use quantdeck::jobs::{Event, JobKind};
use quantdeck::market::Timeframe;
use quantdeck::tui::{App, Pane};
use ratatui::style::Color;

#[test]
fn data_pane() {
    insta::assert_snapshot!(screen(&on(Pane::Data)));
}

#[test]
fn training_pane() {
    insta::assert_snapshot!(screen(&on(Pane::Training)));
}

#[test]
fn gating_pane() {
    insta::assert_snapshot!(screen(&on(Pane::Gating)));
}

#[test]
fn walk_forward_pane() {
    insta::assert_snapshot!(screen(&on(Pane::WalkForward)));
}

#[test]
fn paper_pane() {
    insta::assert_snapshot!(screen(&on(Pane::Paper)));
}

/// A portfolio session: the regime, and per member target against actual weight.
#[test]
fn paper_pane_portfolio() {
    let mut app = portfolio_paper_app();
    app.pane = Pane::Paper;
    let shown = screen(&app);
    assert!(shown.contains("regime MOMENTUM"), "{shown}");
    insta::assert_snapshot!(shown);
}

#[test]
fn logs_pane() {
    insta::assert_snapshot!(screen(&on(Pane::Logs)));
}

#[test]
fn help_overlay() {
    let mut app = on(Pane::Training);
    app.show_help = true;
    insta::assert_snapshot!(screen(&app));
}

/// K in the Paper pane asks before the kill switch; y sends flatten to the session shown.
#[test]
fn the_kill_switch_asks_first() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use quantdeck::live::view::Command as PaperCommand;
    use quantdeck::tui::{handle_key, Command};
    let press = |app: &mut App, c: char| {
        handle_key(app, KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
    };
    let mut app = on(Pane::Paper);
    assert!(
        press(&mut app, 'K').is_empty(),
        "nothing is sent before the answer"
    );
    assert_eq!(app.confirm_flatten.as_deref(), Some(PAPER));
    insta::assert_snapshot!(screen(&app));
    assert!(press(&mut app, 'n').is_empty());
    assert_eq!(app.confirm_flatten, None);
    press(&mut app, 'K');
    assert_eq!(
        press(&mut app, 'y'),
        vec![Command::Paper {
            run: PAPER.into(),
            command: PaperCommand::Flatten
        }]
    );
    // P toggles pause on the session shown (the fixture's session is paused: resume).
    assert_eq!(
        press(&mut app, 'P'),
        vec![Command::Paper {
            run: PAPER.into(),
            command: PaperCommand::Resume
        }]
    );
    // Elsewhere, paper keys only explain themselves.
    let mut app = on(Pane::Training);
    assert!(press(&mut app, 'K').is_empty());
    assert!(app.confirm_flatten.is_none() && app.message.contains("Paper pane"));
}

/// `t`: the modes with their sizes and estimated time here — quick_test measured by a run on
/// this machine, the others scaled from it and labelled rough.
#[test]
fn train_mode_chooser() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let mut app = on(Pane::Data);
    quantdeck::tui::handle_key(
        &mut app,
        KeyEvent::new(KeyCode::Char('t'), KeyModifiers::NONE),
    );
    let s = screen(&app);
    assert!(s.contains(&format!("measured from run {QUICK_RUN}")), "{s}");
    assert!(s.contains("rough estimate"), "{s}");
    insta::assert_snapshot!(s);
}

/// No training run here yet, and a custom configuration: its own row, preselected, and every
/// figure labelled rough.
#[test]
fn train_mode_chooser_without_runs() {
    use quantdeck::tui::chooser;
    let mut app = on(Pane::Data);
    let mut startup = quantdeck::config::load(None, None).expect("defaults load");
    startup.ppo.total_timesteps = 2_000_000;
    startup.ppo.hidden_dims = vec![64, 64];
    let (list, pre) = chooser::mode_configs(&startup, true, None);
    app.train = chooser::train_modes(&list, pre, true, HOST.into());
    assert!(app.train.open_for("SYNX/USD"));
    let s = screen(&app);
    assert!(!s.contains("measured"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn quit_confirm() {
    let mut app = on(Pane::Paper);
    app.confirm_quit = true;
    app.message = "jobs running — quit and cancel them? (y/n)".into();
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn empty_state_at_a_common_size() {
    let mut app = App::new();
    app.pane = Pane::Data;
    // Until the watcher has listed the store, "no data" would be a guess.
    assert!(text(&render(&app, 80, 12)).contains("reading the store…"));
    quantdeck::tui::update(&mut app, quantdeck::tui::Msg::Series(Vec::new()));
    insta::assert_snapshot!(text(&render(&app, 80, 12)));
}

#[test]
fn data_pane_while_fetching() {
    let mut app = App::new();
    app.set_series(stored_series()[..2].to_vec());
    let run = "fetch-20240601-120000-universe";
    let mut f = feed(&mut app, run);
    f.send(
        0,
        Event::Started {
            kind: JobKind::Fetch,
            label: "universe".into(),
        },
    );
    let s = &stored_series()[1];
    f.send(
        1,
        Event::SymbolFetched {
            symbol: s.symbol.clone(),
            timeframe: s.timeframe,
            bars: s.bars,
            first: s.first,
            last: s.last,
            source: s.source.clone(),
        },
    );
    f.send(
        1,
        Event::Progress {
            done: 2,
            total: 4,
            message: "SYNB".into(),
        },
    );
    app.mark_ours(run, JobKind::Fetch, None);
    insta::assert_snapshot!(text(&render(&app, 100, 16)));
}

#[test]
fn every_pane_survives_tiny_and_huge_terminals() {
    let sizes = [(1, 1), (5, 3), (20, 6), (40, 12), (80, 24), (200, 60)];
    for base in [App::new(), full_app()] {
        for pane in Pane::ALL {
            for (help, confirm) in [(false, false), (true, false), (false, true)] {
                for (w, h) in sizes {
                    let mut app = base.clone();
                    app.pane = pane;
                    app.show_help = help;
                    app.confirm_quit = confirm;
                    let buf = render(&app, w, h);
                    assert_eq!((buf.area.width, buf.area.height), (w, h));
                }
            }
        }
    }
}

#[test]
fn synthetic_data_is_tagged_yellow() {
    let buf = render(&on(Pane::Data), 140, 42);
    let screen = text(&buf);
    assert!(
        screen.contains("SYNTHETIC DATA"),
        "pane title names synthetic data"
    );
    assert_eq!(
        color_of(&buf, "SYNTHETIC"),
        Some((Color::Black, Color::Yellow))
    );
    // Real data is not tagged.
    let mut app = on(Pane::Data);
    app.series.retain(|s| s.source != "synthetic");
    app.fetch.retain(|_, f| f.source != "synthetic");
    let screen = text(&render(&app, 140, 42));
    assert!(!screen.contains("SYNTHETIC"));
}

#[test]
fn outcomes_are_coloured() {
    let buf = render(&on(Pane::Gating), 140, 42);
    assert_eq!(color_of(&buf, "APPROVED").map(|c| c.0), Some(Color::Green));
    assert_eq!(color_of(&buf, "REVIEW").map(|c| c.0), Some(Color::Yellow));
    assert_eq!(color_of(&buf, "DROP").map(|c| c.0), Some(Color::Red));
    let buf = render(&on(Pane::WalkForward), 140, 42);
    assert_eq!(color_of(&buf, " PAPER ").map(|c| c.1), Some(Color::Cyan));
}

#[test]
fn selected_symbol_is_highlighted() {
    let mut app = on(Pane::Data);
    app.sel.data = 2;
    let screen = text(&render(&app, 140, 42));
    let marked: Vec<&str> = screen.lines().filter(|l| l.contains('▶')).collect();
    assert_eq!(marked.len(), 1);
    assert!(marked[0].contains("SYNB"), "{marked:?}");
}

#[test]
fn data_pane_with_the_feature_view() {
    use quantdeck::config::SyntheticConfig;
    use quantdeck::features::{latest_vector, FeatureSpec};
    use quantdeck::market::Symbol;
    use quantdeck::tui::app::FeatureView;
    let sym = Symbol::equity("SYNA");
    let d = |m, dd| chrono::NaiveDate::from_ymd_opt(2024, m, dd).unwrap_or_default();
    let bars = quantdeck::data::synthetic::generate(
        &SyntheticConfig::default(),
        &sym,
        Timeframe::Minute(15),
        d(1, 2),
        d(3, 28),
    )
    .unwrap_or_default();
    let spec = FeatureSpec::current(32, &EventTable::embedded());
    let mut app = on(Pane::Data);
    app.show_features = true;
    app.sel.data = 1;
    app.features = Some(FeatureView {
        symbol: "SYNA".into(),
        timeframe: Timeframe::Minute(15),
        at: bars.last().map(|b| b.ts),
        layout: spec.describe(),
        values: latest_vector(&spec, &sym, &bars, &EventTable::embedded()),
        error: None,
    });
    assert_eq!(app.features.as_ref().map(|f| f.values.len()), Some(58));
    insta::assert_snapshot!(screen(&app));
}

fn training_run(id: &str) -> App {
    let mut app = on(Pane::Training);
    app.sel.train = Some(id.into());
    app
}

#[test]
fn training_pane_of_a_failed_run() {
    let s = screen(&training_run(TRAIN_FAILED));
    assert!(
        s.contains("[failed]") && s.contains("invalid footer"),
        "{s}"
    );
    insta::assert_snapshot!(s);
}

#[test]
fn training_pane_of_an_interrupted_run() {
    let s = screen(&training_run(TRAIN_KILLED));
    assert!(s.contains("[interrupted]"), "{s}");
    let note = boxed(&s, "┌ interrupted");
    assert!(
        note.contains("after update 12 with 3 validation(s)")
            && note.contains(
                "press g to gate it (w to walk-forward it) from its best checkpoint, update 8"
            ),
        "{note}"
    );
    assert!(s.contains("insufficient: 2 trades, 5 days"), "{s}");
    assert!(
        !s.contains("99.0"),
        "an unscored validation shows no PF:\n{s}"
    );
    insta::assert_snapshot!(s);
}

#[test]
fn gating_pane_of_an_interrupted_run() {
    let s = screen(&gate_row(GATE_KILLED));
    assert!(s.contains("INSUFFICIENT_TRADES"), "{s}");
    let detail = boxed(&s, "┌ Selected");
    assert!(
        detail.contains("graded the best checkpoint (update 8): the final validation was insufficient: 2 trades, 5 days"),
        "{detail}"
    );
    assert!(
        s.contains("interrupted: graded on the validations it recorded"),
        "{s}"
    );
    insta::assert_snapshot!(s);
}

#[test]
fn a_gate_with_nothing_scored_shows_no_metrics() {
    let s = screen(&gate_row(GATE_THIN));
    let row = s
        .lines()
        .find(|l| l.contains("train-20240531-235000-synb") && l.contains("DROP"))
        .unwrap_or_default();
    assert!(row.contains("none graded"), "{row}");
    assert!(
        !s.contains("99.0"),
        "the capped PF of an unscored validation leaked:\n{s}"
    );
    let detail = boxed(&s, "┌ Selected");
    assert!(
        detail.contains("graded nothing: no validation had enough trades and days (the last: insufficient: 1 trades, 3 days)"),
        "{detail}"
    );
}

#[test]
fn walk_forward_shows_every_baseline() {
    let buf = render(&on(Pane::WalkForward), 140, 42);
    let s = text(&buf);
    assert!(
        s.contains("baselines beats buy-and-hold, flat, random; trails momentum"),
        "{s}"
    );
    for name in ["Buy&hold", "Flat", "Random", "Momentum"] {
        assert!(s.contains(name), "fold table lacks {name}:\n{s}");
    }
    for name in ["model", "buy-and-hold", "flat", "random", "momentum"] {
        assert!(
            s.contains(&format!("{name} ")),
            "chart legend lacks {name}:\n{s}"
        );
    }
    // Baselines are drawn dimmed behind the model.
    let legend = |name: &str| {
        let area = buf.area;
        (area.top()..area.bottom()).find_map(|y| {
            let row: String = (area.left()..area.right())
                .map(|x| buf[(x, y)].symbol())
                .collect();
            let start = row.find("Equity, folds end to end:")?;
            let byte = start + row[start..].find(&format!(" {name} "))?;
            let col = row[..byte].chars().count() as u16 + 1;
            Some(buf[(area.left() + col, y)].modifier)
        })
    };
    use ratatui::style::Modifier;
    assert!(legend("momentum").is_some_and(|m| m.contains(Modifier::DIM)));
    assert!(legend("model").is_some_and(|m| !m.contains(Modifier::DIM)));
}

#[test]
fn help_and_hints_come_from_the_keymap() {
    use quantdeck::tui::keymap::{self, Mode, KEYMAP};
    let mut app = on(Pane::Training);
    app.show_help = true;
    let s = screen(&app);
    for b in KEYMAP {
        let line = s.lines().find(|l| l.contains(b.help));
        assert!(
            line.is_some_and(|l| l.contains(&keymap::keys_label(b))),
            "help lacks {:?}: {}\n{s}",
            b.action,
            b.help
        );
    }
    for mode in Mode::ALL {
        let mut app = on(Pane::Training);
        app.show_help = mode == Mode::Help;
        app.confirm_quit = mode == Mode::Confirm;
        app.confirm_flatten = (mode == Mode::ConfirmFlatten).then(|| PAPER.to_string());
        app.confirm_stop = (mode == Mode::ConfirmStop).then(|| PAPER.to_string());
        if mode == Mode::ChooseTrain {
            app.train.open_for("SYNA");
        }
        assert_eq!(app.mode(), mode);
        let s = screen(&app);
        let hint = s.lines().last().unwrap_or_default();
        let want: Vec<String> = keymap::hints(mode)
            .into_iter()
            .map(|(k, w)| format!("{k} {w}"))
            .collect();
        assert_eq!(hint.trim_end(), want.join(" "), "{mode:?}");
    }
}

const RESUMED: &str = "train-20240601-120000-sync";

/// A seed-reward training run cancelled at update 12 and resumed from its checkpoint at 8:
/// the first branch's updates 9–12 are superseded by the resumed run's.
fn resumed_seed_run() -> App {
    use quantdeck::jobs::events::{
        CheckpointReason, RestartReason, UpdateMetrics, ValidationMetrics,
    };
    use quantdeck::jobs::JobStatus;
    use quantdeck::sim::reward::{RewardComponent, RewardPart};
    let mut app = on(Pane::Training);
    let metrics = |u: usize, branch: f64| {
        let x = u as f64;
        // Shares drift from direction and exploration towards pnl, as the curriculum does.
        let raw = [
            0.30 - 0.01 * x,
            0.05,
            0.10 + 0.02 * x,
            0.08,
            0.10 - 0.004 * x,
            0.04,
            0.01 + 0.002 * x,
            0.08,
        ];
        let total: f64 = raw.iter().sum();
        let reward_parts = RewardComponent::ALL
            .iter()
            .zip(raw)
            .map(|(c, r)| RewardPart {
                component: *c,
                share: r / total,
                mean: if matches!(c, RewardComponent::Slippage | RewardComponent::Drawdown) {
                    -r / 10.0
                } else {
                    r / 20.0
                },
            })
            .collect();
        UpdateMetrics {
            update: u,
            updates: 20,
            timesteps: (u * 8192) as u64,
            sps: 3900.0,
            mean_reward: 0.01 * x - branch,
            policy_loss: -0.01,
            value_loss: 0.5 / x,
            entropy: 2.0 - 0.03 * x,
            approx_kl: 0.005,
            clip_fraction: 0.07,
            explained_variance: 0.2 + 0.03 * x,
            lr: 3e-4,
            ent_coef: 0.01,
            elapsed_s: 2.5 * x,
            critic_lr: 9e-4,
            critic_loss: Some(0.3 / x),
            episodes: (u * 32) as u64,
            reward_parts,
            action_shares: Vec::new(),
        }
    };
    let validation = |u: usize| ValidationMetrics {
        update: u,
        profit_factor: 1.1 + 0.01 * u as f64,
        sharpe: 0.4,
        fitness: 0.2 + 0.01 * u as f64,
        trades: 40,
        days: 30,
        ..Default::default()
    };
    let mut f = feed(&mut app, RESUMED);
    f.send(
        600,
        Event::Started {
            kind: JobKind::Train,
            label: "SYNC".into(),
        },
    );
    for u in 1..=12 {
        f.send(600 + u as i64, Event::Update(metrics(u, 1.0)));
        if u % 4 == 0 {
            f.send(600 + u as i64, Event::Validation(validation(u)));
        }
    }
    f.send(
        613,
        Event::Checkpoint {
            path: format!("runs/{RESUMED}/model.safetensors"),
            update: 12,
            reason: CheckpointReason::Cancelled,
        },
    );
    f.send(
        613,
        Event::Finished {
            status: JobStatus::Cancelled,
            message: "cancelled: 12 updates".into(),
        },
    );
    f.send(
        700,
        Event::Started {
            kind: JobKind::Train,
            label: "SYNC".into(),
        },
    );
    f.send(
        700,
        Event::Restart {
            from_update: 8,
            reason: RestartReason::Resume {
                checkpoint: format!("runs/{RESUMED}/state/update_00008.safetensors"),
            },
        },
    );
    for u in 9..=20 {
        f.send(700 + u as i64, Event::Update(metrics(u, 0.0)));
        if u % 4 == 0 {
            f.send(700 + u as i64, Event::Validation(validation(u)));
        }
    }
    f.send(
        721,
        Event::Finished {
            status: JobStatus::Completed,
            message:
                "20 updates (resumed from update 8), 163840 steps at 3900 steps/s; model saved"
                    .into(),
        },
    );
    app.sel.train = Some(RESUMED.into());
    app
}

#[test]
fn training_pane_of_a_resumed_run() {
    let app = resumed_seed_run();
    let run = &app.runs[RESUMED];
    let ups: Vec<usize> = run.updates.iter().map(|m| m.update).collect();
    assert_eq!(ups, (1..=20).collect::<Vec<_>>(), "one continuous run");
    // The first branch's 9–12 are gone: the resumed run's values replaced them.
    assert!(run.updates[8..12].iter().all(|m| m.mean_reward > 0.0));
    assert!(run.updates[..8].iter().all(|m| m.mean_reward < 0.0));
    assert_eq!(
        run.validations.iter().map(|v| v.update).collect::<Vec<_>>(),
        [4, 8, 12, 16, 20]
    );
    let s = screen(&app);
    assert!(
        s.contains("resumed @8") && s.contains("update 20/20") && s.contains("[completed]"),
        "{s}"
    );
    insta::assert_snapshot!(s);
}

#[test]
fn training_pane_charts_reward_component_shares() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use quantdeck::tui::handle_key;
    let mut app = resumed_seed_run();
    app.pane = Pane::Data;
    handle_key(
        &mut app,
        KeyEvent::new(KeyCode::Char('R'), KeyModifiers::SHIFT),
    );
    assert!(app.show_reward_parts && app.pane == Pane::Training);
    let s = screen(&app);
    assert!(
        s.contains("reward component shares")
            && s.contains("mean weighted value per step")
            && s.contains("Reward @20"),
        "{s}"
    );
    for c in quantdeck::sim::reward::RewardComponent::ALL {
        assert!(
            s.contains(c.as_str()),
            "{} missing from the legend:\n{s}",
            c.as_str()
        );
    }
    insta::assert_snapshot!(s);
    // A P&L-reward run says why there is nothing to chart.
    app.sel.train = Some(TRAIN.into());
    assert!(screen(&app).contains("a single component"));
    // R again: the metrics.
    handle_key(
        &mut app,
        KeyEvent::new(KeyCode::Char('R'), KeyModifiers::SHIFT),
    );
    assert!(!app.show_reward_parts);
    assert!(screen(&app).contains("explained var"));
}

#[test]
fn training_pane_shows_the_actions_a_portfolio_policy_takes() {
    let mut app = on(Pane::Training);
    let id = app
        .selected_run(JobKind::Train)
        .map(|r| r.id.clone())
        .expect("the fixture selects a training run");
    let run = app.runs.get_mut(&id).expect("the selected run");
    // A policy drifting from holding towards momentum and equal weight.
    for m in run.updates.iter_mut() {
        let x = m.update as f64 / 30.0;
        let mut w = [0.02; 12];
        w[0] = 0.5 * (1.0 - x);
        w[4] = 0.2 + 0.1 * x;
        w[5] = 0.1 + 0.3 * x;
        let sum: f64 = w.iter().sum();
        m.action_shares = w.iter().map(|v| v / sum).collect();
    }
    let s = screen(&app);
    let latest = run_latest_shares(&app, &id);
    assert!(s.contains(" Actions @"), "{s}");
    for name in ["HOLD", "EQUAL_WEIGHT", "SAFE_MOMENTUM", "RISK_ON"] {
        assert!(s.contains(name), "{name} missing:\n{s}");
    }
    // The largest share has the longest bar.
    let bar = |name: &str| {
        s.lines()
            .find_map(|l| {
                l.split_once(&format!("{name:<13} "))
                    .map(|(_, r)| r.chars().filter(|c| *c == '█').count())
            })
            .unwrap_or(0)
    };
    let (imax, _) = latest
        .iter()
        .enumerate()
        .fold((0, f64::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
    let names = quantdeck::sim::portfolio::REGIME_NAMES;
    assert!(names.iter().all(|n| bar(names[imax]) >= bar(n)), "{s}");
    insta::assert_snapshot!(s);
}

fn run_latest_shares(app: &App, id: &str) -> Vec<f64> {
    app.runs[id]
        .updates
        .last()
        .map(|m| m.action_shares.clone())
        .unwrap_or_default()
}

/// The session's daemon was SIGKILLed: its last report still says "trading" with both links up,
/// but the scan (every second) finds its process gone, and the pane says DAEMON DOWN in red with
/// the heartbeat's age, and shows nothing of the last report as current.
#[test]
fn paper_pane_daemon_down() {
    use chrono::Duration;
    use quantdeck::jobs::RunSummary;
    use quantdeck::tui::Msg;
    let mut app = on(Pane::Paper);
    // A daemon is a process of its own, never the TUI's.
    app.run_mut(PAPER).ours = false;
    let beat = at(250);
    app.now = Some(beat + Duration::seconds(4));
    let before = screen(&app);
    assert!(!before.contains("DAEMON DOWN"), "{before}");
    let mut m = manifest(PAPER, JobKind::Paper, "SYNA-SYNX/USD", at(240));
    m.heartbeat = Some(beat);
    let gone = RunSummary {
        manifest: m,
        path: format!("runs/{PAPER}").into(),
        stale: true,
    };
    quantdeck::tui::update(&mut app, Msg::Runs(vec![gone]));
    let buf = render(&app, 140, 42);
    let shown = text(&buf);
    assert!(
        shown.contains("DAEMON DOWN: last heartbeat 4 s ago"),
        "{shown}"
    );
    assert_eq!(
        color_of(&buf, "DAEMON DOWN").map(|(fg, bg)| fg == Color::Red || bg == Color::Red),
        Some(true)
    );
    insta::assert_snapshot!(shown);
}
