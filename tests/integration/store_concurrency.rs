//! Two `quantdeck fetch` processes writing the same series at once: the store's per-series lock
//! makes their read-merge-write cycles exclusive, so no bar is lost.

use crate::common::fake_alpaca::{FakeAlpaca, KEY_ID, SECRET};
use crate::common::{qd_env, text};
use chrono::NaiveDate;
use quantdeck::config::SyntheticConfig;
use quantdeck::data::{synthetic, Store};
use quantdeck::market::{Bar, Symbol, Timeframe};
use quantdeck::paths::Paths;
use std::collections::BTreeMap;

const BARS: usize = 5000;

/// 5,000 15-minute bars of one equity, served 100 to a page (50 merges per fetch).
fn served() -> Vec<Bar> {
    let d = |m, dd| NaiveDate::from_ymd_opt(2024, m, dd).unwrap();
    let mut bars = synthetic::generate(
        &SyntheticConfig::default(),
        &Symbol::equity("AAA"),
        Timeframe::Minute(15),
        d(1, 2),
        d(12, 31),
    )
    .unwrap();
    bars.truncate(BARS);
    bars
}

#[test]
fn two_fetch_processes_on_one_series_lose_no_bar() {
    let bars = served();
    assert_eq!(bars.len(), BARS);
    let end = bars[BARS - 1].ts.format("%Y-%m-%d").to_string();
    let fake = FakeAlpaca::start(BTreeMap::from([("AAA".to_string(), bars.clone())]), 100);
    let url = fake.url();
    let env = [
        ("APCA_API_DATA_URL", url.as_str()),
        ("APCA_API_BASE_URL", url.as_str()),
        ("APCA_API_KEY_ID", KEY_ID),
        ("APCA_API_SECRET_KEY", SECRET),
    ];
    let mut lost = Vec::new();
    for round in 0..5 {
        let home = tempfile::tempdir().unwrap();
        let cfg = home.path().join("fast.toml");
        std::fs::write(
            &cfg,
            "[data]\nrate_limit_per_minute = 10000\nretry_base_ms = 5\nconcurrency = 1\n",
        )
        .unwrap();
        let args = [
            "--config",
            cfg.to_str().unwrap(),
            "fetch",
            "AAA",
            "--source",
            "alpaca",
            "--timeframe",
            "15Min",
            "--start",
            "2024-01-02",
            "--end",
            &end,
        ];
        let outs: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| s.spawn(|| qd_env(home.path(), &args, &env)))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for o in &outs {
            assert!(o.status.success(), "round {round}: {}", text(o));
        }
        let stored = Store::new(&Paths::under(home.path()).data)
            .read(&Symbol::equity("AAA"), Timeframe::Minute(15))
            .unwrap();
        let have: std::collections::BTreeSet<_> = stored.iter().map(|b| b.ts).collect();
        lost.push(bars.iter().filter(|b| !have.contains(&b.ts)).count());
        if stored.len() == BARS {
            assert!(stored == bars, "round {round}: the stored values are exact");
        }
    }
    assert_eq!(lost, vec![0; 5], "bars lost per round");
}
