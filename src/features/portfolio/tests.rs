use super::*;
use crate::market::{Bar, Calendar, Symbol, Timeframe};
use chrono::NaiveDate;

/// By hand: A's returns are +10 %, −10 %, +10 %, +10 % (mean 0.05; deviations 0.05, −0.15,
/// 0.05, 0.05; Σ² = 0.03; sample variance 0.01).
#[test]
fn factor_scores_known_values() {
    let a = FactorScores::from_closes(&[100.0, 110.0, 99.0, 108.9, 119.79]).unwrap();
    assert!((a.momentum - 0.1979).abs() < 1e-12);
    assert!((a.volatility - 0.1).abs() < 1e-12);
    assert!((a.low_vol - 10.0).abs() < 1e-9);
    assert!((a.quality - 0.5).abs() < 1e-12);
    assert!((a.size - 1.0 / 119.79).abs() < 1e-15);
    // B: +1 %, −1 %, +1 %, 0: mean 0.0025, Σ(r − mean)² = 2.75e-4, variance 2.75e-4 / 3.
    let b = FactorScores::from_closes(&[50.0, 50.5, 49.995, 50.49495, 50.49495]).unwrap();
    let vol_b = (2.75e-4f64 / 3.0).sqrt();
    assert!((b.momentum - 0.009899).abs() < 1e-12);
    assert!((b.volatility - vol_b).abs() < 1e-12);
    assert!((b.quality - 0.0025 / vol_b).abs() < 1e-9);
    // A flat series: volatility 0, the ratios use the floor.
    let flat = FactorScores::from_closes(&[5.0; 21]).unwrap();
    assert_eq!(flat.volatility, 0.0);
    assert_eq!(flat.low_vol, 1.0 / VOL_FLOOR);
    assert_eq!(flat.quality, 0.0);
    // Missing or bad closes: no scores.
    assert!(FactorScores::from_closes(&[1.0, f64::NAN, 2.0]).is_none());
    assert!(FactorScores::from_closes(&[1.0, 0.0, 2.0]).is_none());
    assert!(FactorScores::from_closes(&[1.0, 2.0]).is_none());
}

fn day(k: usize) -> NaiveDate {
    // Ten sessions from Monday 4 March 2024.
    let days = [4, 5, 6, 7, 8, 11, 12, 13, 14, 15];
    NaiveDate::from_ymd_opt(2024, 3, days[k]).unwrap()
}

fn series(closes: &[f64], skip: &[usize]) -> Vec<Bar> {
    closes
        .iter()
        .enumerate()
        .filter(|(k, _)| !skip.contains(k))
        .map(|(k, &c)| Bar {
            ts: Calendar::Nyse.session(day(k)).unwrap().open,
            open: c,
            high: c,
            low: c,
            close: c,
            volume: 1.0,
        })
        .collect()
}

fn panel(scale: f64, skip_c: &[usize]) -> Panel {
    let s = |xs: [f64; 5]| xs.map(|x| x * scale);
    let a = s([100.0, 110.0, 99.0, 108.9, 119.79]);
    let b = s([50.0, 50.5, 49.995, 50.49495, 50.49495]);
    let c = s([10.0, 10.6, 10.07, 10.6742, 10.353974]);
    let syms = ["AAA", "BBB", "CCC"].map(Symbol::equity);
    Panel::align(
        &syms,
        Timeframe::Day,
        &[series(&a, &[]), series(&b, &[]), series(&c, skip_c)],
        None,
    )
    .unwrap()
}

fn spec() -> PortfolioSpec {
    let names = ["AAA", "BBB", "CCC"].map(String::from);
    PortfolioSpec::new(&names, Timeframe::Day, 2, 4)
}

