//! The keymap is the one declaration of the keys: every binding is reachable and does
//! something, keys outside it do nothing, and the help overlay and the hint line are drawn from
//! it (see `tui_snapshots::help_and_hints_come_from_the_keymap`).

use crate::common::tui_fixture::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use quantdeck::tui::keymap::{self, Action, Key, Mode, KEYMAP};
use quantdeck::tui::{handle_key, App, Command, Pane};

fn in_mode(mut app: App, mode: Mode) -> App {
    match mode {
        Mode::Main => {}
        Mode::Help => app.show_help = true,
        Mode::Confirm => app.confirm_quit = true,
        Mode::ConfirmFlatten => app.confirm_flatten = Some(PAPER.into()),
        Mode::ConfirmStop => app.confirm_stop = Some(PAPER.into()),
        Mode::ChooseTrain => {
            // Away from both ends, so that both directions move.
            app.train.preselect = 1;
            assert!(app.train.open_for("SYNA"));
        }
    }
    assert_eq!(app.mode(), mode);
    app
}

/// The full state on every pane, with selections away from both ends, in `mode`.
fn start_states(mode: Mode) -> Vec<App> {
    Pane::ALL
        .into_iter()
        .map(|pane| {
            let mut app = full_app();
            app.pane = pane;
            app.sel.data = 1;
            app.sel.gate = 1;
            app.sel.log_scroll = 3;
            app.sel.train = Some(TRAIN_KILLED.into());
            in_mode(app, mode)
        })
        .collect()
}

#[test]
fn every_binding_is_reachable() {
    for b in KEYMAP {
        assert!(!b.keys.is_empty(), "{:?} has no key", b.action);
        assert!(!b.help.is_empty(), "{:?} has no help text", b.action);
        for k in b.keys {
            assert_eq!(
                keymap::resolve(b.mode, &k.event()),
                Some(b.action),
                "{} in {:?} reaches another action",
                k.name(),
                b.mode
            );
        }
    }
    for mode in Mode::ALL {
        let keys: Vec<Key> = keymap::bindings(mode)
            .flat_map(|b| b.keys.iter().copied())
            .collect();
        for (i, k) in keys.iter().enumerate() {
            assert!(
                !keys[i + 1..].contains(k),
                "{} is bound twice in {mode:?}",
                k.name()
            );
        }
    }
}

#[test]
fn every_bound_key_does_something() {
    for b in KEYMAP {
        for k in b.keys {
            let acted = start_states(b.mode).into_iter().any(|before| {
                let mut after = before.clone();
                let cmds = handle_key(&mut after, k.event());
                !cmds.is_empty() || after != before
            });
            assert!(
                acted,
                "{} ({:?} in {:?}) changed nothing in any pane",
                k.name(),
                b.action,
                b.mode
            );
        }
    }
}

#[test]
fn keys_outside_the_keymap_do_nothing() {
    let unbound = [
        KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE),
        KeyEvent::new(KeyCode::Char('Q'), KeyModifiers::SHIFT),
        KeyEvent::new(KeyCode::Char('0'), KeyModifiers::NONE),
        KeyEvent::new(KeyCode::Char('7'), KeyModifiers::NONE),
        KeyEvent::new(KeyCode::Char('f'), KeyModifiers::ALT),
        KeyEvent::new(KeyCode::Char('t'), KeyModifiers::CONTROL),
        KeyEvent::new(KeyCode::F(1), KeyModifiers::NONE),
        KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE),
        KeyEvent::new(KeyCode::Left, KeyModifiers::NONE),
    ];
    for mode in Mode::ALL {
        for before in start_states(mode) {
            // Enter picks the mode in the chooser; nowhere else.
            let unbound = unbound
                .iter()
                .filter(|ev| !(mode == Mode::ChooseTrain && ev.code == KeyCode::Enter));
            for &ev in unbound {
                assert_eq!(keymap::resolve(mode, &ev), None, "{ev:?} in {mode:?}");
                let mut after = before.clone();
                assert!(handle_key(&mut after, ev).is_empty(), "{ev:?} in {mode:?}");
                assert!(after == before, "{ev:?} changed the state in {mode:?}");
            }
        }
    }
}

#[test]
fn modes_decide_what_a_key_means() {
    let q = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
    assert_eq!(keymap::resolve(Mode::Main, &q), Some(Action::Quit));
    assert_eq!(keymap::resolve(Mode::Help, &q), Some(Action::CloseHelp));
    assert_eq!(keymap::resolve(Mode::Confirm, &q), None);
    // Ctrl+C with or without Shift quits everywhere (confirming in the quit question).
    for mods in [
        KeyModifiers::CONTROL,
        KeyModifiers::CONTROL | KeyModifiers::SHIFT,
    ] {
        for c in ['c', 'C'] {
            let ev = KeyEvent::new(KeyCode::Char(c), mods);
            assert_eq!(keymap::resolve(Mode::Main, &ev), Some(Action::Quit));
            assert_eq!(keymap::resolve(Mode::Help, &ev), Some(Action::Quit));
            assert_eq!(
                keymap::resolve(Mode::Confirm, &ev),
                Some(Action::ConfirmQuit)
            );
        }
    }
    // Shift-Tab arrives as BackTab with Shift held.
    let back = KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT);
    assert_eq!(keymap::resolve(Mode::Main, &back), Some(Action::PrevPane));
}

#[test]
fn ctrl_c_in_help_closes_it_and_asks_about_running_jobs() {
    let mut app = in_mode(full_app(), Mode::Help);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(handle_key(&mut app, ctrl_c).is_empty());
    assert!(!app.show_help && app.confirm_quit);
    assert_eq!(
        handle_key(&mut app, ctrl_c),
        vec![Command::Cancel(PAPER.into()), Command::Quit]
    );
}

#[test]
fn key_labels_read_as_a_user_types_them() {
    let label = |a: Action| {
        KEYMAP
            .iter()
            .find(|b| b.action == a && b.mode == Mode::Main)
            .map(keymap::keys_label)
    };
    assert_eq!(label(Action::GoToPane).as_deref(), Some("1-6"));
    assert_eq!(label(Action::Up).as_deref(), Some("↑, k"));
    assert_eq!(label(Action::Quit).as_deref(), Some("q, Ctrl+C"));
    assert_eq!(label(Action::PrevPane).as_deref(), Some("Shift-Tab"));
    let confirm: Vec<String> = keymap::bindings(Mode::Confirm)
        .map(keymap::keys_label)
        .collect();
    assert_eq!(confirm, ["y, Ctrl+C", "n, Esc"]);
    let choose: Vec<String> = keymap::hints(Mode::ChooseTrain)
        .into_iter()
        .map(|(k, w)| format!("{k} {w}"))
        .collect();
    assert_eq!(choose.join(" "), "↑↓ choose Enter train Esc cancel");
    let hints: Vec<String> = keymap::hints(Mode::Main)
        .into_iter()
        .map(|(k, w)| format!("{k} {w}"))
        .collect();
    assert_eq!(
        hints.join(" "),
        "1-6 panes ↑↓ select [] run f fetch t train g gate w walk-fwd p paper c cancel r refresh v features ? help q quit"
    );
}
