//! Portfolio models' foundations (issue 10): the aligned panel from real store files, the
//! synthetic universe generated on demand, and the tensor env held equal to the `sim` rules.

use candle_core::{Device, Tensor};
use chrono::NaiveDate;
use quantdeck::config::{Config, DataSource, SyntheticConfig};
use quantdeck::data::{load_panel, synthetic, Panel, Store};
use quantdeck::engine::portfolio_env::PortfolioEnv;
use quantdeck::features::portfolio::{self as pfeat, PortfolioSpec};
use quantdeck::market::{Bar, Symbol, Timeframe};
use quantdeck::rng::Rng;
use quantdeck::sim::portfolio::{PortfolioAccount, PortfolioRules, Tape, N_REGIMES};

fn d(y: i32, m: u32, dd: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, dd).unwrap()
}

fn daily(name: &str, from: NaiveDate, to: NaiveDate) -> Vec<Bar> {
    let cfg = SyntheticConfig::default();
    synthetic::generate_correlated(&cfg, &Symbol::equity(name), Timeframe::Day, from, to).unwrap()
}

fn store_config(symbols: &[&str]) -> Config {
    let mut cfg = Config::default();
    cfg.data.source = DataSource::Store;
    cfg.portfolio.symbols = symbols.iter().map(|s| s.to_string()).collect();
    cfg.portfolio.start = "2024-01-02".into();
    cfg.portfolio.end = "2024-06-28".into();
    quantdeck::config::validate(&cfg).unwrap();
    cfg
}

#[test]
fn panel_from_store_files_marks_and_reports_missing_bars() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let (from, to) = (d(2023, 11, 1), d(2024, 8, 30));
    let tf = Timeframe::Day;
    // AAA complete (and longer than the portfolio range); BBB with two gaps; CCC listed in
    // March.
    let a = daily("AAA", from, to);
    let mut b = daily("BBB", from, to);
    let gap_days = [d(2024, 2, 6), d(2024, 4, 17)];
    b.retain(|x| !gap_days.contains(&x.ts.date_naive()));
    let mut c = daily("CCC", from, to);
    c.retain(|x| x.ts.date_naive() >= d(2024, 3, 1));
    for (name, bars) in [("AAA", &a), ("BBB", &b), ("CCC", &c)] {
        store
            .write(&Symbol::equity(name), tf, bars, "import")
            .unwrap();
    }
    let cfg = store_config(&["AAA", "BBB", "CCC"]);
    let loaded = load_panel(&cfg, &store).unwrap();
    assert!(loaded.generated.is_empty());
    let p = &loaded.panel;
    // 2024-01-02 .. 2024-06-28: 21 + 20 + 20 + 22 + 22 + 19 = 124 NYSE sessions.
    assert_eq!(p.n_bars(), 124);
    assert_eq!(p.ts[0].date_naive(), d(2024, 1, 2));
    let r = &p.report;
    assert_eq!(r.symbols[0].missing(), 0);
    assert_eq!(r.symbols[1].gaps, 2);
    let gaps: Vec<NaiveDate> = r.symbols[1].gap_at.iter().map(|t| t.date_naive()).collect();
    assert_eq!(gaps, gap_days);
    let row = p.row_of(r.symbols[1].gap_at[0]).unwrap();
    assert!(!p.is_available(row, 1) && p.close(row, 1).is_none());
    assert!(p.is_available(row, 0));
    // CCC: January's 21 and February's 20 sessions are before its first bar.
    assert_eq!(r.symbols[2].before_first, 41);
    assert_eq!(r.symbols[2].first.unwrap().date_naive(), d(2024, 3, 1));
    assert_eq!(r.missing_cells(), 43);
    assert_eq!(r.lines().len(), 2);
    // Stored bars arrive unchanged in their cells.
    let stored = store.read(&Symbol::equity("BBB"), tf).unwrap();
    let jan3 = stored.iter().find(|x| x.ts == p.ts[1]).unwrap();
    assert_eq!(p.close(1, 1), Some(jan3.close));

    // A symbol the store lacks is named, with the way to get it.
    let cfg = store_config(&["AAA", "ZZZ"]);
    let e = format!("{:#}", load_panel(&cfg, &store).unwrap_err());
    assert!(
        e.contains("portfolio symbol ZZZ") && e.contains("quantdeck fetch ZZZ"),
        "{e}"
    );
}