#[test]
fn step_rows_are_cross_sectional_and_scale_free() {
    let sp = spec();
    assert_eq!((sp.step_dim(), sp.tail_dim(), sp.obs_dim()), (21, 6, 48));
    let pf = compute(&sp, &panel(1.0, &[])).unwrap();
    assert_eq!((pf.n_bars, pf.step_dim), (5, 21));
    // Rows before the lookback is full are all zero.
    assert!(pf.row(3).iter().all(|v| *v == 0.0));
    let row = pf.row(4);
    // ret_z = last return / volatility: A 0.1 / 0.1, B 0 / vol.
    assert!((row[0] - 1.0).abs() < 1e-6 && row[6] == 0.0);
    assert!((row[12] as f64 - (-0.03 / 0.058_309_518_948_453_04)).abs() < 1e-5);
    // The z-scores of each factor average 0 with unit population variance.
    for f in 1..5 {
        let z: Vec<f64> = (0..3).map(|i| row[i * 6 + f] as f64).collect();
        let mean = z.iter().sum::<f64>() / 3.0;
        let var = z.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 3.0;
        assert!(
            mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5,
            "factor {f}: {z:?}"
        );
    }
    // Ranks follow the scores: momentum A > C > B, calm B > C > A, cheap C > B > A.
    assert!(row[1] > row[13] && row[13] > row[7]);
    assert!(row[8] > row[14] && row[14] > row[2]);
    assert!(row[16] > row[10] && row[10] > row[4]);
    assert!([row[5], row[11], row[17]] == [1.0; 3]);
    // Market: mean ret_z, breadth (all three rose over the lookback), annualised mean vol.
    assert!((row[18] - (row[0] + row[6] + row[12]) / 3.0).abs() < 1e-6);
    assert_eq!(row[19], 1.0);
    let vol = (0.1 + 0.009_574_271_077_563_39 + 0.058_309_518_948_453_04) / 3.0 * 252f64.sqrt();
    assert!((row[20] as f64 - vol).abs() < 1e-5);
    // Every price ×7: identical features.
    let scaled = compute(&sp, &panel(7.0, &[])).unwrap();
    for (x, y) in pf.values.iter().zip(&scaled.values) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

#[test]
fn a_symbol_without_a_full_lookback_is_unavailable_in_the_row() {
    let pf = compute(&spec(), &panel(1.0, &[2])).unwrap();
    let row = pf.row(4);
    assert!(
        row[12..18].iter().all(|v| *v == 0.0),
        "CCC: {:?}",
        &row[12..18]
    );
    // Two symbols left: z-scores of ±1.
    assert!((row[1] - 1.0).abs() < 1e-6 && (row[7] + 1.0).abs() < 1e-6);
    assert!(pf.factors.scores[4 * 3 + 2].is_none());
    let mut obs = Vec::new();
    observation(&spec(), &pf, 5, &[0.5; 6], &mut obs);
    assert_eq!(obs.len(), 48);
    assert_eq!(&obs[..21], pf.row(3));
    assert_eq!(&obs[21..42], pf.row(4));
    assert_eq!(&obs[42..], &[0.5; 6]);
}

#[test]
fn the_layout_is_versioned_and_refuses_another() {
    let sp = spec();
    assert_eq!(
        sp.describe(),
        "qd-portfolio-v1: 3 symbols, 2 steps × 21 + 6 tail = 48 (1Day, lookback 4)"
    );
    assert_eq!(sp.tail[0], "weight.AAA");
    assert_eq!(sp.first_exec_bar(), 6);
    let json = serde_json::to_string(&sp).unwrap();
    assert_eq!(serde_json::from_str::<PortfolioSpec>(&json).unwrap(), sp);
    assert!(sp.ensure_same(&sp.clone()).is_ok());
    let other = PortfolioSpec::new(&["AAA".into(), "BBB".into()], Timeframe::Day, 3, 4);
    let e = format!("{:#}", sp.ensure_same(&other).unwrap_err());
    assert!(e.contains("universe [AAA,BBB] vs [AAA,BBB,CCC]"), "{e}");
    assert!(e.contains("window 3 vs 2"), "{e}");
    // The default configuration: 12 synthetic symbols, 32 steps of 12 · 6 + 3.
    let d = PortfolioSpec::from_config(&crate::config::Config::default()).unwrap();
    assert_eq!((d.step_dim(), d.tail_dim(), d.lookback), (75, 15, 20));
    assert_eq!(d.obs_dim(), 32 * 75 + 15);
    // A panel of another universe is refused.
    let e = compute(&other, &panel(1.0, &[])).unwrap_err();
    assert!(format!("{e}").contains("not the layout's universe"), "{e}");
}
