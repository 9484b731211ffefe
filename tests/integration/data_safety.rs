//! No silent data loss, through the real binary: refreshes refill interior holes, partial
//! failures and quarantined files exit non-zero, work that cannot fit is refused up front,
//! stores of earlier releases are moved into the current layout, and `features` refuses what it
//! would ignore.

use crate::common::fake_alpaca::{FakeAlpaca, KEY_ID, SECRET};
use crate::common::{qd, qd_env, text};
use chrono::NaiveDate;
use quantdeck::config::SyntheticConfig;
use quantdeck::data::{synthetic, Store};
use quantdeck::market::{AssetClass, Bar, Symbol, Timeframe};
use quantdeck::paths::Paths;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const TF: Timeframe = Timeframe::Minute(15);

fn bars(name: &str, last_day: u32) -> Vec<Bar> {
    let d = |dd| NaiveDate::from_ymd_opt(2024, 3, dd).unwrap();
    synthetic::generate(
        &SyntheticConfig {
            seed: 5,
            ..Default::default()
        },
        &Symbol::from_user(name).unwrap(),
        TF,
        d(4),
        d(last_day),
    )
    .unwrap()
}

/// `quantdeck fetch` against the fake, with a config that retries fast.
fn fetch_from(fake: &FakeAlpaca, home: &Path, symbols: &[&str]) -> std::process::Output {
    let cfg = home.join("fast.toml");
    std::fs::write(
        &cfg,
        "[data]\nrate_limit_per_minute = 10000\nretry_base_ms = 5\nmax_retries = 1\n",
    )
    .unwrap();
    let url = fake.url();
    let mut args = vec![
        "--config",
        cfg.to_str().unwrap(),
        "fetch",
        "--source",
        "alpaca",
        "--timeframe",
        "15Min",
        "--start",
        "2024-03-04",
        "--end",
        "2024-03-15",
    ];
    args.extend_from_slice(symbols);
    qd_env(
        home,
        &args,
        &[
            ("APCA_API_DATA_URL", &url),
            ("APCA_API_BASE_URL", &url),
            ("APCA_API_KEY_ID", KEY_ID),
            ("APCA_API_SECRET_KEY", SECRET),
        ],
    )
}

