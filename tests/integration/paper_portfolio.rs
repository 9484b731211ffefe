//! Paper trading a portfolio model (issue 10), as a user runs it (`quantdeck paper RUN`, a real
//! process): on the simulated broker over the members' unseen stored bars, and on the fake
//! Alpaca (127.0.0.1, real sockets) from an accelerated 1-minute feed, killed and restarted.
//!
//! The model is made directly: a policy whose choice follows the market's breadth at the last
//! step — MOMENTUM when most members rose over the lookback, else LOW_VOL — so it trades several
//! members and switches regimes as the market turns.

use crate::common::fake_alpaca::{FakeAlpaca, KEY_ID, SECRET};
use crate::common::{qd, qd_env, text};
use candle_core::{Device, Tensor};
use chrono::{DateTime, Duration, DurationRound, Utc};
use quantdeck::config::Config;
use quantdeck::data::Store;
use quantdeck::engine::checkpoint::{self, ModelMeta, FORMAT};
use quantdeck::engine::ActorCritic;
use quantdeck::eval::{GateClass, GateResult, ValidationMetrics};
use quantdeck::features::events::EventTable;
use quantdeck::features::portfolio::PortfolioSpec;
use quantdeck::features::FeatureSpec;
use quantdeck::jobs::{Event, EventRecord, JobKind, JobStatus, JobSummary, RunDir};
use quantdeck::live::view::{PaperSnapshot, PortfolioView};
use quantdeck::market::{AssetClass, Bar, Symbol, Timeframe};
use quantdeck::paths::Paths;
use quantdeck::rng::Rng;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const MEMBERS: [&str; 3] = ["SYNA/USD", "SYNB/USD", "SYNC/USD"];
const WINDOW: usize = 3;
const LOOKBACK: usize = 6;
const TF: Timeframe = Timeframe::Minute(15);

fn spec() -> PortfolioSpec {
    let names: Vec<String> = MEMBERS.iter().map(|s| s.to_string()).collect();
    PortfolioSpec::new(&names, TF, WINDOW, LOOKBACK)
}

/// Correlated random walks with a common factor, one 15-minute bar each per time.
fn walks(from: DateTime<Utc>, n: usize, rng: &mut Rng, px: &mut [f64; 3]) -> Vec<Vec<Bar>> {
    let mut out = vec![Vec::new(); 3];
    for k in 0..n {
        let ts = from + Duration::minutes(15 * k as i64);
        let common = 0.01 * rng.normal();
        for i in 0..3 {
            let open = px[i];
            px[i] *= 1.0 + common + 0.006 * rng.normal();
            out[i].push(Bar {
                ts,
                open,
                high: open.max(px[i]) * 1.001,
                low: open.min(px[i]) * 0.999,
                close: px[i],
                volume: 10.0,
            });
        }
    }
    out
}

