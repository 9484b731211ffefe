//! Calendar alignment: hourly context follows clock hours (the 09:30 partial hour, overnight gaps,
//! a holiday, a half day; crypto through a weekend), temporal features follow the New York
//! calendar and the event table, for 5Min, 15Min and 30Min bars.

use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::America::New_York;
use quantdeck::config::SyntheticConfig;
use quantdeck::data::synthetic;
use quantdeck::features::events::EventTable;
use quantdeck::features::{self, FeatureMatrix, FeatureSpec};
use quantdeck::market::{Bar, Symbol, Timeframe};

fn d(y: i32, m: u32, dd: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, dd).unwrap()
}

fn series(sym: &Symbol, tf: Timeframe, from: NaiveDate, to: NaiveDate) -> Vec<Bar> {
    synthetic::generate(&SyntheticConfig::default(), sym, tf, from, to).unwrap()
}

/// Index of the bar starting at a New York wall-clock time.
fn at_ny(bars: &[Bar], s: &str) -> usize {
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    let ts = New_York
        .from_local_datetime(&naive)
        .unwrap()
        .with_timezone(&Utc);
    bars.iter()
        .position(|b| b.ts == ts)
        .unwrap_or_else(|| panic!("no bar at {s} ET"))
}

fn col(spec: &FeatureSpec, name: &str) -> usize {
    spec.names.iter().position(|n| n == name).unwrap()
}

fn get(fm: &FeatureMatrix, spec: &FeatureSpec, t: usize, name: &str) -> f32 {
    fm.row(t)[col(spec, name)]
}

fn hour_return(bars: &[Bar], first: usize, last: usize) -> f32 {
    ((100.0 * (bars[last].close - bars[first].open) / bars[first].open).tanh()) as f32
}

