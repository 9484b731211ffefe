//! Every key binding, declared once. [`resolve`] turns a key press into an [`Action`] for
//! `handle_key`; the help overlay and the hint line are drawn from [`KEYMAP`], so neither can
//! list a key that does nothing or miss one that does something.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies: the main screen, the help overlay, or the quit question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Main,
    Help,
    Confirm,
    /// Asked whether to flatten a paper session (the kill switch).
    ConfirmFlatten,
    /// Asked whether to stop a paper session's daemon.
    ConfirmStop,
    /// Choosing the training mode for `t`.
    ChooseTrain,
}

impl Mode {
    pub const ALL: [Mode; 6] = [
        Mode::Main,
        Mode::Help,
        Mode::Confirm,
        Mode::ConfirmFlatten,
        Mode::ConfirmStop,
        Mode::ChooseTrain,
    ];

    /// The help overlay's heading for this mode's keys.
    pub fn heading(self) -> &'static str {
        match self {
            Mode::Main => "anywhere",
            Mode::Help => "in this help",
            Mode::Confirm => "when asked whether to quit",
            Mode::ConfirmFlatten => "when asked whether to flatten a paper session",
            Mode::ConfirmStop => "when asked whether to stop a paper daemon",
            Mode::ChooseTrain => "when choosing a training mode",
        }
    }
}

/// What a key does. `GoToPane` takes the pane from the digit pressed; `Page`, `Ends` and
/// `ChooseMove` take the direction from the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    GoToPane,
    NextPane,
    PrevPane,
    Up,
    Down,
    /// PgUp or PgDn, from the key.
    Page,
    /// Home or End, from the key.
    Ends,
    PrevRun,
    NextRun,
    Fetch,
    Train,
    Gate,
    WalkForward,
    Paper,
    Cancel,
    Refresh,
    ToggleFeatures,
    /// What the Training pane shows, from the key: `R` the reward components / the metrics, `S`
    /// the newest sweep's leaderboard / the run, `o` the leaderboard's selected task's run.
    TrainingView,
    ShowHelp,
    Quit,
    CloseHelp,
    ConfirmQuit,
    AbortQuit,
    PauseResume,
    Flatten,
    ClearLatches,
    StopDaemon,
    ConfirmFlatten,
    AbortFlatten,
    ConfirmStop,
    AbortStop,
    /// Up or down, from the key pressed.
    ChooseMove,
    ChooseStart,
    ChooseCancel,
}

/// A key with the modifiers that matter (Control and Alt; Shift is in the character itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

const fn ch(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::NONE,
    }
}

const fn key(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::NONE,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::CONTROL,
    }
}

impl Key {
    /// The key as a user would press it: Ctrl+C is the same with or without Shift, and Shift
    /// never matters beyond the character it produced (Shift-Tab arrives as `BackTab`).
    pub fn of(ev: &KeyEvent) -> Key {
        let mods = ev.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
        let code = match ev.code {
            KeyCode::Char(c) if mods.contains(KeyModifiers::CONTROL) => {
                KeyCode::Char(c.to_ascii_lowercase())
            }
            c => c,
        };
        Key { code, mods }
    }

    /// A key event that presses this key (for tests and replays).
    pub fn event(self) -> KeyEvent {
        KeyEvent::new(self.code, self.mods)
    }

    pub fn name(self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char(c) if self.mods.contains(KeyModifiers::CONTROL) => {
                c.to_ascii_uppercase().to_string()
            }
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "Shift-Tab".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Enter => "Enter".into(),
            other => format!("{other:?}"),
        };
        let mut prefix = String::new();
        if self.mods.contains(KeyModifiers::CONTROL) {
            prefix.push_str("Ctrl+");
        }
        if self.mods.contains(KeyModifiers::ALT) {
            prefix.push_str("Alt+");
        }
        prefix + &base
    }
}

pub struct Binding {
    pub mode: Mode,
    pub keys: &'static [Key],
    pub action: Action,
    /// The line in the help overlay.
    pub help: &'static str,
    /// The word in the hint line, or None to keep the key to the help overlay. Neighbouring
    /// bindings with the same word share it (`↑↓ select`).
    pub hint: Option<&'static str>,
}

const fn bind(
    mode: Mode,
    keys: &'static [Key],
    action: Action,
    help: &'static str,
    hint: Option<&'static str>,
) -> Binding {
    Binding {
        mode,
        keys,
        action,
        help,
        hint,
    }
}

