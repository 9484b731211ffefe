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
