//! A paper-trading desk for daemon tests: a quantdeck home with a gated model for SYNX/USD that
//! alternates BUY_75 / CLOSE on every bar, a fake Alpaca to trade it on, and the daemon run as
//! a real process (`quantdeck paper RUN`). The model is trained once per test binary and each
//! desk gets a copy of that home.
#![allow(dead_code)]

use super::alternating::alternate;
use super::fake_alpaca::{FakeAlpaca, KEY_ID, SECRET};
use super::{qd, qd_env, text};
use chrono::{DateTime, Duration, TimeZone, Utc};
use quantdeck::engine::checkpoint;
use quantdeck::jobs::{Event, EventRecord};
use quantdeck::live::view::PaperSnapshot;
use quantdeck::market::Bar;
use quantdeck::rng::Rng;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

pub const SYMBOL: &str = "SYNX/USD";

/// A daemon process that never outlives its test: killed when dropped (a failing test included).
pub struct Running(pub Child);

impl Running {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// The trained home every desk copies: (its path, the training run, the first bar after it).
struct Template {
    home: PathBuf,
    train: String,
    next: DateTime<Utc>,
    end: DateTime<Utc>,
}

const TRAINING: &str = "[universe]\nequities = []\ncrypto = [\"SYNX/USD\"]\n[features]\nwindow = 8\n\
    [ppo]\ndevice = \"cpu\"\nn_envs = 8\nn_steps = 32\nminibatch = 64\nepochs = 1\nvalidation_interval = 1\nhidden_dims = [16]\n\
    [gating]\nmin_trades = 1\nmin_days = 2\napproved = { fitness = -100.0, profit_factor = 0.0, consistency = 0.0, max_drawdown = 1.0 }\n\
    review = { fitness = -100.0, profit_factor = 0.0, consistency = 0.0, max_drawdown = 1.0 }\n";

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let home = tempfile::tempdir().expect("tmp").keep();
        let end = Utc::now() - Duration::days(3);
        let start = end - Duration::days(40);
        let cfg = home.join("desk.toml");
        let data = format!(
            "[data]\nstart = \"{}\"\nend = \"{}\"\n",
            day(start),
            day(end)
        );
        // Validations (and so the gate) trade as the desks' daemons do: every choice acted on.
        let rules = "[backtest]\nstop_loss = 1.0\ntake_profit = 10.0\n\
                     [live]\nconfidence_threshold = 0.0\ncooldown_s = 0\ndaily_loss_limit = 1.0\n";
        std::fs::write(&cfg, format!("{TRAINING}{rules}{data}")).expect("config");
        let cfg = cfg.display().to_string();
        for args in [
            vec!["fetch"],
            vec!["train", SYMBOL, "--timesteps", "512"],
            vec!["gate"],
        ] {
            let mut all = vec!["--config", cfg.as_str()];
            all.extend(args.iter().copied());
            let o = qd(&home, &all);
            assert!(o.status.success(), "{args:?}: {}", text(&o));
        }
        let train = std::fs::read_dir(home.join("runs"))
            .expect("runs")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .find(|n| n.starts_with("train-"))
            .expect("a training run");
        let run = home.join("runs").join(&train);
        alternate(&run.join("model.safetensors"));
        if run.join("best.safetensors").exists() {
            alternate(&run.join("best.safetensors"));
        }
        let (_, meta) =
            checkpoint::load_model(&run.join("model.safetensors"), &candle_core::Device::Cpu)
                .expect("model");
        Template {
            home,
            train,
            next: meta.data_last + Duration::minutes(15),
            end,
        }
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

pub struct Desk {
    pub home: tempfile::TempDir,
    pub cfg: String,
    pub fake: FakeAlpaca,
    pub train: String,
    pub next: DateTime<Utc>,
    pub price: f64,
    pub rng: Rng,
    /// Environment variables beside the defaults (later ones win).
    pub extra_env: Vec<(&'static str, String)>,
}

impl Desk {
    /// A desk whose `[live]` section gets `extra` appended.
    pub fn new(extra: &str) -> Desk {
        Desk::with("", extra, "")
    }

    /// A desk with lines added to `[backtest]` and `[live]`, and sections after them (`tail`).
    pub fn with(backtest: &str, live: &str, tail: &str) -> Desk {
        let t = template();
        let home = tempfile::tempdir().expect("tmp");
        copy_dir(&t.home, home.path());
        let cfg = home.path().join("desk.toml");
        let start = t.end - Duration::days(40);
        std::fs::write(
            &cfg,
            format!(
                "{TRAINING}[backtest]\nstop_loss = 1.0\ntake_profit = 10.0\n{backtest}\
                 [data]\nstart = \"{}\"\nend = \"{}\"\n\
                 [live]\nbroker = \"alpaca\"\nconfidence_threshold = 0.0\ncooldown_s = 0\norder_timeout_s = 2\npoll_interval_s = 1\ndaily_loss_limit = 1.0\n{live}{tail}",
                day(start),
                day(t.end)
            ),
        )
        .expect("config");
        let fake = FakeAlpaca::trading();
        fake.set_cash("100000");
        Desk {
            home,
            cfg: cfg.display().to_string(),
            fake,
            train: t.train.clone(),
            next: t.next,
            price: 100.0,
            rng: Rng::new(11),
            extra_env: Vec::new(),
        }
    }

    /// The desk's model always chooses `action` instead of alternating.
    pub fn constant_policy(&self, action: usize) {
        let run = self.home.path().join("runs").join(&self.train);
        for f in ["model.safetensors", "best.safetensors"] {
            if run.join(f).exists() {
                super::alternating::constant(&run.join(f), action);
            }
        }
    }

    /// The bars after the training range: the template's data end.
    pub fn data_end() -> DateTime<Utc> {
        template().end
    }

