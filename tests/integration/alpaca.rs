//! The real Alpaca client and fetch job against the in-process fake Alpaca server on 127.0.0.1.

use crate::common;

use crate::common::fake_alpaca::{FakeAlpaca, Fault, KEY_ID, SECRET};
use chrono::NaiveDate;
use quantdeck::config::{Config, DataSource, SyntheticConfig};
use quantdeck::data::alpaca::{ClientSettings, Credentials, DataClient, RateLimiter};
use quantdeck::data::{synthetic, Store};
use quantdeck::jobs::{self, CancelToken, JobRequest, JobStatus};
use quantdeck::market::{Bar, Symbol, Timeframe};
use quantdeck::paths::Paths;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Env vars are process-wide: tests that set them run one at a time.
static ENV: Mutex<()> = Mutex::new(());

fn dataset(names: &[&str], last_day: u32) -> BTreeMap<String, Vec<Bar>> {
    let d = |m, dd| NaiveDate::from_ymd_opt(2024, m, dd).unwrap();
    names
        .iter()
        .map(|n| {
            let sym = Symbol::parse(n);
            (
                n.to_string(),
                synthetic::generate(
                    &SyntheticConfig {
                        seed: 99,
                        ..Default::default()
                    },
                    &sym,
                    Timeframe::Minute(15),
                    d(3, 4),
                    d(3, last_day),
                )
                .unwrap(),
            )
        })
        .collect()
}

fn config(end_day: u32) -> Config {
    let mut cfg = common::tiny_config();
    cfg.data.source = DataSource::Alpaca;
    cfg.data.start = "2024-03-04".into();
    cfg.data.end = format!("2024-03-{end_day:02}");
    cfg.data.retry_base_ms = 5;
    cfg.data.max_retries = 5;
    cfg.data.timeout_s = 1;
    cfg.data.rate_limit_per_minute = 6000;
    cfg
}

fn with_env<T>(fake: &FakeAlpaca, f: impl FnOnce() -> T) -> T {
    let _g = ENV.lock().unwrap_or_else(|p| p.into_inner());
    std::env::set_var("APCA_API_DATA_URL", fake.url());
    std::env::set_var("APCA_API_BASE_URL", fake.url());
    std::env::set_var("APCA_API_KEY_ID", KEY_ID);
    std::env::set_var("APCA_API_SECRET_KEY", SECRET);
    std::env::remove_var("ALPACA_KEYS_FILE");
    f()
}

fn fetch(paths: &Paths, cfg: &Config, symbols: &[&str]) -> anyhow::Result<String> {
    let req = JobRequest::Fetch {
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
    };
    jobs::run_job(paths, cfg, &req, &CancelToken::new(), None)
}

fn stored(paths: &Paths, name: &str) -> Vec<Bar> {
    Store::new(&paths.data)
        .read(&Symbol::parse(name), Timeframe::Minute(15))
        .unwrap()
}

/// Every file a run wrote, concatenated (to look for leaked secrets).
fn all_run_text(paths: &Paths) -> String {
    let mut s = String::new();
    for e in std::fs::read_dir(&paths.runs).unwrap().flatten() {
        for f in ["manifest.json", "events.jsonl"] {
            s.push_str(&std::fs::read_to_string(e.path().join(f)).unwrap_or_default());
        }
    }
    s
}

#[test]
fn multi_symbol_pages_store_exactly_the_served_bars() {
    let data = dataset(&["AAA", "BBB", "CCC"], 8);
    // 137 bars per page splits each symbol's 130 bars across pages.
    let fake = FakeAlpaca::start(data.clone(), 137);
    let (_t, paths) = common::temp_home();
    let cfg = config(8);
    with_env(&fake, || fetch(&paths, &cfg, &["AAA", "BBB", "CCC"])).unwrap();
    for (name, bars) in &data {
        assert_eq!(
            &stored(&paths, name),
            bars,
            "{name}: none missing, none duplicated, in order"
        );
    }
    let reqs = fake.bar_requests();
    assert_eq!(
        reqs.len(),
        (3 * 130usize).div_ceil(137),
        "one request per page"
    );
    assert!(reqs
        .iter()
        .all(|r| r.query["symbols"] == "AAA,BBB,CCC" && r.query["feed"] == "iex"));
    assert!(reqs[1].query.contains_key("page_token"));
    assert!(!all_run_text(&paths).contains(SECRET));
}

