use super::*;
use chrono::TimeZone;

fn bar(min: i64, c: f64) -> Bar {
    Bar {
        ts: Utc.with_ymd_and_hms(2024, 3, 1, 14, 30, 0).unwrap() + chrono::Duration::minutes(min),
        open: c,
        high: c + 1.0,
        low: c - 1.0,
        close: c,
        volume: 10.0,
    }
}

fn bars(from: i64, n: i64) -> Vec<Bar> {
    (from..from + n)
        .map(|i| bar(15 * i, 100.0 + i as f64))
        .collect()
}

const TF: Timeframe = Timeframe::Minute(15);

#[test]
fn round_trip_sorts_and_dedups() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let sym = Symbol::crypto("BTC/USD");
    let info = store
        .write(
            &sym,
            TF,
            &[bar(30, 3.0), bar(0, 1.0), bar(15, 2.0), bar(15, 2.0)],
            "test",
        )
        .unwrap();
    assert_eq!(info.bars, 3);
    assert!(store
        .parquet_path(&sym, TF)
        .ends_with("bars/15Min/crypto/BTC%2FUSD.parquet"));
    let back = store.read(&sym, TF).unwrap();
    assert_eq!(back, vec![bar(0, 1.0), bar(15, 2.0), bar(30, 3.0)]);
    assert_eq!(store.list(), vec![store.info(&sym, TF).unwrap()]);
    assert_eq!(hash_bars(&back), info.sha256);
}

#[test]
fn corrupt_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let sym = Symbol::equity("AAA");
    store
        .write(&sym, TF, &[bar(0, 1.0), bar(15, 2.0)], "test")
        .unwrap();
    let p = store.parquet_path(&sym, TF);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let err = format!("{:#}", store.read(&sym, TF).unwrap_err());
    assert!(err.contains("AAA.parquet"), "{err}");
    // Listed (not hidden) and flagged, so that `data check` reports it.
    let listed = store.list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].flags, vec![UNREADABLE.to_string()]);
    let missing = format!("{:#}", store.read(&Symbol::equity("ZZZ"), TF).unwrap_err());
    assert!(missing.contains("quantdeck fetch ZZZ"), "{missing}");
}

#[test]
fn the_same_name_as_crypto_and_equity_and_look_alike_names_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let series = [
        (Symbol::crypto("BTC/USD"), bars(0, 3)),
        (Symbol::equity("BTC-USD"), bars(10, 4)),
        (Symbol::crypto("BTC-USD"), bars(20, 5)),
        (Symbol::equity("ÄÖ"), bars(30, 6)),
        (Symbol::equity("ÜÉ"), bars(40, 7)),
    ];
    for (sym, b) in &series {
        store.merge(sym, TF, b, "test").unwrap();
    }
    for (sym, b) in &series {
        assert_eq!(&store.read(sym, TF).unwrap(), b, "{sym} {:?}", sym.class);
    }
    let listed = store.list();
    assert_eq!(listed.len(), series.len());
    for (sym, b) in &series {
        assert!(listed
            .iter()
            .any(|i| i.symbol() == *sym && i.bars == b.len()));
    }
}

#[test]
fn concurrent_merges_from_threads_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let sym = Symbol::equity("AAA");
    // 8 writers, each merging its own 10 pages of 20 bars, all at once.
    std::thread::scope(|s| {
        for w in 0..8i64 {
            let (store, sym) = (&store, &sym);
            s.spawn(move || {
                for page in 0..10i64 {
                    let from = (w * 10 + page) * 20;
                    store.merge(sym, TF, &bars(from, 20), "test").unwrap();
                }
            });
        }
    });
    assert_eq!(store.read(&sym, TF).unwrap(), bars(0, 8 * 10 * 20));
    assert_eq!(store.info(&sym, TF).unwrap().bars, 1600);
}

#[test]
fn a_writer_waits_for_the_lock_and_times_out_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path()).with_lock_timeout(std::time::Duration::from_millis(300));
    let sym = Symbol::equity("AAA");
    let held = store.lock(&sym, TF).unwrap();
    let e = format!(
        "{:#}",
        store.merge(&sym, TF, &bars(0, 5), "test").unwrap_err()
    );
    assert!(e.contains(".AAA.lock") && e.contains("timed out"), "{e}");
    assert!(!store.parquet_path(&sym, TF).exists(), "nothing written");
    let patient = store
        .clone()
        .with_lock_timeout(std::time::Duration::from_secs(30));
    std::thread::scope(|s| {
        let w = s.spawn(|| patient.merge(&sym, TF, &bars(0, 5), "test"));
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(held);
        assert_eq!(w.join().unwrap().unwrap().bars, 5);
    });
}

#[test]
fn a_missing_or_garbage_sidecar_never_hides_the_bars() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let sym = Symbol::crypto("BTC/USD");
    let written = store.write(&sym, TF, &bars(0, 40), "alpaca").unwrap();
    let side = store.info_path(&sym, TF);

    std::fs::remove_file(&side).unwrap();
    let scan = store.scan();
    assert_eq!(scan.series.len(), 1);
    let got = &scan.series[0];
    assert_eq!((got.bars, &got.sha256), (40, &written.sha256));
    assert_eq!(got.source, "alpaca", "the source is kept in the parquet");
    assert!(scan.notes[0].contains("was missing"), "{:?}", scan.notes);
    assert!(side.exists(), "rebuilt");
    assert!(
        store.scan().notes.is_empty(),
        "a rebuilt sidecar is current"
    );

    std::fs::write(&side, "{ not json").unwrap();
    let scan = store.scan();
    assert_eq!(scan.series[0].bars, 40);
    assert!(scan.notes[0].contains("was unreadable"), "{:?}", scan.notes);
    std::fs::write(&side, "{ not json").unwrap();
    assert_eq!(store.info(&sym, TF).unwrap().sha256, written.sha256);
}

