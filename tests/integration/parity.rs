//! One set of trading rules: the tensor env, the backtest and the paper trader must agree with
//! `sim` bar for bar.

use crate::common;
use quantdeck::features::events::EventTable;

use candle_core::{Device, Tensor};
use chrono::NaiveDate;
use quantdeck::config::{BacktestConfig, Config, EnvConfig, EnvCosts, SyntheticConfig};
use quantdeck::data::synthetic;
use quantdeck::engine::{env::VecEnv, ActorCritic, HostPolicy};
use quantdeck::eval::Backtester;
use quantdeck::features::{self, FeatureMatrix, FeatureSpec};
use quantdeck::market::{Bar, Symbol, Timeframe};
use quantdeck::rng::Rng;
use quantdeck::sim::{exit_rules, Account, RiskRules, Rules, TradingRules};

fn bars(sym: &Symbol) -> Vec<Bar> {
    let d = |m, dd| NaiveDate::from_ymd_opt(2024, m, dd).unwrap();
    synthetic::generate(
        &SyntheticConfig::default(),
        sym,
        Timeframe::Minute(15),
        d(2, 1),
        d(3, 29),
    )
    .unwrap()
}

/// A synthetic series as the parity tests read it: its bars, closes and 8-bar features.
struct Series {
    bars: Vec<Bar>,
    closes: Vec<f64>,
    spec: FeatureSpec,
    fm: FeatureMatrix,
}

impl Series {
    fn of(sym: &Symbol) -> Self {
        let bars = bars(sym);
        let spec = FeatureSpec::current(8, &EventTable::embedded());
        let fm = features::compute(&spec, sym, &bars, &EventTable::embedded());
        Series {
            closes: bars.iter().map(|x| x.close).collect(),
            bars,
            spec,
            fm,
        }
    }

    /// `n` tensor envs over the whole series: 40-step episodes, reward scale 1000, seed 3.
    fn env(&self, rules: Rules, n: usize) -> VecEnv {
        let range = 0..self.bars.len();
        VecEnv::new(
            &self.spec,
            &self.fm,
            &self.closes,
            range,
            rules,
            40,
            1000.0,
            n,
            3,
            &Device::Cpu,
        )
        .unwrap()
    }
}

#[test]
fn tensor_env_matches_sim_under_random_actions() {
    for sym in [Symbol::equity("SYNA"), Symbol::crypto("SYNX/USD")] {
        let (levels, exits) = env_against_sim(&sym, false, None);
        assert_eq!(levels, [0], "{sym}: every episode opens flat");
        assert_eq!(exits, 0);
    }
}

/// `env.cost_ramp`: at training progress p the env charges the costs of rules whose slippage and
/// commission are p / ramp of the full ones, capped at full — nothing at the start, all of them
/// from `ramp` on — exits' entry prices included.
#[test]
fn ramped_costs_are_the_full_costs_scaled_by_training_progress() {
    let sym = Symbol::equity("SYNA");
    let series = Series::of(&sym);
    let bt = BacktestConfig::default();
    // The backtest costs fold the commission into the slippage; a dollar a trade beside them
    // shows that the commission ramps too.
    let full = Rules {
        commission: 1.0,
        ..Rules::training(&EnvConfig::default(), &bt, sym.class)
    };
    assert!(full.slippage > 0.0);
    let with_exits = |env: VecEnv| env.with_exits(bt.stop_loss, bt.take_profit).unwrap();
    let run = |env: &mut VecEnv| {
        let mut rng = Rng::new(5);
        let mut rewards = Vec::new();
        for _ in 0..200 {
            let a: Vec<u32> = (0..6).map(|_| rng.below(8) as u32).collect();
            let (r, _) = env
                .step(&Tensor::new(a.as_slice(), &Device::Cpu).unwrap())
                .unwrap();
            rewards.extend(r.to_vec1::<f32>().unwrap());
        }
        (rewards, env.equity().unwrap())
    };
    let mut outcomes = Vec::new();
    for (progress, share) in [(0.0, 0.0), (0.2, 0.5), (0.4, 1.0), (0.9, 1.0)] {
        let mut ramped = with_exits(series.env(full, 6)).with_cost_ramp(0.4);
        ramped.set_progress(progress).unwrap();
        let scaled = Rules {
            slippage: full.slippage * share,
            commission: full.commission * share,
            ..full
        };
        let got = run(&mut ramped);
        assert_eq!(
            got,
            run(&mut with_exits(series.env(scaled, 6))),
            "progress {progress}"
        );
        outcomes.push(got);
    }
    // The costs bite: random trading earns more for free than at half costs, and more at half
    // costs than at full.
    let total = |o: &(Vec<f32>, Vec<f32>)| o.0.iter().sum::<f32>();
    assert!(total(&outcomes[0]) > total(&outcomes[1]));
    assert!(total(&outcomes[1]) > total(&outcomes[2]));
}

