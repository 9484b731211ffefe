//! Drives the real binary in tmux as a user would: fetch, train from the TUI (choosing the
//! quick_test mode), watch a headless training run started in another process appear live, gate,
//! quit; and stop it with SIGTERM and SIGHUP, after which the shell it ran in must be usable again.
//! tmux is required: without it these tests fail (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    /// A detached session running a plain `sh`, 150×45.
    fn new(name: &str) -> Tmux {
        let found = Command::new("tmux").arg("-V").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "tmux is required for the TUI tests: install it (apt-get install tmux; .ci/run does)"
        );
        let t = Tmux {
            socket: format!("qd-{name}-{}", std::process::id()),
        };
        t.run(&[
            "new-session",
            "-d",
            "-s",
            "qd",
            "-x",
            "150",
            "-y",
            "45",
            "sh",
        ]);
        t
    }

    fn run(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    fn keys(&self, k: &str) {
        self.run(&["send-keys", "-t", "qd", k]);
    }

    /// Types a shell command line and presses Enter.
    fn type_line(&self, line: &str) {
        self.run(&["send-keys", "-t", "qd", "-l", line]);
        self.run(&["send-keys", "-t", "qd", "Enter"]);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-t", "qd", "-p"])
    }

    /// (alternate screen on, cursor visible) of the pane, as tmux tracks them.
    fn screen_modes(&self) -> (bool, bool) {
        let s = self.run(&[
            "display-message",
            "-p",
            "-t",
            "qd",
            "#{alternate_on} #{cursor_flag}",
        ]);
        let mut it = s.split_whitespace().map(|f| f == "1");
        (it.next().unwrap_or(false), it.next().unwrap_or(false))
    }

    /// Waits (bounded) until `pred` holds for the screen; panics with the screen otherwise.
    fn wait_until(&self, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("screen never showed {what}:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_for(&self, needle: &str, secs: u64) -> String {
        self.wait_until(&format!("{needle:?}"), secs, |s| s.contains(needle))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

/// A home with a tiny config; `timesteps` sizes the training runs.
fn write_config(dir: &Path, timesteps: u64) -> String {
    let p = dir.join("tiny.toml");
    std::fs::write(
        &p,
        format!(
            "[universe]\nequities = [\"SYNA\"]\ncrypto = [\"SYNX/USD\"]\n[data]\nend = \"2024-03-28\"\n[features]\nwindow = 8\n\
             [ppo]\ndevice = \"cpu\"\nn_envs = 8\nn_steps = 32\nminibatch = 64\nepochs = 1\nvalidation_interval = 2\nhidden_dims = [16]\ntotal_timesteps = {timesteps}\n"
        ),
    )
    .expect("write config");
    p.display().to_string()
}

/// The TUI running in the session's shell; its pid is read from a file the shell writes before
/// `exec`ing the binary.
struct Tui {
    home: tempfile::TempDir,
    cfg: String,
    pid: u32,
}

impl Tui {
    fn start(t: &Tmux, timesteps: u64) -> Tui {
        let home = tempfile::tempdir().expect("tmp");
        let cfg = write_config(home.path(), timesteps);
        let pidfile = home.path().join("tui.pid");
        let line = format!(
            "sh -c 'echo $$ > {}; exec {} --home {} --config {}'",
            pidfile.display(),
            env!("CARGO_BIN_EXE_quantdeck"),
            home.path().display(),
            cfg
        );
        t.type_line(&line);
        t.wait_for("1 Data", 20);
        let pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .expect("the shell wrote the TUI's pid");
        assert_eq!(t.screen_modes(), (true, false), "the TUI owns the screen");
        Tui { home, cfg, pid }
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    /// Running: a zombie (exited, not yet reaped — an orphan waits for the container's init)
    /// is not.
    fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                != Some("Z")
        })
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} {}", self.pid);
    }

    /// Waits (bounded) for the process to end.
    fn wait_exit(&self, t: &Tmux, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.alive() {
            assert!(
                Instant::now() < deadline,
                "quantdeck still runs {secs} s later:\n{}",
                t.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// After the TUI left: the normal screen with a visible cursor, the terminal out of raw mode,
/// and a shell that runs commands and saw exit status 0.
fn assert_shell_is_back(t: &Tmux, why: &str) {
    let s = t.screen();
    assert!(
        !s.contains("1 Data │ 2 Training"),
        "{why}: the TUI is still on screen:\n{s}"
    );
    assert_eq!(
        t.screen_modes(),
        (false, true),
        "{why}: alternate screen still on or cursor still hidden"
    );
    t.type_line(
        "echo \"status:$? tty:$(stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ,)\"",
    );
    t.wait_for("status:0 tty:icanon,echo,", 10);
}

fn run_dirs(home: &Path, kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(home.join("runs"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{kind}-")))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `t` asks which mode: move up to quick_test (the first row) and start it.
fn train_quick_test(t: &Tmux) {
    t.keys("t");
    t.wait_for("which mode?", 10);
    for _ in 0..4 {
        t.keys("Up");
    }
    t.wait_for("▶ quick_test", 10);
    t.keys("Enter");
    t.wait_until("the chooser closed", 10, |s| !s.contains("which mode?"));
}

#[test]
fn workstation_in_tmux() {
    let t = Tmux::new("workstation");
    let tui = Tui::start(&t, 1024);

    // Fetch from the Data pane: the synthetic series appear, labelled as such.
    t.keys("f");
    let s = t.wait_for("SYNX/USD", 30);
    assert!(s.contains("SYNTHETIC"), "{s}");

    // What the model sees: the selected series' latest feature vector (computed by the
    // watcher thread, not the UI thread).
    t.keys("v");
    // Wait for the box's last column: the frame reaches tmux in pieces.
    t.wait_for("Features of", 20);
    let s = t.wait_for("h1.pos_in_hour", 20);
    assert!(
        s.contains("regime.vol_low") && s.contains("h1.pos_in_hour"),
        "{s}"
    );
    t.keys("v");

    // Train the selected symbol and watch it finish in the Training pane.
    train_quick_test(&t);
    t.keys("2");
    t.wait_for("[completed]", 60);

    // A training run started headless in another process shows up live.
    let home = tui.home().display().to_string();
    let status = Command::new(env!("CARGO_BIN_EXE_quantdeck"))
        .args(["--home", &home, "--config", &tui.cfg, "train", "SYNX/USD"])
        .output()
        .expect("headless train");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let s = t.wait_for("run 2/2", 20);
    assert!(s.contains("synx-usd") || s.contains("SYNX/USD"), "{s}");

    // Gate the selected run from the TUI.
    t.keys("g");
    t.keys("3");
    t.wait_for("Gating —", 20);
    t.wait_until("a gate class", 20, |s| {
        ["APPROVED", "REVIEW", "DROP"].iter().any(|c| s.contains(c))
    });

    // Tiny terminals do not break it; quitting restores the shell.
    t.run(&["resize-window", "-t", "qd", "-x", "12", "-y", "4"]);
    std::thread::sleep(Duration::from_millis(500));
    t.run(&["resize-window", "-t", "qd", "-x", "150", "-y", "45"]);
    t.keys("?");
    t.wait_for("in this help", 10);
    t.keys("Escape");
    // An Escape followed at once by `q` reaches the TUI as one Alt+q sequence: wait for the
    // help to close first, as a person would.
    t.wait_until("the help closed", 10, |s| !s.contains("in this help"));
    t.keys("q");
    tui.wait_exit(&t, 10);
    assert_shell_is_back(&t, "q");
}

#[test]
fn sigterm_and_sighup_give_the_terminal_back() {
    for sig in ["TERM", "HUP"] {
        let t = Tmux::new(&format!("sig{sig}"));
        let tui = Tui::start(&t, 1024);
        tui.signal(sig);
        tui.wait_exit(&t, 10);
        assert_shell_is_back(&t, &format!("SIG{sig}"));
    }
}

/// The terminal going away (the tmux session killed, as an SSH connection dropping does) ends
/// the TUI. Before: it lived on orphaned, spinning a core inside the terminal reader, deaf to
/// SIGTERM.
#[test]
fn a_dropped_terminal_ends_the_tui() {
    let t = Tmux::new("dropped");
    let tui = Tui::start(&t, 1024);
    t.run(&["kill-session", "-t", "qd"]);
    tui.wait_exit(&t, 10);
}

#[test]
fn sigterm_lets_a_training_started_here_save_its_model() {
    let t = Tmux::new("sigterm-train");
    // 2,000 updates: far more than run before the signal.
    let tui = Tui::start(&t, 2_000 * 8 * 32);
    t.keys("f");
    t.wait_for("SYNX/USD", 30);
    train_quick_test(&t);
    t.keys("2");
    // Some updates done (the gauge reads "update N/2000").
    t.wait_until("update 2 or later", 60, |s| {
        s.split("update ")
            .skip(1)
            .filter_map(|r| r.split('/').next()?.parse::<u32>().ok())
            .any(|n| n >= 2)
    });
    let runs = run_dirs(tui.home(), "train");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(
        !runs[0].join("model.safetensors").exists(),
        "no model before the signal"
    );
    tui.signal("TERM");
    tui.wait_exit(&t, 30);
    assert_shell_is_back(&t, "SIGTERM during training");
    assert!(
        runs[0].join("model.safetensors").is_file(),
        "the cancelled training saved no model in {}",
        runs[0].display()
    );
    let manifest = std::fs::read_to_string(runs[0].join("manifest.json")).unwrap_or_default();
    assert!(
        manifest.contains("\"status\": \"cancelled\""),
        "the run is recorded as cancelled:\n{manifest}"
    );
}
