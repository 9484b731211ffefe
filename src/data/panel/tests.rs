use super::*;
use chrono::TimeZone;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

/// A daily bar stamped at the session open, with prices from `px`.
fn bar(d: u32, px: f64) -> Bar {
    let ts = Calendar::Nyse.session(day(d)).unwrap().open;
    Bar {
        ts,
        open: px,
        high: px + 1.0,
        low: px - 1.0,
        close: px + 0.5,
        volume: 100.0,
    }
}

fn syms() -> Vec<Symbol> {
    ["AAA", "BBB", "CCC"].map(Symbol::equity).to_vec()
}

#[test]
fn aligns_on_sessions_and_marks_missing_cells() {
    // Mon 4 – Fri 15 March 2024: ten sessions.
    let days = [4, 5, 6, 7, 8, 11, 12, 13, 14, 15];
    let a: Vec<Bar> = days.iter().map(|&d| bar(d, 10.0 + d as f64)).collect();
    // BBB misses Wednesday the 6th and Tuesday the 12th.
    let b: Vec<Bar> = days
        .iter()
        .filter(|&&d| d != 6 && d != 12)
        .map(|&d| bar(d, 50.0))
        .collect();
    // CCC is listed on the 7th; it also has a Saturday bar (off-calendar), a second bar for the
    // 8th stamped at midnight New York time (Alpaca's daily stamp: a duplicate, kept as the later
    // one) and a bar with a zero price (invalid).
    let mut c: Vec<Bar> = days
        .iter()
        .filter(|&&d| d >= 7)
        .map(|&d| bar(d, 7.0))
        .collect();
    let mut sat = bar(8, 7.0);
    sat.ts = Utc.with_ymd_and_hms(2024, 3, 9, 15, 0, 0).unwrap();
    c.push(sat);
    let mut midnight = bar(8, 9.0);
    midnight.ts = Utc.with_ymd_and_hms(2024, 3, 8, 5, 0, 0).unwrap();
    c.push(midnight);
    c[5].close = 0.0; // the 14th
    let p = Panel::align(&syms(), Timeframe::Day, &[a, b, c], None).unwrap();

    assert_eq!(p.n_bars(), 10);
    assert_eq!(p.n_symbols(), 3);
    assert_eq!(p.ts[0], Calendar::Nyse.session(day(4)).unwrap().open);
    assert_eq!(p.close(0, 0), Some(14.5));
    assert_eq!(p.open(9, 0), Some(25.0));
    // Missing cells are unavailable, never forward-filled.
    assert_eq!(p.close(2, 1), None);
    assert!(!p.is_available(2, 1) && p.is_available(3, 1));
    assert_eq!(p.close(2, 2), None, "CCC not listed yet");
    assert_eq!(p.close(8, 2), None, "invalid bar left out");
    // The 8th: the bar stamped at the open sorts after the midnight one and is kept.
    assert_eq!(p.open(4, 2), Some(7.0));

    let r = &p.report;
    assert_eq!(r.bars, 10);
    assert_eq!(r.symbols[0].missing(), 0);
    assert_eq!(r.symbols[0].describe(), None);
    let b = &r.symbols[1];
    assert_eq!(
        (b.present, b.gaps, b.before_first, b.after_last),
        (8, 2, 0, 0)
    );
    assert_eq!(b.gap_at, vec![p.ts[2], p.ts[6]]);
    let c = &r.symbols[2];
    assert_eq!((c.present, c.gaps, c.before_first), (6, 1, 3));
    assert_eq!((c.off_calendar, c.duplicates, c.invalid), (1, 1, 1));
    assert_eq!(c.first, Some(p.ts[3]));
    assert_eq!(r.missing_cells(), 2 + 4);
    let lines = r.lines();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with("BBB: 2 gaps at 2024-03-06"),
        "{lines:?}"
    );
    assert!(lines[1].contains("starts late (3 bars before"), "{lines:?}");
}

#[test]
fn the_axis_spans_every_symbol_within_the_days() {
    let a: Vec<Bar> = [4, 5, 6].iter().map(|&d| bar(d, 10.0)).collect();
    let b: Vec<Bar> = [6, 7, 8, 11].iter().map(|&d| bar(d, 10.0)).collect();
    let p = Panel::align(&syms()[..2], Timeframe::Day, &[a.clone(), b.clone()], None).unwrap();
    assert_eq!(p.n_bars(), 6);
    assert_eq!(p.report.symbols[0].after_last, 3, "AAA ends early");
    // Days clip the axis.
    let p = Panel::align(
        &syms()[..2],
        Timeframe::Day,
        &[a, b],
        Some((day(5), day(7))),
    )
    .unwrap();
    assert_eq!(p.n_bars(), 3);
    assert_eq!(p.row_of(p.ts[1]), Some(1));
}

#[test]
fn unusable_input_is_refused_by_name() {
    let a: Vec<Bar> = [4, 5].iter().map(|&d| bar(d, 10.0)).collect();
    let e = Panel::align(&syms()[..2], Timeframe::Day, &[a.clone(), vec![]], None).unwrap_err();
    assert!(
        format!("{e:#}").contains("BBB has no usable 1Day bars"),
        "{e:#}"
    );
    let e = Panel::align(
        &syms()[..2],
        Timeframe::Day,
        &[a.clone(), a.clone()],
        Some((day(11), day(15))),
    )
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("between 2024-03-11 and 2024-03-15"),
        "{e:#}"
    );
    let mixed = [Symbol::equity("AAA"), Symbol::crypto("BTC/USD")];
    let e = Panel::align(&mixed, Timeframe::Day, &[a.clone(), a.clone()], None).unwrap_err();
    assert!(format!("{e:#}").contains("one session calendar"), "{e:#}");
    assert!(Panel::align(&syms(), Timeframe::Day, &[a], None).is_err());
}