/// `env.start = "random"`: each episode opens at a level the actions reach (never short where
/// shorts are not allowed), and the env then steps exactly as a sim account opened there.
#[test]
fn tensor_env_random_starts_match_sim_accounts_opened_there() {
    let (equity, _) = env_against_sim(&Symbol::equity("SYNA"), true, None);
    let every: Vec<i32> = (-4..=4).collect();
    assert_eq!(equity, every, "every level, short to long");
    let (crypto, _) = env_against_sim(&Symbol::crypto("SYNX/USD"), true, None);
    assert_eq!(crypto, every[4..], "flat to long, never short");
}

/// `env.exits = "as_traded"`: the env closes a position at the stop-loss or take-profit before
/// the policy's action exactly where `sim::exit_rules` does — the rule every backtest and paper
/// trading apply — from flat starts and from random ones (entries given at a close).
#[test]
fn tensor_env_exits_match_the_verdicts_exit_rules() {
    let risk = RiskRules {
        stop_loss: 0.0015,
        take_profit: 0.002,
        ..RiskRules::from(&BacktestConfig::default())
    };
    for sym in [Symbol::equity("SYNA"), Symbol::crypto("SYNX/USD")] {
        for random_starts in [false, true] {
            let (_, exits) = env_against_sim(&sym, random_starts, Some(risk));
            assert!(exits >= 10, "{sym}: only {exits} exits fired");
        }
    }
}