fn near(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn equity_hours_respect_sessions_holidays_and_half_days() {
    let sym = Symbol::equity("SYNA");
    let bars = series(&sym, Timeframe::Minute(15), d(2024, 9, 3), d(2024, 12, 6));
    let spec = FeatureSpec::current(8, &EventTable::embedded());
    let fm = features::compute(&spec, &sym, &bars, &EventTable::embedded());
    let h1 = |t| get(&fm, &spec, t, "h1.return");

    // Friday after Thanksgiving (a holiday, no bars), a 13:00 half day: at its open the last
    // complete hour is Wednesday's 15:00–16:00, four bars.
    let open_fri = at_ny(&bars, "2024-11-29 09:30");
    let wed_15 = at_ny(&bars, "2024-11-27 15:00");
    assert_eq!(open_fri, wed_15 + 4, "no bars on the holiday");
    assert!(near(h1(open_fri), hour_return(&bars, wed_15, wed_15 + 3)));
    // Monday's open sees the half day's last hour, 12:00–13:00.
    let mon = at_ny(&bars, "2024-12-02 09:30");
    let fri_12 = at_ny(&bars, "2024-11-29 12:00");
    assert_eq!(mon, fri_12 + 4, "the half day ends at 13:00");
    assert!(near(h1(mon), hour_return(&bars, fri_12, fri_12 + 3)));
    assert!(
        near(h1(mon + 1), h1(mon)),
        "09:45 still sees the previous session's hour"
    );
    // 10:00: the partial first hour (09:30, 09:45) is the last complete one, and trend and
    // momentum do not reach across the overnight gap into Friday.
    let ten = at_ny(&bars, "2024-12-02 10:00");
    let r9 = hour_return(&bars, mon, mon + 1);
    assert!(near(h1(ten), r9));
    let trend = (50.0 * (bars[mon + 1].close / bars[mon].open).ln()).tanh() as f32;
    assert!(near(get(&fm, &spec, ten, "h1.trend"), trend));
    let ret9 = (bars[mon + 1].close - bars[mon].open) / bars[mon].open;
    assert!(near(
        get(&fm, &spec, ten, "h1.momentum"),
        (100.0 * ret9).tanh() as f32
    ));
    // 11:00: trend spans 09:30–11:00 of the same day.
    let eleven = at_ny(&bars, "2024-12-02 11:00");
    let trend = (50.0 * (bars[eleven - 1].close / bars[mon].open).ln()).tanh() as f32;
    assert!(near(get(&fm, &spec, eleven, "h1.trend"), trend));
    for (t, pos) in [(mon, 0.5), (mon + 1, 0.75), (ten, 0.0), (ten + 3, 0.75)] {
        assert!(near(get(&fm, &spec, t, "h1.pos_in_hour"), pos));
    }

    // Session phase runs open → close, and the half day closes at 13:00.
    let last_half = at_ny(&bars, "2024-11-29 12:45");
    let phase = 2.0 * 195.0 / 210.0 - 1.0;
    assert!(near(
        get(&fm, &spec, last_half, "time.session_phase"),
        phase
    ));
    assert!(near(get(&fm, &spec, open_fri, "time.session_phase"), -1.0));
    // Event days: FOMC 2024-11-07, jobs reports 2024-11-01 and 2024-12-06.
    for (day, fomc, jobs) in [
        ("2024-11-07", 1.0, 0.0),
        ("2024-11-01", 0.0, 1.0),
        ("2024-12-06", 0.0, 1.0),
        ("2024-11-06", 0.0, 0.0),
    ] {
        for hm in ["09:30", "12:00", "15:45"] {
            let t = at_ny(&bars, &format!("{day} {hm}"));
            assert_eq!(get(&fm, &spec, t, "time.fomc_day"), fomc, "{day} {hm}");
            assert_eq!(get(&fm, &spec, t, "time.jobs_day"), jobs, "{day} {hm}");
        }
    }
    // Friday is (4 - 3) / 3 on the day-of-week scale.
    assert!(near(
        get(&fm, &spec, open_fri, "time.day_of_week"),
        1.0 / 3.0
    ));
}

#[test]
fn equity_partial_first_hour_for_5_and_30_minute_bars() {
    let sym = Symbol::equity("SYNA");
    let spec = FeatureSpec::current(8, &EventTable::embedded());
    for (tf, n9) in [(Timeframe::Minute(5), 6), (Timeframe::Minute(30), 1)] {
        let bars = series(&sym, tf, d(2024, 9, 3), d(2024, 12, 6));
        let fm = features::compute(&spec, &sym, &bars, &EventTable::embedded());
        let open = at_ny(&bars, "2024-12-02 09:30");
        let ten = at_ny(&bars, "2024-12-02 10:00");
        assert_eq!(ten - open, n9, "{tf}");
        assert!(near(
            get(&fm, &spec, ten, "h1.return"),
            hour_return(&bars, open, ten - 1)
        ));
        if n9 == 1 {
            assert_eq!(get(&fm, &spec, ten, "h1.vol"), 0.0, "one bar has no spread");
        }
        // Every bar from 10:00 to 10:55 sees the same (09:30) hour; 11:00 sees 10:00–11:00.
        let eleven = at_ny(&bars, "2024-12-02 11:00");
        for t in ten..eleven {
            assert_eq!(fm.row(t)[51], fm.row(ten)[51], "{tf}");
        }
        assert!(near(
            get(&fm, &spec, eleven, "h1.return"),
            hour_return(&bars, ten, eleven - 1)
        ));
    }
}

#[test]
fn crypto_hours_are_utc_and_run_through_the_weekend() {
    let sym = Symbol::crypto("SYNX/USD");
    let bars = series(&sym, Timeframe::Minute(15), d(2024, 3, 1), d(2024, 3, 20));
    let spec = FeatureSpec::current(8, &EventTable::embedded());
    let fm = features::compute(&spec, &sym, &bars, &EventTable::embedded());
    let at = |s: &str| {
        let ts =
            Utc.from_utc_datetime(&NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap());
        bars.iter().position(|b| b.ts == ts).unwrap()
    };
    // Saturday 00:00 UTC sees Friday's 23:00–24:00 UTC hour.
    let sat = at("2024-03-16 00:00");
    assert!(near(
        get(&fm, &spec, sat, "h1.return"),
        hour_return(&bars, sat - 4, sat - 1)
    ));
    // Sunday 12:00 UTC: trend over the four complete hours 08:00–12:00, across nothing.
    let sun = at("2024-03-17 12:00");
    let trend = (50.0 * (bars[sun - 1].close / bars[sun - 16].open).ln()).tanh() as f32;
    assert!(near(get(&fm, &spec, sun, "h1.trend"), trend));
    // Day of week in New York: Saturday 00:00 UTC is Friday 20:00 EDT; Sunday noon is Sunday.
    assert!(near(get(&fm, &spec, sat, "time.day_of_week"), 1.0 / 3.0));
    assert!(near(get(&fm, &spec, sun, "time.day_of_week"), 1.0));
    // Crypto's session phase is the UTC day.
    assert!(near(get(&fm, &spec, sun, "time.session_phase"), 0.0));
    assert!(fm.values.iter().all(|v| v.is_finite()));
}