use Action as A;
use Mode::{ChooseTrain, Confirm, ConfirmFlatten, ConfirmStop, Help, Main};

pub const KEYMAP: &[Binding] = &[
    bind(
        Main,
        &[ch('1'), ch('2'), ch('3'), ch('4'), ch('5'), ch('6')],
        A::GoToPane,
        "go to pane 1–6",
        Some("panes"),
    ),
    bind(Main, &[key(KeyCode::Tab)], A::NextPane, "next pane", None),
    bind(
        Main,
        &[key(KeyCode::BackTab)],
        A::PrevPane,
        "previous pane",
        None,
    ),
    bind(
        Main,
        &[key(KeyCode::Up), ch('k')],
        A::Up,
        "select the previous row or run (scroll back in Logs)",
        Some("select"),
    ),
    bind(
        Main,
        &[key(KeyCode::Down), ch('j')],
        A::Down,
        "select the next row or run (scroll on in Logs)",
        Some("select"),
    ),
    // Pairs share a line so that the help still fits a 42-row screen.
    bind(
        Main,
        &[key(KeyCode::PageUp), key(KeyCode::PageDown)],
        A::Page,
        "move up / down a page",
        None,
    ),
    bind(
        Main,
        &[key(KeyCode::Home), key(KeyCode::End)],
        A::Ends,
        "first / last row or run (oldest / newest log line)",
        None,
    ),
    bind(
        Main,
        &[ch('[')],
        A::PrevRun,
        "previous run (training runs outside run panes)",
        Some("run"),
    ),
    bind(
        Main,
        &[ch(']')],
        A::NextRun,
        "next run (training runs outside run panes)",
        Some("run"),
    ),
    bind(
        Main,
        &[ch('f')],
        A::Fetch,
        "fetch the whole universe",
        Some("fetch"),
    ),
    bind(
        Main,
        &[ch('t')],
        A::Train,
        "train the symbol selected in Data: choose the mode, with its estimated time here",
        Some("train"),
    ),
    bind(
        Main,
        &[ch('g')],
        A::Gate,
        "gate the selected training run (or the newest completed one)",
        Some("gate"),
    ),
    bind(
        Main,
        &[ch('w')],
        A::WalkForward,
        "walk-forward the selected training run (or the newest completed one)",
        Some("walk-fwd"),
    ),
    bind(
        Main,
        &[ch('p')],
        A::Paper,
        "paper-trade the selected training run (or the newest completed one)",
        Some("paper"),
    ),
    bind(
        Main,
        &[ch('c')],
        A::Cancel,
        "cancel the selected job (jobs started here only)",
        Some("cancel"),
    ),
    bind(
        Main,
        &[ch('r')],
        A::Refresh,
        "re-read runs and stored data now",
        Some("refresh"),
    ),
    bind(
        Main,
        &[ch('v')],
        A::ToggleFeatures,
        "show / hide the selected series' features (what the model sees)",
        Some("features"),
    ),
    // One line for the Training pane's views, so that the help still fits a 42-row screen.
    bind(
        Main,
        &[ch('R'), ch('S'), ch('o')],
        A::TrainingView,
        "Training: R reward components / metrics; S sweep leaderboard / run; o open its task's run",
        None,
    ),
    bind(
        Main,
        &[ch('P')],
        A::PauseResume,
        "paper session shown: pause new entries (exits still run) / resume",
        None,
    ),
    bind(
        Main,
        &[ch('K')],
        A::Flatten,
        "paper session shown: KILL SWITCH — cancel every order, close every position (asks first)",
        None,
    ),
    bind(
        Main,
        &[ch('C')],
        A::ClearLatches,
        "paper session shown: clear the flatten latch and the drawdown halt",
        None,
    ),
    bind(
        Main,
        &[ch('X')],
        A::StopDaemon,
        "paper session shown: stop its daemon (positions stay; asks first)",
        None,
    ),
    bind(Main, &[ch('?')], A::ShowHelp, "this help", Some("help")),
    bind(
        Main,
        &[ch('q'), ctrl('c')],
        A::Quit,
        "quit (asks first while jobs started here run)",
        Some("quit"),
    ),
    bind(
        Help,
        &[key(KeyCode::Esc), ch('?'), ch('q')],
        A::CloseHelp,
        "close this help",
        Some("close"),
    ),
    bind(Help, &[ctrl('c')], A::Quit, "quit", None),
    bind(
        Confirm,
        &[ch('y'), ch('Y'), ctrl('c')],
        A::ConfirmQuit,
        "cancel the jobs started here and quit",
        Some("quit"),
    ),
    bind(
        Confirm,
        &[ch('n'), ch('N'), key(KeyCode::Esc)],
        A::AbortQuit,
        "keep running",
        Some("stay"),
    ),
    bind(
        ConfirmFlatten,
        &[ch('y'), ch('Y')],
        A::ConfirmFlatten,
        "flatten: cancel every order and close every position at the broker",
        Some("flatten"),
    ),
    bind(
        ConfirmFlatten,
        &[ch('n'), ch('N'), key(KeyCode::Esc), ctrl('c')],
        A::AbortFlatten,
        "do nothing",
        Some("keep"),
    ),
    bind(
        ConfirmStop,
        &[ch('y'), ch('Y')],
        A::ConfirmStop,
        "stop the daemon: nothing trades until it is started again",
        Some("stop"),
    ),
    bind(
        ConfirmStop,
        &[ch('n'), ch('N'), key(KeyCode::Esc), ctrl('c')],
        A::AbortStop,
        "do nothing",
        Some("keep"),
    ),
    bind(
        ChooseTrain,
        &[key(KeyCode::Up), key(KeyCode::Down), ch('k'), ch('j')],
        A::ChooseMove,
        "previous / next mode",
        Some("choose"),
    ),
    bind(
        ChooseTrain,
        &[key(KeyCode::Enter)],
        A::ChooseStart,
        "train the symbol in the selected mode",
        Some("train"),
    ),
    bind(
        ChooseTrain,
        &[key(KeyCode::Esc), ch('q'), ctrl('c')],
        A::ChooseCancel,
        "close without training",
        Some("cancel"),
    ),
];

