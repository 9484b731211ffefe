//! `quantdeck features`: the layout, and feature + raw-indicator files from the store or a CSV.

use crate::common::{qd, text};

#[test]
fn spec_csv_and_parquet_exports() {
    let home = tempfile::tempdir().unwrap();
    let o = qd(home.path(), &["features", "--spec", "--window", "100"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("qd-seed58-v1: 58 features × 100 bars + 3 account = 5803"),
        "{t}"
    );
    assert!(
        t.contains("57  h1.pos_in_hour") && t.contains("assets/events.csv"),
        "{t}"
    );

    let out = home.path().join("syna.csv");
    let o = qd(
        home.path(),
        &["features", "SYNA", "--out", out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let csv = std::fs::read_to_string(&out).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.len(), 6 + 16 + 1 + 58);
    assert_eq!(&header[..2], ["ts", "open"]);
    assert!(header.contains(&"adx_14") && header.contains(&"regime.vol_high"));
    let rows: Vec<&str> = lines.collect();
    assert!(rows.len() > 400);
    assert!(rows[0].ends_with(",0,0,0,0,0") && rows[400].contains(",1,"));

    // Round trip: the CSV's bars in, the same features out, now as parquet.
    let pq = home.path().join("again.parquet");
    let o = qd(
        home.path(),
        &[
            "features",
            "--csv",
            out.to_str().unwrap(),
            "--out",
            pq.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::metadata(&pq).unwrap().len() > 10_000);

    let o = qd(home.path(), &["features"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("give a SYMBOL"), "{}", text(&o));
    let bad = home.path().join("bad.csv");
    std::fs::write(
        &bad,
        "ts,open,high,low,close\n2024-01-02 15:00:00,1,2,x,1\n",
    )
    .unwrap();
    let o = qd(home.path(), &["features", "--csv", bad.to_str().unwrap()]);
    assert!(
        !o.status.success() && text(&o).contains("bad.csv row 2: low \"x\" is not a number"),
        "{}",
        text(&o)
    );
}

/// Hourly equity bars as a user's CSV would hold them: naive New York times, across the March
/// 2024 DST change, with Presidents' Day and Good Friday absent and two gaps inside sessions.
fn awkward_csv() -> String {
    use chrono::{Datelike, Duration, NaiveDate, Weekday};
    let mut out = String::from("timestamp,open,high,low,close,volume\n");
    let (mut day, end) = (
        NaiveDate::from_ymd_opt(2023, 11, 1).unwrap(),
        NaiveDate::from_ymd_opt(2024, 4, 30).unwrap(),
    );
    let holidays = [
        "2023-11-23",
        "2023-12-25",
        "2024-01-01",
        "2024-01-15",
        "2024-02-19",
        "2024-03-29",
    ];
    let gaps = [("2024-03-11", 11), ("2024-02-07", 13), ("2024-02-07", 14)];
    let mut price = 100.0f64;
    let mut i = 0u64;
    while day <= end {
        let iso = day.to_string();
        let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
        if !weekend && !holidays.contains(&iso.as_str()) {
            for hour in 10..16 {
                if gaps.contains(&(iso.as_str(), hour)) {
                    continue;
                }
                i += 1;
                // A deterministic wiggle: no randomness needed for a causality check.
                let step = ((i * 7919 % 23) as f64 - 11.0) * 0.001;
                let open = price;
                price *= 1.0 + step;
                let (hi, lo) = (open.max(price) * 1.002, open.min(price) * 0.998);
                out += &format!(
                    "{iso} {hour}:00:00,{open:.4},{hi:.4},{lo:.4},{price:.4},{}\n",
                    1000 + i % 500
                );
            }
        }
        day += Duration::days(1);
    }
    out
}

#[test]
fn check_finds_no_look_ahead_in_the_synthetic_market_or_an_awkward_csv() {
    let home = tempfile::tempdir().unwrap();
    let o = qd(
        home.path(),
        &["features", "SYNA", "--check", "--cuts", "60"],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("60 cut points"), "{t}");
    assert!(
        t.contains("look-ahead") && t.contains("every feature equal at every cut"),
        "{t}"
    );
    assert!(
        !t.contains("LOOKS AHEAD") && !t.contains("OLDER THAN"),
        "{t}"
    );

    let csv = home.path().join("awkward.csv");
    std::fs::write(&csv, awkward_csv()).unwrap();
    let o = qd(
        home.path(),
        &[
            "features",
            "--csv",
            csv.to_str().unwrap(),
            "--check",
            "--cuts",
            "80",
            "--seed",
            "5",
        ],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("80 cut points") && t.contains("(seed 5)"), "{t}");
    assert_eq!(
        t.matches("every feature equal at every cut").count(),
        2,
        "{t}"
    );

    let o = qd(home.path(), &["features", "SYNA", "--check", "--cuts", "0"]);
    assert!(!o.status.success(), "{}", text(&o));
}