#[test]
fn retries_429_5xx_truncated_malformed_and_slow_answers() {
    let data = dataset(&["AAA"], 6);
    let fake = FakeAlpaca::start(data.clone(), 50);
    fake.push_fault(Fault::TooMany { reset_in_s: 2 });
    fake.push_fault(Fault::Status(500, "internal error"));
    fake.push_fault(Fault::Status(503, "unavailable"));
    fake.push_fault(Fault::TruncatedBody);
    fake.push_fault(Fault::MalformedJson);
    fake.push_fault(Fault::Slow(Duration::from_millis(2500)));
    let (_t, paths) = common::temp_home();
    let mut cfg = config(6);
    cfg.data.max_retries = 8;
    with_env(&fake, || fetch(&paths, &cfg, &["AAA"])).unwrap();
    assert_eq!(stored(&paths, "AAA"), data["AAA"]);
    let reqs = fake.bar_requests();
    assert_eq!(reqs[0].status, 429);
    // The client waited for the server's reset before asking again.
    assert!(
        reqs[1].at.duration_since(reqs[0].at) >= Duration::from_millis(900),
        "{:?}",
        reqs[1].at.duration_since(reqs[0].at)
    );
    assert_eq!(
        reqs.len(),
        6 + 2,
        "six failed attempts, then two clean pages"
    );
}

#[test]
fn retry_budget_spent_fails_clearly_and_keeps_what_was_stored() {
    let data = dataset(&["AAA"], 8);
    let fake = FakeAlpaca::start(data.clone(), 40);
    fake.state.lock().unwrap().fail_after_pages = Some(2);
    let (_t, paths) = common::temp_home();
    let mut cfg = config(8);
    cfg.data.max_retries = 2;
    let err = with_env(&fake, || fetch(&paths, &cfg, &["AAA"])).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("after 3 attempts") && msg.contains("500"),
        "{msg}"
    );
    let partial = stored(&paths, "AAA");
    assert_eq!(
        partial,
        data["AAA"][..80],
        "the two pages that arrived are kept"
    );
    let runs = jobs::list_runs(&paths);
    assert_eq!(runs[0].manifest.status, JobStatus::Failed);

    // Kill-and-resume: the rerun continues after the last stored bar and ends exact.
    fake.state.lock().unwrap().fail_after_pages = None;
    let before = fake.bar_requests().len();
    with_env(&fake, || fetch(&paths, &cfg, &["AAA"])).unwrap();
    assert_eq!(stored(&paths, "AAA"), data["AAA"]);
    let resumed = &fake.bar_requests()[before];
    let start = chrono::DateTime::parse_from_rfc3339(&resumed.query["start"]).unwrap();
    assert!(
        start > partial[79].ts,
        "resumed at {start}, after {}",
        partial[79].ts
    );
}

#[test]
fn incremental_refresh_fetches_only_the_new_range() {
    let data = dataset(&["AAA"], 15);
    let fake = FakeAlpaca::start(data.clone(), 10_000);
    let (_t, paths) = common::temp_home();
    with_env(&fake, || fetch(&paths, &config(8), &["AAA"])).unwrap();
    let first = stored(&paths, "AAA");
    assert_eq!(first.len(), 5 * 26);
    let n = fake.bar_requests().len();
    with_env(&fake, || fetch(&paths, &config(15), &["AAA"])).unwrap();
    assert_eq!(stored(&paths, "AAA"), data["AAA"]);
    let new: Vec<_> = fake.bar_requests()[n..].to_vec();
    assert_eq!(new.len(), 1);
    let start = chrono::DateTime::parse_from_rfc3339(&new[0].query["start"]).unwrap();
    assert!(start > first.last().unwrap().ts);
}

#[test]
fn corrupt_cache_is_moved_aside_and_refetched() {
    let data = dataset(&["AAA"], 6);
    let fake = FakeAlpaca::start(data.clone(), 10_000);
    let (_t, paths) = common::temp_home();
    let cfg = config(6);
    with_env(&fake, || fetch(&paths, &cfg, &["AAA"])).unwrap();
    let file = Store::new(&paths.data).parquet_path(&Symbol::parse("AAA"), Timeframe::Minute(15));
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 3]).unwrap();
    with_env(&fake, || fetch(&paths, &cfg, &["AAA"])).unwrap();
    assert_eq!(stored(&paths, "AAA"), data["AAA"]);
    let aside: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
        .collect();
    assert_eq!(aside.len(), 1, "the corrupt file is kept for inspection");
    assert!(all_run_text(&paths).contains("moved the corrupt file"));
}

#[test]
fn unknown_symbol_is_reported_and_the_others_still_fetched() {
    let data = dataset(&["AAA", "BBB"], 6);
    let fake = FakeAlpaca::start(data.clone(), 10_000);
    let (_t, paths) = common::temp_home();
    let cfg = config(6);
    // The others are stored, and the job fails (a non-zero exit) saying which is which.
    let err = with_env(&fake, || fetch(&paths, &cfg, &["AAA", "ZZZZ", "BBB"])).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("1 of 3 symbol(s) failed: ZZZZ") && msg.contains("stored (Alpaca): AAA, BBB"),
        "{msg}"
    );
    assert_eq!(stored(&paths, "AAA"), data["AAA"]);
    assert_eq!(stored(&paths, "BBB"), data["BBB"]);
    let id = jobs::list_runs(&paths)[0].manifest.id.clone();
    let m = jobs::RunDir::open(&paths, &id)
        .unwrap()
        .read_manifest()
        .unwrap();
    let quantdeck::jobs::JobSummary::Fetch { failed, .. } = &m.summary else {
        panic!("fetch summary: {:?}", m.summary)
    };
    let failed = failed.join(";");
    assert!(
        failed.contains("ZZZZ") && failed.contains("unknown symbol"),
        "{failed}"
    );
}