/// Writes the portfolio model into a completed training run; returns the run id.
fn portfolio_run(paths: &Paths, first: DateTime<Utc>, seen: DateTime<Utc>) -> String {
    let spec = spec();
    let dev = Device::Cpu;
    let hidden = 4;
    let model = ActorCritic::new(spec.obs_dim(), &[hidden], 12, 7, &dev).unwrap();
    let mut t: HashMap<String, Tensor> = model.named_tensors().into_iter().collect();
    // Unit 0 = tanh(5 · market.breadth of the newest step); the actor reads only it.
    let obs = spec.obs_dim();
    let breadth = (WINDOW - 1) * spec.step_dim() + MEMBERS.len() * spec.symbol_features.len() + 1;
    let mut w = vec![0f32; hidden * obs];
    w[breadth] = 5.0;
    let mut wa = vec![0f32; 12 * hidden];
    wa[5 * hidden] = 10.0; // MOMENTUM when breadth > 0 …
    wa[6 * hidden] = -10.0; // … LOW_VOL when below
    let mut put = |k: &str, v: Vec<f32>, shape: &[usize]| {
        t.insert(k.into(), Tensor::from_vec(v, shape, &dev).unwrap());
    };
    put("trunk.0.weight", w, &[hidden, obs]);
    put("trunk.0.bias", vec![0.0; hidden], &[hidden]);
    put("actor.weight", wa, &[12, hidden]);
    put("actor.bias", vec![0.0; 12], &[12]);
    let model = ActorCritic::from_tensors(obs, &[hidden], 12, &t, &dev).unwrap();
    let cfg = Config::default();
    let meta = ModelMeta {
        format: FORMAT.into(),
        quantdeck_version: "test".into(),
        symbol: "portfolio".into(),
        class: AssetClass::Crypto,
        timeframe: TF,
        source: "test".into(),
        feature_spec: FeatureSpec::current(8, &EventTable::default()),
        action_meanings: quantdeck::sim::portfolio::REGIME_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        obs_dim: obs,
        hidden_dims: vec![hidden],
        n_actions: 12,
        param_count: model.param_count(),
        train_first: first,
        train_last: seen,
        val_first: Some(seen),
        val_last: Some(seen),
        data_first: first,
        data_last: seen,
        data_sha256: String::new(),
        update: 1,
        timesteps: 1,
        created: Utc::now(),
        config: cfg.clone(),
        gru: None,
        portfolio: Some(spec),
    };
    let (dir, mut m) = RunDir::create(
        paths,
        JobKind::Train,
        "portfolio",
        serde_json::to_value(&cfg).unwrap(),
        None,
    )
    .unwrap();
    checkpoint::save_model(&dir.artifact("model.safetensors"), &model, &meta).unwrap();
    m.status = JobStatus::Completed;
    m.finished = Some(Utc::now());
    dir.write_manifest(&m).unwrap();
    dir.id
}

/// A gate verdict for a run, as `quantdeck gate` records it.
fn approve(paths: &Paths, train: &str) {
    let (dir, mut m) = RunDir::create(
        paths,
        JobKind::Gate,
        "portfolio",
        serde_json::json!({}),
        Some(train.to_string()),
    )
    .unwrap();
    m.status = JobStatus::Completed;
    m.finished = Some(Utc::now());
    m.summary = JobSummary::Gate {
        train_run: train.to_string(),
        result: GateResult {
            class: GateClass::Approved,
            flags: Vec::new(),
            use_checkpoint: None,
            metrics: ValidationMetrics::default(),
            composite: None,
            baselines: None,
            group: None,
        },
        interrupted: false,
    };
    dir.write_manifest(&m).unwrap();
}

/// The rules that let the regime's weights through as they are (the default gates cap a
/// position at 20 % of equity), and no drawdown or loss latch for a random market.
fn write_config(home: &Path, broker: &str) -> String {
    let p = home.join("desk.toml");
    std::fs::write(
        &p,
        format!(
            "[backtest]\ndrawdown_halve = 0.99\ndrawdown_halt = 0.99\n\
             [live]\nbroker = \"{broker}\"\nconfidence_threshold = 0.0\ncooldown_s = 0\n\
             cash_buffer = 0.0\nmax_position = 1.0\nmax_exposure = 1.0\ndaily_loss_limit = 1.0\n\
             bars_per_second = 0.0\norder_timeout_s = 2\npoll_interval_s = 1\n"
        ),
    )
    .unwrap();
    p.display().to_string()
}

fn paper_dir(home: &Path) -> Option<PathBuf> {
    std::fs::read_dir(home.join("runs"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("paper-")
        })
}

fn events(home: &Path) -> Vec<EventRecord> {
    let Some(dir) = paper_dir(home) else {
        return Vec::new();
    };
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn snapshots(home: &Path) -> Vec<PaperSnapshot> {
    events(home)
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Paper(s) => Some(*s),
            _ => None,
        })
        .collect()
}

fn portfolio(s: &PaperSnapshot) -> &PortfolioView {
    s.portfolio
        .as_ref()
        .expect("a portfolio session's snapshot")
}