#[test]
fn the_synthetic_universe_is_generated_into_the_store_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut cfg = Config::default();
    cfg.portfolio.synthetic_symbols = vec!["SYNP01".into(), "SYNP02".into(), "SYNP03".into()];
    cfg.portfolio.start = "2023-01-03".into();
    cfg.portfolio.end = "2023-12-29".into();
    let first = load_panel(&cfg, &store).unwrap();
    assert_eq!(first.generated.len(), 3);
    assert_eq!(first.panel.n_bars(), 250);
    assert_eq!(first.panel.report.missing_cells(), 0);
    for s in &first.panel.symbols {
        assert!(store.parquet_path(s, Timeframe::Day).exists());
        assert_eq!(store.info(s, Timeframe::Day).unwrap().source, "synthetic");
    }
    let again = load_panel(&cfg, &store).unwrap();
    assert!(again.generated.is_empty());
    assert_eq!(again.panel, first.panel);
    // The factor is shared wherever a member is generated: fetch's path gives the same bars.
    let (bars, _) = quantdeck::data::load::synthetic_bars_between(
        &cfg,
        &Symbol::equity("SYNP02"),
        Timeframe::Day,
        d(2023, 1, 3),
        d(2023, 12, 29),
    )
    .unwrap();
    assert_eq!(
        bars,
        store
            .read(&Symbol::equity("SYNP02"), Timeframe::Day)
            .unwrap()
    );
}

/// Five correlated symbols over two years; SYNP03 misses every 30th bar and SYNP05 is listed
/// 150 bars late, so the rules' missing-bar paths are exercised.
fn parity_panel() -> Panel {
    let names = ["SYNP01", "SYNP02", "SYNP03", "SYNP04", "SYNP05"];
    let syms: Vec<Symbol> = names.iter().map(|n| Symbol::equity(n)).collect();
    let series: Vec<Vec<Bar>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut bars = daily(n, d(2022, 1, 3), d(2023, 12, 29));
            match i {
                2 => {
                    let mut k = 0;
                    bars.retain(|_| {
                        k += 1;
                        k % 30 != 0
                    });
                }
                4 => {
                    bars.drain(..150);
                }
                _ => {}
            }
            bars
        })
        .collect();
    Panel::align(&syms, Timeframe::Day, &series, None).unwrap()
}