/// The action of a key press in `mode`: the first binding of that mode holding the key.
pub fn resolve(mode: Mode, ev: &KeyEvent) -> Option<Action> {
    let k = Key::of(ev);
    KEYMAP
        .iter()
        .find(|b| b.mode == mode && b.keys.contains(&k))
        .map(|b| b.action)
}

pub fn bindings(mode: Mode) -> impl Iterator<Item = &'static Binding> {
    KEYMAP.iter().filter(move |b| b.mode == mode)
}

fn digit(k: &Key) -> Option<u32> {
    match k.code {
        KeyCode::Char(c) if k.mods.is_empty() => c.to_digit(10),
        _ => None,
    }
}

/// All keys of a binding for the help overlay: `1-6`, `↑, k`, `y, Ctrl+C` (an upper-case
/// letter beside its lower case is not repeated).
pub fn keys_label(b: &Binding) -> String {
    if let Some(range) = digit_range(b.keys) {
        return range;
    }
    b.keys
        .iter()
        .filter(|k| match k.code {
            KeyCode::Char(c) if c.is_ascii_uppercase() && k.mods.is_empty() => {
                !b.keys.contains(&ch(c.to_ascii_lowercase()))
            }
            _ => true,
        })
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The key shown in the hint line: the digit range, `↑↓` for both arrows, else the first key.
pub fn primary_label(b: &Binding) -> String {
    if b.keys.contains(&key(KeyCode::Up)) && b.keys.contains(&key(KeyCode::Down)) {
        return "↑↓".into();
    }
    digit_range(b.keys).unwrap_or_else(|| b.keys.first().map_or(String::new(), |k| k.name()))
}

/// `1-6` for consecutive digit keys.
fn digit_range(keys: &[Key]) -> Option<String> {
    let ds: Vec<u32> = keys.iter().map(digit).collect::<Option<_>>()?;
    let consecutive = ds.len() > 1 && ds.windows(2).all(|w| w[1] == w[0] + 1);
    consecutive.then(|| format!("{}-{}", ds[0], ds[ds.len() - 1]))
}

/// The hint line of a mode: (keys, word) pairs, neighbours with the same word merged.
pub fn hints(mode: Mode) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    for b in bindings(mode) {
        let Some(word) = b.hint else { continue };
        match out.last_mut() {
            Some((keys, w)) if *w == word => keys.push_str(&primary_label(b)),
            _ => out.push((primary_label(b), word)),
        }
    }
    out
}