#[test]
fn a_simulated_portfolio_session_trades_the_universe_to_the_regimes_targets() {
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::under(home.path());
    paths.ensure().unwrap();
    let from = (Utc::now() - Duration::days(20))
        .duration_trunc(Duration::minutes(15))
        .unwrap();
    let mut rng = Rng::new(3);
    let series = walks(from, 120, &mut rng, &mut [100.0, 50.0, 20.0]);
    let store = Store::new(&paths.data);
    let syms: Vec<Symbol> = MEMBERS.iter().map(|s| Symbol::crypto(s)).collect();
    for (s, bars) in syms.iter().zip(&series) {
        store.write(s, TF, bars, "import").unwrap();
    }
    // The model saw the first 60 bars; the replay takes the 60 after.
    let seen = series[0][59].ts;
    let train = portfolio_run(&paths, from, seen);
    let cfg = write_config(home.path(), "sim");
    let o = qd(home.path(), &["--config", &cfg, "paper", &train]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("replay finished"), "{}", text(&o));

    let snaps = snapshots(home.path());
    let last = snaps.last().expect("snapshots");
    let pv = portfolio(last);
    assert!(
        last.rows.is_empty(),
        "no single-symbol rows: {:?}",
        last.rows
    );
    assert_eq!(pv.last_bar, Some(series[0][119].ts));
    // Decisions only on unseen bars, and both regimes came up as the market turned.
    let regimes: std::collections::BTreeSet<String> = snaps
        .iter()
        .filter_map(|s| s.portfolio.as_ref()?.regime.clone())
        .collect();
    assert!(
        regimes.contains("MOMENTUM") && regimes.contains("LOW_VOL"),
        "{regimes:?}"
    );
    // The final weights are the last regime's targets, within costs and rounding.
    let regime = pv.regime.clone().unwrap();
    assert!(regime == "MOMENTUM" || regime == "LOW_VOL", "{regime}");
    let held: Vec<&str> = pv
        .rows
        .iter()
        .filter(|r| r.target > 0.0)
        .map(|r| r.symbol.as_str())
        .collect();
    assert_eq!(held.len(), 2, "⌈3/2⌉ members at 50 %: {pv:?}");
    for r in &pv.rows {
        assert!(
            (r.actual - r.target).abs() < 0.03,
            "{}: actual {:.4} vs target {:.4} ({pv:?})",
            r.symbol,
            r.actual,
            r.target
        );
    }
    // Several members traded, each order named by its member and bar, each sent once.
    let dir = paper_dir(home.path()).unwrap();
    let journal = quantdeck::live::journal::Journal::read(&dir.join("journal.jsonl")).unwrap();
    let mut intents: BTreeMap<String, usize> = BTreeMap::new();
    for e in &journal {
        if let quantdeck::live::journal::Entry::Intent {
            id, symbol, bar, ..
        } = e
        {
            assert!(*bar > seen, "{id} decided on a bar the model saw");
            assert!(
                id.contains(&format!("-{}-", symbol.replace('/', ""))),
                "{id}"
            );
            *intents.entry(id.clone()).or_default() += 1;
        }
    }
    assert!(intents.values().all(|n| *n == 1), "{intents:?}");
    let traded: std::collections::BTreeSet<&str> = journal
        .iter()
        .filter_map(|e| match e {
            quantdeck::live::journal::Entry::Intent { symbol, .. } => Some(symbol.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(traded.len(), 3, "{traded:?}");

    // Mixing a portfolio model with another model in one session is refused, by name.
    let other = portfolio_run(&paths, from, seen);
    let o = qd(home.path(), &["--config", &cfg, "paper", &train, &other]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("is a portfolio model") && text(&o).contains("separate session"),
        "{}",
        text(&o)
    );
}

/// A daemon process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct AlpacaDesk {
    home: tempfile::TempDir,
    cfg: String,
    fake: FakeAlpaca,
    train: String,
    next: DateTime<Utc>,
    px: [f64; 3],
    rng: Rng,
}

impl AlpacaDesk {
    fn new(gated: bool) -> AlpacaDesk {
        let home = tempfile::tempdir().unwrap();
        let paths = Paths::under(home.path());
        paths.ensure().unwrap();
        // Recent enough that a restarted daemon gap-fills the minutes since over REST.
        let end = (Utc::now() - Duration::hours(2))
            .duration_trunc(Duration::minutes(15))
            .unwrap();
        let from = end - Duration::minutes(15 * 39);
        let mut rng = Rng::new(9);
        let mut px = [100.0, 50.0, 20.0];
        let series = walks(from, 40, &mut rng, &mut px);
        let store = Store::new(&paths.data);
        for (s, bars) in MEMBERS.iter().zip(&series) {
            store.write(&Symbol::crypto(s), TF, bars, "import").unwrap();
        }
        let train = portfolio_run(&paths, from, end);
        if gated {
            approve(&paths, &train);
        }
        let cfg = write_config(home.path(), "alpaca");
        let fake = FakeAlpaca::trading();
        fake.set_cash("100000");
        AlpacaDesk {
            home,
            cfg,
            fake,
            train,
            next: end + Duration::minutes(15),
            px,
            rng,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("APCA_API_KEY_ID", KEY_ID.into()),
            ("APCA_API_SECRET_KEY", SECRET.into()),
            ("APCA_API_BASE_URL", self.fake.url()),
            ("APCA_API_STREAM_URL", self.fake.trade_stream_url()),
            ("APCA_API_DATA_URL", self.fake.url()),
            ("APCA_API_DATA_STREAM_URL", self.fake.ws_url()),
        ]
    }

    fn spawn(&self) -> Running {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.path().join("daemon.out"))
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_quantdeck"))
            .arg("--home")
            .arg(self.home.path())
            .args(["--config", &self.cfg, "paper", &self.train])
            .env_remove("QUANTDECK_HOME")
            .env_remove("ALPACA_KEYS_FILE")
            .envs(self.env())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .map(Running)
            .unwrap()
    }

    fn out(&self) -> String {
        std::fs::read_to_string(self.home.path().join("daemon.out")).unwrap_or_default()
    }

    fn wait(&self, what: &str, ok: impl Fn(&AlpacaDesk) -> bool) {
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        while !ok(self) {
            assert!(Instant::now() < deadline, "never: {what}\n{}", self.out());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn reconciled(&self) -> usize {
        events(self.home.path())
            .iter()
            .filter(|e| {
                matches!(&e.event, Event::Log { message, .. } if message.contains("reconciled with the broker"))
            })
            .count()
    }

    /// One 15-minute bar's minutes for every member.
    fn push_bar_time(&mut self) -> DateTime<Utc> {
        let start = self.next;
        for _ in 0..15 {
            let common = 0.002 * self.rng.normal();
            for (i, s) in MEMBERS.iter().enumerate() {
                let open = self.px[i];
                self.px[i] *= 1.0 + common + 0.001 * self.rng.normal();
                self.fake.push_bar(
                    s,
                    Bar {
                        ts: self.next,
                        open,
                        high: open.max(self.px[i]) * 1.0005,
                        low: open.min(self.px[i]) * 0.9995,
                        close: self.px[i],
                        volume: 3.0,
                    },
                );
            }
            self.next += Duration::minutes(1);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        start
    }

    fn decided(&self, t: DateTime<Utc>) -> Option<PortfolioView> {
        snapshots(self.home.path())
            .into_iter()
            .rev()
            .filter_map(|s| s.portfolio)
            .find(|p| p.last_bar.is_some_and(|b| b >= t))
    }

    fn session(&self) -> String {
        let dir = paper_dir(self.home.path()).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap())
                .unwrap();
        v["session"].as_str().unwrap().to_string()
    }
}

#[test]
fn an_alpaca_portfolio_session_sends_one_order_per_member_and_a_restart_sends_none_twice() {
    let mut d = AlpacaDesk::new(true);
    let daemon = d.spawn();
    d.wait("the daemon reconciled and streams trade updates", |d| {
        d.reconciled() >= 1 && d.fake.counters().trade_active >= 1
    });
    let t1 = d.push_bar_time();
    d.wait("the first bar time decided", |d| d.decided(t1).is_some());
    let pv = d.decided(t1).unwrap();
    let session = d.session();
    // From all cash: one entry per member the regime holds, with the deterministic ids.
    let want: std::collections::BTreeSet<String> = pv
        .rows
        .iter()
        .filter(|r| r.target > 0.0)
        .map(|r| {
            format!(
                "qd-{session}-{}-{}-e1",
                r.symbol.replace('/', ""),
                t1.timestamp()
            )
        })
        .collect();
    assert_eq!(want.len(), 2, "{pv:?}");
    d.wait("the entries reached the broker", |d| {
        d.fake.posts().len() >= want.len()
    });
    let got: std::collections::BTreeSet<String> = d.fake.posts().keys().cloned().collect();
    assert_eq!(got, want, "{}", d.out());

    // kill -9, then a new daemon on the same run directory: the decided bar is not decided
    // again, and the next bar time goes on with the same session's ids.
    let before = d.reconciled();
    drop(daemon);
    let _daemon = d.spawn();
    d.wait("the restarted daemon reconciled", |d| {
        d.reconciled() > before
    });
    d.wait("its trade stream is up", |d| {
        d.fake.counters().trade_active >= 1
    });
    let t2 = d.push_bar_time();
    d.wait("the next bar time decided", |d| d.decided(t2).is_some());
    let pv2 = d.decided(t2).unwrap();
    let sessions: Vec<String> = std::fs::read_dir(d.home.path().join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("paper-"))
        .collect();
    assert_eq!(
        sessions.len(),
        1,
        "the restart continues the session: {sessions:?}\n{}",
        d.out()
    );
    // The restarted daemon rebuilt the members' history (the store's bars, then the minutes since
    // over REST): the market's breadth is known again, so the policy picks a regime (an empty
    // history row would leave every logit equal: HOLD).
    assert!(
        matches!(pv2.chosen.as_deref(), Some("MOMENTUM" | "LOW_VOL")),
        "{pv2:?}\n{}",
        d.out()
    );
    // Let any order of the decision arrive.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let posts = d.fake.posts();
    assert!(
        posts.values().all(|n| *n == 1),
        "an id was sent twice: {posts:?}"
    );
    let mut per_bar: BTreeMap<(String, String), usize> = BTreeMap::new();
    for id in posts.keys() {
        assert!(id.starts_with(&format!("qd-{session}-")), "{id}");
        let parts: Vec<&str> = id.rsplitn(3, '-').collect();
        let member = id
            .trim_start_matches(&format!("qd-{session}-"))
            .split('-')
            .next()
            .unwrap()
            .to_string();
        *per_bar.entry((member, parts[1].to_string())).or_default() += 1;
        assert!(
            parts[1] == t1.timestamp().to_string() || parts[1] == t2.timestamp().to_string(),
            "{id}"
        );
    }
    assert!(
        per_bar.values().all(|n| *n == 1),
        "one order per member per rebalance: {per_bar:?}"
    );
    assert_eq!(
        posts
            .keys()
            .filter(|k| k.contains(&format!("-{}-", t1.timestamp())))
            .count(),
        want.len(),
        "the first bar time was decided again after the restart"
    );
    // What the second decision wanted differently from the first went out at t2.
    let moved = pv2
        .rows
        .iter()
        .zip(&pv.rows)
        .filter(|(a, b)| (a.target - b.target).abs() > 1e-9)
        .count();
    let at_t2 = posts
        .keys()
        .filter(|k| k.contains(&format!("-{}-", t2.timestamp())))
        .count();
    if moved > 0 {
        assert!(at_t2 >= 1, "{pv2:?} {posts:?}");
    }
    assert!(at_t2 <= MEMBERS.len());
}

/// The gate checks of single-symbol models apply: an ungated portfolio model never reaches
/// Alpaca, and nothing is sent.
#[test]
fn an_ungated_portfolio_model_is_refused_on_alpaca() {
    let d = AlpacaDesk::new(false);
    let env = d.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let o = qd_env(
        d.home.path(),
        &["--config", &d.cfg, "paper", &d.train],
        &env,
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("has not been gated"), "{}", text(&o));
    assert!(d.fake.posts().is_empty());
}