#[test]
fn a_stale_sidecar_left_by_a_killed_write_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let sym = Symbol::equity("AAA");
    store.write(&sym, TF, &bars(0, 30), "import").unwrap();
    let side = store.info_path(&sym, TF);
    let old = std::fs::read(&side).unwrap();
    let newer = store.merge(&sym, TF, &bars(30, 20), "import").unwrap();
    // A kill between the parquet's rename and the sidecar's: the old sidecar stays.
    std::fs::write(&side, &old).unwrap();
    let scan = store.scan();
    assert_eq!(scan.series[0].bars, 50);
    assert_eq!(scan.series[0].sha256, newer.sha256);
    assert!(
        scan.notes[0].contains("was stale") && scan.notes[0].contains("it said 30"),
        "{:?}",
        scan.notes
    );
    // Sidecars of earlier releases carry no file stamp: checked once against the parquet.
    let mut legacy: serde_json::Value = serde_json::from_slice(&old).unwrap();
    legacy.as_object_mut().unwrap().remove("file");
    std::fs::write(&side, serde_json::to_vec(&legacy).unwrap()).unwrap();
    assert_eq!(store.info(&sym, TF).unwrap().bars, 50);
    assert!(store.scan().notes.is_empty());
}

#[test]
fn orphan_temp_files_go_only_when_their_writer_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let sym = Symbol::equity("AAA");
    store.write(&sym, TF, &bars(0, 3), "test").unwrap();
    let series_dir = store.parquet_path(&sym, TF).parent().unwrap().to_path_buf();
    let mut done = std::process::Command::new("true").spawn().unwrap();
    let dead = done.id();
    done.wait().unwrap();
    let mut live = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let orphan = series_dir.join(format!(".AAA.parquet.{dead}.tmp"));
    let busy = series_dir.join(format!(".AAA.parquet.{}.tmp", live.id()));
    let ours = series_dir.join(format!(".AAA.json.{}.tmp", std::process::id()));
    for p in [&orphan, &busy, &ours] {
        std::fs::write(p, b"partial").unwrap();
    }
    let scan = store.scan();
    let still = (orphan.exists(), busy.exists(), ours.exists());
    live.kill().unwrap();
    live.wait().unwrap();
    assert_eq!(still, (false, true, true), "{:?}", scan.notes);
    assert!(scan
        .notes
        .iter()
        .any(|n| n.contains(&format!("process {dead} is gone"))));
    assert_eq!(store.read(&sym, TF).unwrap().len(), 3);
}

/// Writes a series the way an earlier release did: `bars/<tf>/<legacy stem>.parquet` and a
/// sidecar without a file stamp.
fn write_legacy(store: &Store, sym: &Symbol, b: &[Bar], sidecar: bool) -> PathBuf {
    let dir = store.root.join(TF.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{}.parquet", sym.legacy_file_stem()));
    parquet::write_bars(&p, b, sym, TF, "alpaca").unwrap();
    if sidecar {
        let info = sidecar::describe(sym, TF, b, "alpaca", Utc::now());
        std::fs::write(p.with_extension("json"), serde_json::to_vec(&info).unwrap()).unwrap();
    }
    p
}

#[test]
fn legacy_files_move_under_the_symbol_their_sidecar_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let btc = Symbol::crypto("BTC/USD");
    let legacy = write_legacy(&store, &btc, &bars(0, 12), true);
    assert!(legacy.ends_with("15Min/BTC-USD.parquet"));
    // The equity of the look-alike name does not claim the crypto pair's file.
    assert!(!store.contains(&Symbol::equity("BTC-USD"), TF).unwrap());
    assert!(legacy.exists());
    // Reading the pair moves it.
    assert_eq!(store.read(&btc, TF).unwrap(), bars(0, 12));
    assert!(!legacy.exists() && !legacy.with_extension("json").exists());
    assert_eq!(store.info(&btc, TF).unwrap().source, "alpaca");

    // Found by a listing, merged into a current file (which wins where both have a bar).
    let aaa = Symbol::equity("AAA");
    store.write(&aaa, TF, &bars(5, 10), "import").unwrap();
    let mut old = bars(0, 8);
    old[6].close = 1.0;
    write_legacy(&store, &aaa, &old, true);
    let scan = store.scan();
    assert!(
        scan.notes.iter().any(|n| n.contains("merged into")),
        "{:?}",
        scan.notes
    );
    assert_eq!(store.read(&aaa, TF).unwrap(), bars(0, 15));

    // Without a sidecar, `X-Y` is taken for the pair X/Y, and the note says it was a guess.
    let eth = Symbol::crypto("ETH/USD");
    let p = write_legacy(&store, &eth, &bars(0, 4), false);
    let scan = store.scan();
    assert!(!p.exists());
    assert!(
        scan.notes
            .iter()
            .any(|n| n.contains("taken for ETH/USD (crypto)")),
        "{:?}",
        scan.notes
    );
    assert_eq!(store.read(&eth, TF).unwrap(), bars(0, 4));
    assert_eq!(store.list().len(), 3);
}