#[test]
fn portfolio_env_matches_sim_under_random_actions() {
    let panel = parity_panel();
    let names: Vec<String> = panel.symbols.iter().map(|s| s.name.clone()).collect();
    let spec = PortfolioSpec::new(&names, Timeframe::Day, 8, 20);
    let features = pfeat::compute(&spec, &panel).unwrap();
    let tape = Tape::new(&panel, &features.factors);
    let rules = PortfolioRules::from_config(&Config::default().portfolio);
    let (n, s) = (6, names.len());
    let mut env = PortfolioEnv::new(
        &spec,
        &features,
        &tape,
        rules,
        0..panel.n_bars(),
        40,
        n,
        3,
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(env.obs_dim(), spec.obs_dim());
    assert_eq!(
        env.layout().seq_len() * env.layout().step_dim() + s + 3,
        env.obs_dim()
    );
    let mut accts = vec![PortfolioAccount::new(&rules, s); n];
    let mut rng = Rng::new(11);
    let (mut compared, mut frozen, mut restarts) = (0, 0, 0);
    let mut tail = Vec::new();
    let mut expect = Vec::new();
    for _ in 0..400 {
        let clock: Vec<usize> = env.clock().iter().map(|&t| t as usize).collect();
        let obs = env.observe().unwrap().to_vec2::<f32>().unwrap();
        let actions: Vec<u32> = (0..n).map(|_| rng.below(N_REGIMES) as u32).collect();
        let (rewards, dones) = env
            .step(&Tensor::new(actions.as_slice(), &Device::Cpu).unwrap())
            .unwrap();
        let rewards = rewards.to_vec1::<f32>().unwrap();
        let equity = env.equity().unwrap();
        let qty = env.quantities().unwrap();
        for i in 0..n {
            let t = clock[i];
            accts[i].tail(tape.marks(t - 1), &mut tail);
            pfeat::observation(&spec, &features, t, &tail, &mut expect);
            for (k, (a, e)) in obs[i].iter().zip(&expect).enumerate() {
                assert!((a - e).abs() < 1e-4, "env {i} bar {t}: obs[{k}] {a} vs {e}");
            }
            let held_frozen = (0..s).any(|j| accts[i].qty[j] > 0.0 && !tape.tradable_at(t)[j]);
            let draws = &env.last_slippage()[i * s..(i + 1) * s];
            let out = tape
                .step(&mut accts[i], &rules, t, actions[i] as usize, draws)
                .unwrap();
            assert!(
                (rewards[i] as f64 - out.reward).abs() < 1e-3,
                "env {i} bar {t}: reward {} vs sim {}",
                rewards[i],
                out.reward
            );
            if dones[i] {
                accts[i] = PortfolioAccount::new(&rules, s);
                restarts += 1;
                continue;
            }
            assert!(
                (equity[i] as f64 / accts[i].equity - 1.0).abs() < 1e-5,
                "env {i} bar {t}: equity {} vs sim {}",
                equity[i],
                accts[i].equity
            );
            for (j, (q, e)) in qty[i].iter().zip(&accts[i].qty).enumerate() {
                let (q, e) = (*q as f64, *e);
                assert!(
                    (q - e).abs() <= 1e-4 * e.abs().max(1.0),
                    "env {i} sym {j}: {q} vs {e}"
                );
            }
            frozen += usize::from(held_frozen);
            compared += 1;
        }
    }
    assert!(compared > 2000 && restarts > 30, "{compared} {restarts}");
    assert!(
        frozen > 5,
        "a held symbol without a bar was exercised {frozen} times"
    );
}

#[test]
fn portfolio_env_refuses_bad_actions_and_short_ranges() {
    let panel = parity_panel();
    let names: Vec<String> = panel.symbols.iter().map(|s| s.name.clone()).collect();
    let spec = PortfolioSpec::new(&names, Timeframe::Day, 8, 20);
    let features = pfeat::compute(&spec, &panel).unwrap();
    let tape = Tape::new(&panel, &features.factors);
    let rules = PortfolioRules::from_config(&Config::default().portfolio);
    let mk = |range: std::ops::Range<usize>| {
        PortfolioEnv::new(
            &spec,
            &features,
            &tape,
            rules,
            range,
            40,
            2,
            1,
            &Device::Cpu,
        )
    };
    let mut env = mk(0..panel.n_bars()).unwrap();
    let e = env
        .step(&Tensor::new(&[3u32, 12], &Device::Cpu).unwrap())
        .unwrap_err();
    assert!(format!("{e}").contains("not one of the 12"), "{e}");
    assert!(env
        .step(&Tensor::new(&[3u32], &Device::Cpu).unwrap())
        .is_err());
    assert!(mk(0..20).is_err(), "no bar after the lookback and window");
    // Episodes stay inside the range.
    let mut env = mk(100..160).unwrap();
    for _ in 0..200 {
        assert!(env
            .clock()
            .iter()
            .all(|&t| (100..160).contains(&(t as usize))));
        env.step(&Tensor::new(&[4u32, 0], &Device::Cpu).unwrap())
            .unwrap();
    }
}
