//! Validation on drawn paths (`synthetic.validation_paths`, issue 18): each validation scores
//! the stored path's validation range and the same range of other histories of the market,
//! chained into one record; the paths are never trained on, change what is judged and not what
//! is trained, and the record is exactly what the evaluators' own code computes.

use crate::common;
use crate::train_paths::{final_weights, stored, train};
use quantdeck::config::Config;
use quantdeck::engine::{drawn, load_policy, ppo};
use quantdeck::eval::{validate_on, Backtester};
use quantdeck::features::{self, events::EventTable, FeatureSpec};
use quantdeck::jobs::{self, CancelToken, JobRequest, JobSummary, RunDir};
use quantdeck::market::Symbol;
use quantdeck::sim::decide::shorts_allowed;
use quantdeck::sim::TradingRules;

fn validation_draw(cfg: &Config, available: f64) -> anyhow::Result<Vec<drawn::DrawnPath>> {
    let sym = Symbol::equity("SYNA");
    let events = EventTable::embedded();
    let spec = FeatureSpec::current(cfg.features.window, &events);
    let bars = stored(cfg, &sym);
    let (_, val) = ppo::split(bars.len(), cfg.data.train_split, cfg.data.validation_split);
    drawn::validation_paths(cfg, &sym, &spec, &events, &bars, val.end, available)
}

#[test]
fn validation_paths_are_other_histories_of_the_same_days_and_none_is_a_training_path() {
    let mut cfg = common::tiny_config();
    cfg.synthetic.validation_paths = 3;
    cfg.synthetic.train_paths = 3;
    let sym = Symbol::equity("SYNA");
    let bars = stored(&cfg, &sym);
    let (train, val) = ppo::split(bars.len(), cfg.data.train_split, cfg.data.validation_split);
    let checks = validation_draw(&cfg, 1e12).unwrap();
    assert_eq!(checks.len(), 3);
    let events = EventTable::embedded();
    let spec = FeatureSpec::current(cfg.features.window, &events);
    let trained = drawn::PathDrawer::new(&cfg, &sym, &spec, &events, &bars, train, 1e12)
        .unwrap()
        .expect("three training paths")
        .draw(0)
        .unwrap();
    let stored_ts: Vec<_> = bars[..val.end].iter().map(|b| b.ts).collect();
    let stored_closes: Vec<f64> = bars[..val.end].iter().map(|b| b.close).collect();
    for (k, p) in checks.iter().enumerate() {
        // The stored path's bar times up to the end of its validation range: the same range.
        assert_eq!(p.fm.ts, stored_ts, "validation path {k}");
        let shared = |other: &[f64]| p.closes.iter().zip(other).filter(|(a, b)| a == b).count();
        assert_eq!(
            shared(&stored_closes),
            0,
            "validation path {k} is the stored path"
        );
        for t in &trained {
            assert_eq!(
                shared(&t.closes),
                0,
                "validation path {k} is a training path"
            );
        }
    }
    assert_ne!(checks[0].closes, checks[1].closes);
    // Fixed by the configuration: drawn again, the same paths.
    assert_eq!(
        validation_draw(&cfg, 1e12).unwrap()[2].closes,
        checks[2].closes
    );
    // Too many for the memory: refused before any is drawn, naming the setting.
    cfg.synthetic.validation_paths = 64;
    let Err(err) = validation_draw(&cfg, 1024.0 * 1024.0) else {
        panic!("64 validation paths were drawn into 1 MiB");
    };
    let err = err.to_string();
    assert!(
        err.contains("synthetic.validation_paths = 64") && err.contains("fewer paths"),
        "{err}"
    );
    cfg.synthetic.validation_paths = 0;
    assert!(validation_draw(&cfg, 1e12).unwrap().is_empty());
}