    /// The fake's hosts; the data stream's is derived from APCA_API_DATA_URL (the fake serves
    /// websockets on its REST port too).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("APCA_API_KEY_ID", KEY_ID.into()),
            ("APCA_API_SECRET_KEY", SECRET.into()),
            ("APCA_API_BASE_URL", self.fake.url()),
            ("APCA_API_STREAM_URL", self.fake.trade_stream_url()),
            ("APCA_API_DATA_URL", self.fake.url()),
        ];
        env.extend(self.extra_env.iter().cloned());
        env
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.path().join("daemon.out"))
            .expect("log");
        let mut c = Command::new(env!("CARGO_BIN_EXE_quantdeck"));
        c.arg("--home")
            .arg(self.home.path())
            .args(["--config", &self.cfg])
            .args(args)
            .env_remove("QUANTDECK_HOME")
            .env_remove("ALPACA_KEYS_FILE")
            .env_remove("QUANTDECK_NOTIFY_URL")
            .envs(self.env())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log));
        c
    }

    pub fn spawn(&self) -> Running {
        Running(
            self.command(&["paper", &self.train])
                .spawn()
                .expect("daemon"),
        )
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut a = vec!["--config", self.cfg.as_str()];
        a.extend_from_slice(args);
        qd_env(self.home.path(), &a, &env)
    }

    pub fn daemon_out(&self) -> String {
        std::fs::read_to_string(self.home.path().join("daemon.out")).unwrap_or_default()
    }

    pub fn paper_dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.home.path().join("runs"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("paper-"))
            })
            .collect();
        v.sort();
        v
    }

    pub fn paper_dir(&self) -> Option<PathBuf> {
        self.paper_dirs().into_iter().next()
    }

    pub fn events(&self) -> Vec<EventRecord> {
        let Some(dir) = self.paper_dir() else {
            return Vec::new();
        };
        std::fs::read_to_string(dir.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn logs(&self, needle: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(&e.event, Event::Log { message, .. } if message.contains(needle)))
            .count()
    }

    pub fn snapshot(&self) -> Option<PaperSnapshot> {
        self.events().into_iter().rev().find_map(|e| match e.event {
            Event::Paper(s) => Some(*s),
            _ => None,
        })
    }

    /// Waits until the daemon has reconciled `n` times in all and its trade stream is up.
    pub fn wait_ready(&self, n: usize) {
        self.until(60, "the daemon is ready", || {
            self.logs("reconciled with the broker") >= n && self.fake.counters().trade_active >= 1
        });
    }

    /// Waits until `ok`, failing after `secs` with the daemon's output.
    pub fn until(&self, secs: u64, what: &str, ok: impl Fn() -> bool) {
        let deadline = Instant::now() + std::time::Duration::from_secs(secs);
        while !ok() {
            assert!(
                Instant::now() < deadline,
                "never: {what}\n{}",
                self.daemon_out()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Pushes `n` 1-minute bars (a random walk) `gap` apart.
    pub fn push_minutes(&mut self, n: usize, gap: std::time::Duration) {
        for _ in 0..n {
            let open = self.price;
            self.price *= 1.0 + 0.002 * self.rng.normal();
            let bar = Bar {
                ts: self.next,
                open,
                high: open.max(self.price) * 1.001,
                low: open.min(self.price) * 0.999,
                close: self.price,
                volume: 5.0,
            };
            self.fake.push_bar(SYMBOL, bar);
            self.next += Duration::minutes(1);
            std::thread::sleep(gap);
        }
    }

    /// The start of the newest model bar the pushed minutes have closed.
    pub fn last_closed_bar(&self) -> DateTime<Utc> {
        let minutes = (self.next - Utc.timestamp_opt(0, 0).unwrap()).num_minutes();
        Utc.timestamp_opt((minutes / 15 * 15 - 15) * 60, 0).unwrap()
    }

    /// Waits until the daemon has decided the newest closed bar.
    pub fn wait_decided(&self) {
        let want = self.last_closed_bar();
        self.until(60, &format!("bar {want} decided"), || {
            self.snapshot()
                .and_then(|s| s.rows.first().and_then(|r| r.last_bar))
                .is_some_and(|t| t >= want)
        });
    }

    /// Waits until the latest snapshot satisfies `ok`.
    pub fn wait_for(&self, what: &str, ok: impl Fn(&PaperSnapshot) -> bool) -> PaperSnapshot {
        self.until(30, what, || self.snapshot().is_some_and(|s| ok(&s)));
        self.snapshot().expect("a snapshot")
    }

    /// Waits until the model's position equals the broker's (fills settled).
    pub fn wait_settled(&self) -> PaperSnapshot {
        self.wait_for("the model's position equals the broker's", |s| {
            (s.rows[0].position.qty - broker_qty(&self.fake)).abs() < 1e-9
        })
    }

    pub fn stop(&self, mut child: Running) {
        let o = self.cli(&["paper", "stop"]);
        assert!(o.status.success(), "{}", text(&o));
        let status = child.0.wait().expect("wait");
        assert!(status.success(), "{status:?}");
    }
}

/// The bar and intent an order id names: `qd-<session>-<SYM>-<bar>-<e|x><attempt>`.
pub fn intent_of(id: &str) -> (String, String) {
    let parts: Vec<&str> = id.rsplitn(3, '-').collect();
    (parts[1].to_string(), parts[0][..1].to_string())
}

pub fn broker_qty(fake: &FakeAlpaca) -> f64 {
    fake.positions()
        .iter()
        .filter(|p| p.symbol == "SYNXUSD")
        .map(|p| p.qty.to_string().parse::<f64>().unwrap_or(0.0))
        .sum()
}