/// Steps the tensor env and one `sim::Account` per env under random actions for 300 steps and
/// compares observations, rewards and equity; an episode's account opens at the level the env's
/// first observation shows; with `exits`, both apply those stop-loss / take-profit rules. Returns
/// the opening levels seen, in quarters, and how many exits fired.
fn env_against_sim(
    sym: &Symbol,
    random_starts: bool,
    exits: Option<RiskRules>,
) -> (Vec<i32>, usize) {
    let series = Series::of(sym);
    let (spec, fm, closes) = (&series.spec, &series.fm, &series.closes);
    let rules = Rules::training(&EnvConfig::default(), &BacktestConfig::default(), sym.class);
    let n = 6;
    let mut env = series.env(rules, n);
    if let Some(r) = exits {
        env = env.with_exits(r.stop_loss, r.take_profit).unwrap();
    }
    if random_starts {
        env = env.with_random_starts().unwrap();
    }
    let mut fired = 0;
    let level_at = spec.obs_dim() - 3;
    let mut opened = std::collections::BTreeSet::new();
    let mut open = |obs: &[f32], t: usize| {
        let level = obs[level_at] as f64;
        opened.insert((level * 4.0).round() as i32);
        Account::opened_at(&rules, level, closes[t])
    };
    let obs = env.observe().unwrap().to_vec2::<f32>().unwrap();
    let mut accts: Vec<Account> = (0..n)
        .map(|i| open(&obs[i], env.clock()[i] as usize))
        .collect();
    let mut rng = Rng::new(11);
    let mut compared = 0;
    for _ in 0..300 {
        let t: Vec<usize> = env.clock().iter().map(|&t| t as usize).collect();
        let obs = env.observe().unwrap().to_vec2::<f32>().unwrap();
        let actions: Vec<u32> = (0..n).map(|_| rng.below(8) as u32).collect();
        let (r, dones) = env
            .step(&Tensor::new(actions.as_slice(), &Device::Cpu).unwrap())
            .unwrap();
        let r = r.to_vec1::<f32>().unwrap();
        let eq = env.equity().unwrap();
        let obs_next = env.observe().unwrap().to_vec2::<f32>().unwrap();
        for i in 0..n {
            // The observation the env built equals the shared pipeline's.
            let mut expect = Vec::new();
            features::observation(spec, fm, t[i], &accts[i].features(), &mut expect);
            for (a, e) in obs[i].iter().zip(&expect) {
                assert!(
                    (a - e).abs() < 1e-4,
                    "{sym} env {i} obs differs: {a} vs {e}"
                );
            }
            let (a, price, next) = (actions[i] as usize, closes[t[i]], closes[t[i] + 1]);
            let reward = match &exits {
                Some(r) => {
                    fired += usize::from(exit_rules(r, &accts[i], price).is_some());
                    accts[i].step_action_with_exits(&rules, r, a, price, next, 1000.0)
                }
                None => accts[i].step_action(&rules, a, price, next, 1000.0),
            };
            assert!(
                (r[i] as f64 - reward).abs() < 2e-3 * reward.abs().max(1.0),
                "{sym} env {i}: reward {} vs sim {reward}",
                r[i]
            );
            if dones[i] {
                accts[i] = open(&obs_next[i], env.clock()[i] as usize);
            } else {
                assert!(
                    (eq[i] as f64 / accts[i].equity - 1.0).abs() < 1e-5,
                    "{sym} env {i}: equity {} vs sim {}",
                    eq[i],
                    accts[i].equity
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 1000);
    (opened.into_iter().collect(), fired)
}

/// The backtest every evaluation runs and the paper daemon on the simulated broker trade the
/// same bars identically under the full rule set — a confidence threshold that holds about half
/// of the choices, tight stops, a cooldown, a daily loss limit — fill for fill.
#[test]
fn paper_trader_on_sim_broker_reproduces_the_backtest() {
    let sym = Symbol::equity("SYNA");
    let Series {
        bars: b,
        closes,
        spec,
        fm,
    } = Series::of(&sym);
    // A random network with a larger policy head trades often enough to exercise the rules.
    let model = ActorCritic::new(spec.obs_dim(), &[16], 8, 5, &Device::Cpu).unwrap();
    let policy = HostPolicy::from_model(&model).unwrap();
    let start = fm.first_observable(spec.window) + 50;
    let end = start + 400;
    // The threshold at the median confidence over the range: about half the bars are held.
    let mut conf: Vec<f32> = (start..end)
        .map(|t| {
            let mut obs = Vec::new();
            features::observation(&spec, &fm, t, &[0.0, 0.0, 0.0], &mut obs);
            policy.act(&obs).1
        })
        .collect();
    conf.sort_by(f32::total_cmp);
    let mut cfg = Config::default();
    cfg.backtest.stop_loss = 0.01;
    cfg.backtest.take_profit = 0.01;
    cfg.live.confidence_threshold = conf[conf.len() / 2] as f64;
    cfg.live.cooldown_s = 1800;
    cfg.live.daily_loss_limit = 0.01;
    let trading = TradingRules::from_config(&cfg);
    let bt = Backtester::as_traded(&spec, &fm, &closes, sym.class, &trading, true);
    let res = bt.run(&policy, start..end);
    assert!(
        res.fills.len() > 3 && res.held_by_threshold > 20 && res.risk_events > 0,
        "the rules should all act: {} fills, {} held, {} risk events",
        res.fills.len(),
        res.held_by_threshold,
        res.risk_events
    );
    let orders =
        common::assert_paper_matches_backtest(&sym, &spec, &model, trading, &b, start, &res);
    assert!(!orders.is_empty());
    let mut ids: Vec<_> = orders.iter().map(|o| o.client_order_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), orders.len(), "client order ids are unique");
    // The raw policy (no threshold) trades differently: the threshold is not a no-op here.
    assert_ne!(bt.raw().run(&policy, start..end).fills, res.fills);
}

/// The seed reward's eight components: the tensor env against `sim::reward`, step by step, with
/// thresholds lowered so that every component fires within a few hundred random steps.
#[test]
fn tensor_env_seed_reward_matches_sim() {
    use quantdeck::sim::reward::{
        components, curriculum_weights, weighted_sum, DsrState, SeedParams,
    };
    for sym in [Symbol::equity("SYNA"), Symbol::crypto("SYNX/USD")] {
        let series = Series::of(&sym);
        let closes = &series.closes;
        // At the seed's own costs, which its reward was written for: at the backtest's 0.06 % a
        // crypto step's P&L can leave the DSR's variance just above its floor, where the f32 P&L
        // the tensor env feeds it differs from the f64 one by more than this tolerance.
        let env_cfg = EnvConfig {
            costs: EnvCosts::Own,
            ..EnvConfig::default()
        };
        let mut rules = Rules::training(&env_cfg, &BacktestConfig::default(), sym.class);
        rules.full_position = 0.9;
        let prm = SeedParams {
            direction_threshold: 0.001,
            stop_loss: 0.002,
            take_profit: 0.002,
            drawdown_threshold: 0.002,
            ..SeedParams::new(0.02, 0.04)
        };
        let n = 6;
        let mut env = series.env(rules, n).with_seed_reward(prm).unwrap();
        env.set_progress(0.3).unwrap();
        let w = curriculum_weights(0.3);
        let mut accts = vec![Account::new(&rules); n];
        let mut dsr = vec![DsrState::default(); n];
        let mut rng = Rng::new(17);
        let (mut sum, mut fired) = ([0f64; 8], [0usize; 8]);
        let mut worst = 0f64;
        let steps = 400;
        for _ in 0..steps {
            let t: Vec<usize> = env.clock().iter().map(|&t| t as usize).collect();
            let actions: Vec<u32> = (0..n).map(|_| rng.below(8) as u32).collect();
            let unc: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
            let (r, dones) = env
                .step_with(
                    &Tensor::new(actions.as_slice(), &Device::Cpu).unwrap(),
                    Some(&Tensor::new(unc.as_slice(), &Device::Cpu).unwrap()),
                )
                .unwrap();
            let r = r.to_vec1::<f32>().unwrap();
            for i in 0..n {
                let o = accts[i].step_outcome(
                    &rules,
                    actions[i] as usize,
                    closes[t[i]],
                    closes[t[i] + 1],
                );
                let c = components(&o, unc[i] as f64, &mut dsr[i], &prm);
                for k in 0..8 {
                    sum[k] += w[k] * c[k];
                    fired[k] += (c[k] != 0.0) as usize;
                }
                let want = weighted_sum(&w, &c);
                let diff = (r[i] as f64 - want).abs();
                worst = worst.max(diff);
                assert!(
                    diff < 2e-3,
                    "{sym} env {i}: reward {} vs sim {want} (components {c:?})",
                    r[i]
                );
                if dones[i] {
                    accts[i] = Account::new(&rules);
                    dsr[i] = DsrState::default();
                }
            }
        }
        assert!(
            fired.iter().all(|f| *f > 10),
            "{sym}: every component must fire: {fired:?}"
        );
        // The update's statistics: the mean weighted value of each component.
        let parts = env.take_reward_parts().unwrap();
        assert_eq!(parts.len(), 8);
        let samples = (steps * n) as f64;
        for (p, s) in parts.iter().zip(sum) {
            assert!(
                (p.mean - s / samples).abs() < 1e-4,
                "{sym} {}: mean {} vs sim {}",
                p.component.as_str(),
                p.mean,
                s / samples
            );
        }
        let shares: f64 = parts.iter().map(|p| p.share).sum();
        assert!((shares - 1.0).abs() < 1e-5);
        eprintln!("{sym}: largest reward difference {worst:.2e}; fired {fired:?}");
    }
}

/// A run saved without `env.exits` cannot silently continue under them (its positions have no
/// entry prices): the resume says so and what to set.
#[test]
fn env_state_without_entry_prices_is_refused_under_exits() {
    let sym = Symbol::equity("SYNA");
    let series = Series::of(&sym);
    let rules = Rules::training(&EnvConfig::default(), &BacktestConfig::default(), sym.class);
    let env = |exits: bool| {
        let e = series.env(rules, 4);
        if exits {
            e.with_exits(0.02, 0.04).unwrap()
        } else {
            e
        }
    };
    let saved = env(false).state();
    let err = env(true).restore(saved).unwrap_err().to_string();
    assert!(err.contains("env.exits = \"none\""), "{err}");
    let mut same = env(true);
    same.restore(env(true).state()).unwrap();
}