#[test]
fn a_run_validated_on_drawn_paths_records_the_chained_history_and_trains_the_same() {
    let mut cfg = common::tiny_config();
    cfg.synthetic.validation_paths = 2;
    let (_h1, home) = common::temp_home();
    let id = train(&home, &cfg, None);
    let dir = RunDir::open(&home, &id).unwrap();
    let text = std::fs::read_to_string(dir.events_path()).unwrap();
    assert!(
        text.contains("and 2 drawn paths over the same days"),
        "{text}"
    );
    let pooled = jobs::read_validations(&dir).unwrap();

    let mut alone = cfg.clone();
    alone.synthetic.validation_paths = 0;
    let (_h2, home_alone) = common::temp_home();
    let id_alone = train(&home_alone, &alone, None);
    let single = jobs::read_validations(&RunDir::open(&home_alone, &id_alone).unwrap()).unwrap();

    // Validation judges; it does not train: the same weights either way.
    assert_eq!(
        final_weights(&home, &id),
        final_weights(&home_alone, &id_alone)
    );
    assert_eq!(pooled.len(), single.len());
    for (p, s) in pooled.iter().zip(&single) {
        assert_eq!((p.update, p.drawn_paths, s.drawn_paths), (s.update, 2, 0));
        // Three ranges of the same days: three times the sessions (a seam may join the
        // opening mark's session to the one before it).
        let days = 3 * s.days;
        assert!(
            (days - 2..=days).contains(&p.days),
            "update {}: {} of {days}",
            p.update,
            p.days
        );
    }
    assert!(
        pooled
            .iter()
            .zip(&single)
            .any(|(p, s)| p.sharpe != s.sharpe),
        "the drawn paths changed no validation"
    );

    // The final record is what the evaluators' code gives on the stored range followed by the
    // drawn ones: one truth, whoever computes it.
    let (policy, _) = load_policy(&dir.artifact("model.safetensors")).unwrap();
    let sym = Symbol::equity("SYNA");
    let events = EventTable::embedded();
    let spec = FeatureSpec::current(cfg.features.window, &events);
    let bars = stored(&cfg, &sym);
    let (_, val) = ppo::split(bars.len(), cfg.data.train_split, cfg.data.validation_split);
    let fm = features::compute(&spec, &sym, &bars, &events);
    let closes: Vec<f64> = bars.iter().map(|b| b.close).collect();
    let checks = validation_draw(&cfg, 1e12).unwrap();
    let rules = TradingRules::from_config(&cfg);
    let short = shorts_allowed(&cfg, sym.class);
    let mut parts = vec![(
        Backtester::as_traded(&spec, &fm, &closes, sym.class, &rules, short),
        val.clone(),
    )];
    for p in &checks {
        let bt = Backtester::as_traded(&spec, &p.fm, &p.closes, sym.class, &rules, short);
        parts.push((bt, val.clone()));
    }
    let g = &cfg.gating;
    let mut expect = validate_on(&parts, &policy, g.consistency_chunks, g.evidence());
    let last = pooled.last().unwrap().clone();
    expect.update = last.update;
    assert_eq!(last, expect);

    // The gate holds the graded checkpoint against the rules on the same chained ranges: its
    // re-run of the model gives the record's own figures.
    let req = JobRequest::Gate {
        train_run: id.clone(),
    };
    let gate = jobs::run_job(&home, &cfg, &req, &CancelToken::new(), None).unwrap();
    let JobSummary::Gate { result, .. } = RunDir::open(&home, &gate)
        .unwrap()
        .read_manifest()
        .unwrap()
        .summary
    else {
        panic!("not a gate summary");
    };
    let check = result.baselines.expect("a baseline check");
    assert!(
        check.source.contains("and 2 drawn validation paths"),
        "{}",
        check.source
    );
    let graded = &result.metrics;
    assert_eq!(graded.drawn_paths, 2);
    assert_eq!(
        (
            check.model.sharpe,
            check.model.total_return,
            check.model.trades
        ),
        (graded.sharpe, graded.total_return, graded.trades)
    );
}