#[test]
fn errors_say_what_to_do_without_leaking_the_secret() {
    let data = dataset(&["AAA"], 6);
    let fake = FakeAlpaca::start(data, 10_000);
    let (_t, paths) = common::temp_home();
    let mut cfg = config(6);

    // 401: names the host and the key id, never the secret.
    fake.state.lock().unwrap().secret = "another".into();
    let msg = format!(
        "{:#}",
        with_env(&fake, || fetch(&paths, &cfg, &["AAA"])).unwrap_err()
    );
    assert!(
        msg.contains("401") && msg.contains(KEY_ID) && msg.contains(&fake.addr.to_string()),
        "{msg}"
    );
    assert!(!msg.contains(SECRET));
    fake.state.lock().unwrap().secret = SECRET.into();

    // 403 on SIP: suggests the free feed.
    cfg.data.feed = "sip".into();
    let msg = format!(
        "{:#}",
        with_env(&fake, || fetch(&paths, &cfg, &["AAA"])).unwrap_err()
    );
    assert!(
        msg.contains("403") && msg.contains("feed = \"iex\""),
        "{msg}"
    );
    cfg.data.feed = "iex".into();

    // 422: names the parameter.
    cfg.data.timeframe = Timeframe::Hour(1);
    let msg = format!(
        "{:#}",
        with_env(&fake, || fetch(&paths, &cfg, &["AAA"])).unwrap_err()
    );
    assert!(msg.contains("`timeframe`"), "{msg}");
    assert!(!all_run_text(&paths).contains(SECRET));

    // No keys: explains how to set them and what else to use; no silent fallback.
    let _g = ENV.lock().unwrap_or_else(|p| p.into_inner());
    std::env::remove_var("APCA_API_KEY_ID");
    std::env::remove_var("APCA_API_SECRET_KEY");
    std::env::remove_var("ALPACA_KEYS_FILE");
    let msg = format!("{:#}", fetch(&paths, &config(6), &["AAA"]).unwrap_err());
    assert!(
        msg.contains("APCA_API_KEY_ID") && msg.contains("synthetic") && msg.contains("import"),
        "{msg}"
    );
}