#[test]
fn a_refresh_refills_an_interior_hole_exactly() {
    let served = bars("AAA", 15);
    assert_eq!(served.len(), 10 * 26);
    let fake = FakeAlpaca::start(
        BTreeMap::from([("AAA".to_string(), served.clone())]),
        10_000,
    );
    let home = tempfile::tempdir().unwrap();
    let o = fetch_from(&fake, home.path(), &["AAA"]);
    assert!(o.status.success(), "{}", text(&o));
    let store = Store::new(&Paths::under(home.path()).data);
    let sym = Symbol::equity("AAA");
    // A hole in the middle: bars 100..140 (across an overnight break) are lost.
    let holed: Vec<Bar> = served[..100]
        .iter()
        .chain(&served[140..])
        .copied()
        .collect();
    store.write(&sym, TF, &holed, "alpaca").unwrap();

    let before = fake.bar_requests().len();
    let o = fetch_from(&fake, home.path(), &["AAA"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        store.read(&sym, TF).unwrap(),
        served,
        "the hole is filled exactly"
    );
    let new = &fake.bar_requests()[before..];
    assert_eq!(new.len(), 1, "one request for the one hole");
    let at = |k: &str| chrono::DateTime::parse_from_rfc3339(&new[0].query[k]).unwrap();
    assert_eq!(at("start"), served[100].ts);
    assert!(at("end") >= served[139].ts && at("end") < served[140].ts);

    // Complete now: a further refresh asks for nothing.
    let o = fetch_from(&fake, home.path(), &["AAA"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(fake.bar_requests().len(), before + 1);
}

#[test]
fn a_fetch_with_a_failed_symbol_stores_the_rest_and_exits_non_zero() {
    let fake = FakeAlpaca::start(
        BTreeMap::from([("AAA".to_string(), bars("AAA", 8))]),
        10_000,
    );
    let home = tempfile::tempdir().unwrap();
    let o = fetch_from(&fake, home.path(), &["AAA", "ZZZZ"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("1 of 2 symbol(s) failed: ZZZZ") && t.contains("stored (Alpaca): AAA"),
        "{t}"
    );
    let store = Store::new(&Paths::under(home.path()).data);
    assert_eq!(
        store.read(&Symbol::equity("AAA"), TF).unwrap(),
        bars("AAA", 8)
    );
    // A name that cannot be a symbol is refused before any request.
    let n = fake.bar_requests().len();
    let o = fetch_from(&fake, home.path(), &[".."]);
    assert!(
        !o.status.success() && text(&o).contains("not a symbol name"),
        "{}",
        text(&o)
    );
    assert_eq!(fake.bar_requests().len(), n);
}

#[test]
fn work_that_cannot_fit_is_refused_before_it_starts() {
    let home = tempfile::tempdir().unwrap();
    let absurd = [
        "--timeframe",
        "1Min",
        "--start",
        "1000-01-01",
        "--end",
        "9000-12-31",
    ];
    let t0 = Instant::now();
    let mut args = vec!["fetch", "--source", "synthetic", "SYNX/USD"];
    args.extend_from_slice(&absurd);
    let o = qd(home.path(), &args);
    assert!(!o.status.success());
    // Days outside 1900–2100 are refused as they are read, before any work is planned.
    assert!(
        text(&o).contains("will not fit") || text(&o).contains("between 1900-01-01 and 2100-12-31"),
        "{}",
        text(&o)
    );
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert!(Store::new(&Paths::under(home.path()).data)
        .list()
        .is_empty());

    // From Alpaca: refused before the first request.
    let fake = FakeAlpaca::start(BTreeMap::new(), 10_000);
    let url = fake.url();
    let mut args = vec!["fetch", "--source", "alpaca", "AAA"];
    args.extend_from_slice(&absurd);
    let o = qd_env(
        home.path(),
        &args,
        &[
            ("APCA_API_DATA_URL", &url),
            ("APCA_API_KEY_ID", KEY_ID),
            ("APCA_API_SECRET_KEY", SECRET),
        ],
    );
    assert!(
        !o.status.success()
            && (text(&o).contains("will not fit")
                || text(&o).contains("between 1900-01-01 and 2100-12-31")),
        "{}",
        text(&o)
    );
    assert!(fake.requests().is_empty());
}

#[test]
fn data_check_exits_non_zero_when_it_moves_a_corrupt_file_aside() {
    let home = tempfile::tempdir().unwrap();
    let o = qd(home.path(), &["fetch", "SYNA", "--end", "2024-02-01"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = qd(home.path(), &["data", "check"]);
    assert!(o.status.success(), "{}", text(&o));
    let file =
        Store::new(&Paths::under(home.path()).data).parquet_path(&Symbol::equity("SYNA"), TF);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let o = qd(home.path(), &["data", "check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("moved the corrupt file") && t.contains("moved aside: SYNA 15Min"),
        "{t}"
    );
    assert!(!file.exists());
    let o = qd(home.path(), &["data", "check", "--json"]);
    assert!(!o.status.success(), "nothing left to check: {}", text(&o));
}

#[test]
fn daily_and_hourly_series_have_full_coverage() {
    let home = tempfile::tempdir().unwrap();
    let o = qd(home.path(), &["fetch", "SYNA", "--end", "2024-03-28"]);
    assert!(o.status.success(), "{}", text(&o));
    for to in ["1Hour", "1Day"] {
        let o = qd(home.path(), &["data", "resample", "SYNA", "--to", to]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = qd(
        home.path(),
        &[
            "fetch",
            "SYNA",
            "--end",
            "2024-03-28",
            "--timeframe",
            "1Day",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = qd(home.path(), &["data", "check", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let reports = v.as_array().unwrap();
    assert_eq!(reports.len(), 3, "{v}");
    for r in reports {
        assert_eq!(r["report"]["coverage"], 1.0, "{r}");
        assert_eq!(r["report"]["missing"], 0, "{r}");
    }
}

/// Moves a series written by the current store to where an earlier release kept it
/// (`bars/<tf>/<BTC-USD style>.parquet`) with a sidecar of that release (no file stamp).
fn make_legacy(store: &Store, data: &Path, sym: &Symbol) -> std::path::PathBuf {
    let new = store.parquet_path(sym, TF);
    let legacy = data
        .join("bars")
        .join(TF.to_string())
        .join(format!("{}.parquet", sym.legacy_file_stem()));
    std::fs::rename(&new, &legacy).unwrap();
    let side = new.with_extension("json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&side).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("file");
    std::fs::write(legacy.with_extension("json"), v.to_string()).unwrap();
    std::fs::remove_file(side).unwrap();
    legacy
}

#[test]
fn an_old_store_is_moved_into_place_and_look_alike_names_stay_apart() {
    let home = tempfile::tempdir().unwrap();
    let data = Paths::under(home.path()).data;
    let store = Store::new(&data);
    let btc = Symbol::crypto("BTC/USD");
    let pair = bars("BTC/USD", 6);
    store.write(&btc, TF, &pair, "alpaca").unwrap();
    let legacy = make_legacy(&store, &data, &btc);
    assert!(legacy.ends_with("15Min/BTC-USD.parquet"));

    let o = qd(home.path(), &["data", "check"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("moved to"), "{}", text(&o));
    assert!(!legacy.exists());
    assert_eq!(store.read(&btc, TF).unwrap(), pair);

    // The equity BTC-USD, imported now, lands beside the pair, not on top of it.
    let csv = home.path().join("eq.csv");
    std::fs::write(
        &csv,
        "timestamp,open,high,low,close,volume\n2024-03-04 09:30,5,6,4,5.5,10\n2024-03-04 09:45,5.5,6,5,5.8,12\n",
    )
    .unwrap();
    let o = qd(home.path(), &["import", csv.to_str().unwrap(), "BTC-USD"]);
    assert!(o.status.success(), "{}", text(&o));
    let eq = store.read(&Symbol::equity("BTC-USD"), TF).unwrap();
    assert_eq!(eq.len(), 2);
    assert_eq!(
        eq[0].ts.to_rfc3339(),
        "2024-03-04T14:30:00+00:00",
        "naive times in New York"
    );
    assert_eq!(store.read(&btc, TF).unwrap(), pair);
    let listed: Vec<_> = store
        .list()
        .iter()
        .map(|i| (i.symbol.clone(), i.class))
        .collect();
    assert_eq!(
        listed,
        [
            ("BTC-USD".to_string(), AssetClass::Equity),
            ("BTC/USD".to_string(), AssetClass::Crypto)
        ]
    );
    let o = qd(home.path(), &["import", csv.to_str().unwrap(), "B\tX"]);
    assert!(
        !o.status.success() && text(&o).contains("control character"),
        "{}",
        text(&o)
    );
}

#[test]
fn features_applies_timeframe_and_window_and_refuses_what_it_cannot_write() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("h.csv");
    let o = qd(
        home.path(),
        &[
            "features",
            "SYNA",
            "--timeframe",
            "1Hour",
            "--window",
            "12",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let hourly = synthetic::generate(
        &SyntheticConfig::default(),
        &Symbol::equity("SYNA"),
        Timeframe::Hour(1),
        NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
        NaiveDate::from_ymd_opt(2024, 12, 31).unwrap(),
    )
    .unwrap();
    let csv = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        csv.lines().count(),
        hourly.len() + 1,
        "one row per 1Hour bar"
    );
    assert!(text(&o).contains("SYNA 1Hour"), "{}", text(&o));

    for (w, ok) in [
        ("0", false),
        ("1", false),
        ("2", true),
        ("1000", true),
        ("100000", false),
    ] {
        let o = qd(home.path(), &["features", "--spec", "--window", w]);
        assert_eq!(o.status.success(), ok, "--window {w}: {}", text(&o));
        if !ok {
            assert!(text(&o).contains("between 2 and 1000"), "{}", text(&o));
        }
    }
    let xlsx = home.path().join("f.xlsx");
    let o = qd(
        home.path(),
        &["features", "SYNA", "--out", xlsx.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("must end in .csv or .parquet"),
        "{}",
        text(&o)
    );
    assert!(!xlsx.exists());
}
