//! Drives the real binary in tmux as a user would: fetch, train from the TUI, watch a headless
//! training run started in another process appear live, gate, quit.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
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

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-t", "qd", "-p"])
    }

    /// Waits (bounded) until the screen shows `needle`; panics with the screen otherwise.
    fn wait_for(&self, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if s.contains(needle) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("screen never showed {needle:?}:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

fn write_config(dir: &Path) -> String {
    let p = dir.join("tiny.toml");
    std::fs::write(
        &p,
        "[universe]\nequities = [\"SYNA\"]\ncrypto = [\"SYNX/USD\"]\n[data]\nend = \"2024-03-28\"\n[features]\nwindow = 8\n\
         [ppo]\ndevice = \"cpu\"\nn_envs = 8\nn_steps = 32\nminibatch = 64\nepochs = 1\nvalidation_interval = 2\nhidden_dims = [16]\ntotal_timesteps = 1024\n",
    )
    .expect("write config");
    p.display().to_string()
}

#[test]
fn workstation_in_tmux() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED: tmux is not installed (the CI script installs it)");
        return;
    }
    let home = tempfile::tempdir().expect("tmp");
    let cfg = write_config(home.path());
    let bin = env!("CARGO_BIN_EXE_quantdeck");
    let t = Tmux {
        socket: format!("qd-test-{}", std::process::id()),
    };
    let cmd = format!("{bin} --home {} --config {cfg}", home.path().display());
    t.run(&[
        "new-session",
        "-d",
        "-s",
        "qd",
        "-x",
        "150",
        "-y",
        "45",
        &cmd,
    ]);
    t.wait_for("1 Data", 20);

    // Fetch from the Data pane: the synthetic series appear, labelled as such.
    t.keys("f");
    let s = t.wait_for("SYNX/USD", 30);
    assert!(s.contains("SYNTHETIC"), "{s}");

    // What the model sees: the selected series' latest feature vector.
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
    t.keys("t");
    t.keys("2");
    t.wait_for("[completed]", 60);

    // A training run started headless in another process shows up live.
    let status = Command::new(bin)
        .args([
            "--home",
            &home.path().display().to_string(),
            "--config",
            &cfg,
            "train",
            "SYNX/USD",
        ])
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
    let deadline = Instant::now() + Duration::from_secs(20);
    while !["APPROVED", "REVIEW", "DROP"]
        .iter()
        .any(|c| t.screen().contains(c))
    {
        assert!(
            Instant::now() < deadline,
            "no gate class shown:\n{}",
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Tiny terminals do not break it; quitting restores the shell.
    t.run(&["resize-window", "-t", "qd", "-x", "12", "-y", "4"]);
    std::thread::sleep(Duration::from_millis(500));
    t.run(&["resize-window", "-t", "qd", "-x", "150", "-y", "45"]);
    t.keys("?");
    t.wait_for("help", 10);
    t.keys("Escape");
    t.keys("q");
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.run(&["list-sessions"]).contains("qd:") {
        assert!(
            Instant::now() < deadline,
            "quantdeck did not exit on q:\n{}",
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