#[test]
fn client_pages_and_limiter_holds_its_rate() {
    let data = dataset(&["AAA", "BTC/USD"], 5);
    let fake = FakeAlpaca::start(data.clone(), 25);
    let mut settings = ClientSettings::from_config(&config(5).data);
    settings.data_url = fake.url();
    let client = DataClient::new(settings, Credentials::new(KEY_ID, SECRET)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut got: Vec<Bar> = Vec::new();
    let (a, b) = (data["BTC/USD"][0].ts, data["BTC/USD"].last().unwrap().ts);
    let stats = rt
        .block_on(client.fetch_bars(
            &[Symbol::crypto("BTC/USD")],
            Timeframe::Minute(15),
            a,
            b,
            |page| {
                got.extend(page.get("BTC/USD").cloned().unwrap_or_default());
                Ok(())
            },
        ))
        .unwrap();
    assert_eq!(got, data["BTC/USD"]);
    assert_eq!(stats.requests as usize, data["BTC/USD"].len().div_ceil(25));
    assert!(fake
        .bar_requests()
        .iter()
        .all(|r| r.path == "/v1beta3/crypto/us/bars" && !r.query.contains_key("feed")));

    // 600/min starts with a 60-call burst, then 10 calls per second.
    let limiter = RateLimiter::new(600);
    let t0 = Instant::now();
    rt.block_on(async {
        for _ in 0..75 {
            limiter.acquire().await;
        }
    });
    assert!(
        t0.elapsed() >= Duration::from_millis(1400),
        "15 calls past the burst need ≥ 1.5 s, took {:?}",
        t0.elapsed()
    );
}

#[test]
fn cancelled_midway_then_rerun_ends_exact() {
    let data = dataset(&["AAA", "BBB"], 15);
    let fake = FakeAlpaca::start(data.clone(), 20);
    let (_t, paths) = common::temp_home();
    let cfg = config(15);
    let cancel = CancelToken::new();
    let c2 = cancel.clone();
    // Stop as soon as the first page has been stored.
    let observer = Box::new(move |rec: &jobs::EventRecord| {
        if matches!(rec.event, jobs::Event::SymbolFetched { .. }) {
            c2.cancel();
        }
    });
    let req = JobRequest::Fetch {
        symbols: vec!["AAA".into(), "BBB".into()],
    };
    let id = with_env(&fake, || {
        jobs::run_job(&paths, &cfg, &req, &cancel, Some(observer))
    })
    .unwrap();
    let m = jobs::RunDir::open(&paths, &id)
        .unwrap()
        .read_manifest()
        .unwrap();
    assert_eq!(m.status, JobStatus::Cancelled);
    let partial = stored(&paths, "AAA");
    assert!(
        !partial.is_empty() && partial.len() < data["AAA"].len(),
        "{} bars kept",
        partial.len()
    );
    assert_eq!(
        partial[..],
        data["AAA"][..partial.len()],
        "what was kept is exact"
    );
    with_env(&fake, || fetch(&paths, &cfg, &["AAA", "BBB"])).unwrap();
    assert_eq!(stored(&paths, "AAA"), data["AAA"]);
    assert_eq!(stored(&paths, "BBB"), data["BBB"]);
}

#[test]
fn the_portfolio_universe_is_fetched_at_its_timeframe_and_period() {
    let d = |m, dd| NaiveDate::from_ymd_opt(2024, m, dd).unwrap();
    let data: BTreeMap<String, Vec<Bar>> = ["AAA", "BBB"]
        .iter()
        .map(|n| {
            let bars = synthetic::generate(
                &SyntheticConfig {
                    seed: 7,
                    ..Default::default()
                },
                &Symbol::parse(n),
                Timeframe::Day,
                d(3, 4),
                d(3, 29),
            )
            .unwrap();
            (n.to_string(), bars)
        })
        .collect();
    let fake = FakeAlpaca::start(data.clone(), 1000);
    let (_t, paths) = common::temp_home();
    let mut cfg = config(8);
    cfg.portfolio.symbols = vec!["AAA".into(), "BBB".into()];
    cfg.portfolio.timeframe = Timeframe::Day;
    cfg.portfolio.start = "2024-03-04".into();
    cfg.portfolio.end = "2024-03-29".into();
    with_env(&fake, || {
        jobs::run_job(
            &paths,
            &cfg,
            &JobRequest::FetchPortfolio,
            &CancelToken::new(),
            None,
        )
    })
    .unwrap();
    for (name, bars) in &data {
        let got = Store::new(&paths.data)
            .read(&Symbol::parse(name), Timeframe::Day)
            .unwrap();
        assert_eq!(&got, bars, "{name}: the whole period at 1Day");
    }
    let reqs = fake.bar_requests();
    assert!(!reqs.is_empty());
    assert!(reqs
        .iter()
        .all(|r| r.query["timeframe"] == "1Day" && r.query["symbols"] == "AAA,BBB"));
    // The single-symbol universe's 15-minute store was not touched.
    assert!(Store::new(&paths.data)
        .read(&Symbol::parse("AAA"), Timeframe::Minute(15))
        .is_err());
}

/// With no adjustment configured, both the fetch and the live REST path (the warm-up gap fill
/// and polling, `minute_bars_after`) ask Alpaca for split-adjusted stock bars.
#[test]
fn stock_bars_are_split_adjusted_by_default_in_fetch_and_live_gap_fill() {
    let data = dataset(&["AAA"], 5);
    let fake = FakeAlpaca::start(data.clone(), 10_000);
    let (_t, paths) = common::temp_home();
    let cfg = config(5);
    assert_eq!(
        quantdeck::config::load(None, None).unwrap().data.adjustment,
        "split",
        "the built-in default"
    );
    with_env(&fake, || fetch(&paths, &cfg, &["AAA"])).unwrap();
    let fetched = fake.bar_requests().len();
    assert!(fetched > 0);

    fake.push_bar("AAA", data["AAA"][1]);
    // The daemon builds its REST client exactly so (`jobs::paper::alpaca_feed`).
    let mut settings = ClientSettings::from_config(&cfg.data);
    settings.data_url = fake.url();
    let client = DataClient::new(settings, Credentials::new(KEY_ID, SECRET)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let got = rt
        .block_on(client.minute_bars_after(
            &[Symbol::equity("AAA")],
            data["AAA"][0].ts,
            data["AAA"][9].ts,
        ))
        .unwrap();
    assert_eq!(got["AAA"], vec![data["AAA"][1]]);

    let reqs = fake.bar_requests();
    assert!(reqs.len() > fetched, "the gap fill asked too");
    for r in &reqs {
        assert_eq!(
            r.query.get("adjustment").map(String::as_str),
            Some("split"),
            "{} {:?}",
            r.path,
            r.query
        );
    }
}
