//! Checks that relate several fields (a single value's range is checked while parsing, in
//! `range`). Each error names the field it reports and the fields it involves, so that the
//! loader can point at the line of the user's file that set any of them — not at a built-in
//! default the user never wrote.

use super::{Config, EnvCosts};
use chrono::NaiveDate;

/// A value that is wrong in relation to others.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: &'static str,
    /// The other fields the relation involves (any of them may be the one the user set).
    pub related: Vec<&'static str>,
    pub message: String,
}

/// The most a training trade may pay per unit traded: the bound `range` puts on a slippage.
const MAX_TRAINING_COST: f64 = 0.1;

/// The most symbols one universe may list (both lists together).
pub const MAX_UNIVERSE: usize = 1000;

fn day(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Relations between fields.
pub fn check(cfg: &Config) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut err = |field: &'static str, related: &[&'static str], message: String| {
        errs.push(FieldError {
            field,
            related: related.to_vec(),
            message,
        })
    };
    check_data(cfg, &mut err);
    check_ppo(cfg, &mut err);
    check_risk(cfg, &mut err);
    check_portfolio(cfg, &mut err);
    check_names(cfg, &mut err);
    errs
}

/// The data splits and dates, and whether the synthetic edge is reachable.
fn check_data(cfg: &Config, err: &mut impl FnMut(&'static str, &[&'static str], String)) {
    let d = &cfg.data;
    if d.train_split + d.validation_split >= 1.0 {
        err(
            "data.validation_split",
            &["data.train_split"],
            format!(
                "train_split ({}) + validation_split ({}) must be below 1: some bars must stay out of sample",
                d.train_split, d.validation_split
            ),
        );
    }
    // As dates, never as text: "2024-2-1" is a day before "2024-12-31".
    if let (Some(a), Some(b)) = (day(&d.start), day(&d.end)) {
        if b < a {
            err(
                "data.end",
                &["data.start"],
                format!("{} is before data.start ({})", d.end, d.start),
            );
        }
    }
    let syn = &cfg.synthetic;
    let reachable = crate::data::synthetic::max_edge(syn.drift_halflife);
    if syn.edge > reachable {
        err(
            "synthetic.edge",
            &["synthetic.drift_halflife"],
            format!(
                "{} cannot be reached with drift_halflife = {} bars: at most {reachable:.3} (lengthen the half-life or lower the edge)",
                syn.edge, syn.drift_halflife
            ),
        );
    }
}

fn check_ppo(cfg: &Config, err: &mut impl FnMut(&'static str, &[&'static str], String)) {
    let p = &cfg.ppo;
    if p.lr.is_some() {
        err(
            "ppo.lr",
            &[],
            "the single learning rate was split: set ppo.actor_lr and ppo.critic_lr".into(),
        );
    }
    let rollout = p.n_envs.saturating_mul(p.n_steps);
    if p.minibatch > rollout {
        err(
            "ppo.minibatch",
            &["ppo.n_envs", "ppo.n_steps"],
            format!(
                "{} is larger than one rollout (n_envs × n_steps = {} × {} = {rollout})",
                p.minibatch, p.n_envs, p.n_steps
            ),
        );
    }
}

/// The backtest's drawdown and cost settings, and the gate's tiers.
fn check_risk(cfg: &Config, err: &mut impl FnMut(&'static str, &[&'static str], String)) {
    let b = &cfg.backtest;
    if b.drawdown_halve > b.drawdown_halt {
        err(
            "backtest.drawdown_halve",
            &["backtest.drawdown_halt"],
            format!(
                "{} must not exceed backtest.drawdown_halt ({}): sizes halve before entries stop",
                b.drawdown_halve, b.drawdown_halt
            ),
        );
    }
    if b.commission * 100.0 >= b.initial_cash {
        err(
            "backtest.commission",
            &["backtest.initial_cash"],
            format!(
                "{} per order is 1 % or more of backtest.initial_cash ({}): a few orders would spend the account",
                b.commission, b.initial_cash
            ),
        );
    }
    let per_unit = b.cost_per_unit();
    if cfg.env.costs == EnvCosts::Backtest && per_unit > MAX_TRAINING_COST {
        err(
            "backtest.commission",
            &[
                "backtest.slippage",
                "backtest.position_size",
                "backtest.initial_cash",
                "env.costs",
            ],
            format!(
                "{:.1} % a unit ({} on a full-size order of {}, plus slippage) is more than training can pay ({} %); lower it, or set env.costs = \"own\"",
                100.0 * per_unit,
                b.commission,
                b.initial_cash * b.position_size,
                100.0 * MAX_TRAINING_COST
            ),
        );
    }
    let (a, r) = (&cfg.gating.approved, &cfg.gating.review);
    if r.fitness > a.fitness
        || r.profit_factor > a.profit_factor
        || r.consistency > a.consistency
        || r.max_drawdown < a.max_drawdown
    {
        err(
            "gating.review",
            &["gating.approved"],
            "REVIEW thresholds must be no stricter than APPROVED ones (lower fitness, PF and consistency; higher max_drawdown)".into(),
        );
    }
}

fn check_portfolio(cfg: &Config, err: &mut impl FnMut(&'static str, &[&'static str], String)) {
    let pf = &cfg.portfolio;
    if let Err(e) = super::check_universe(&pf.symbols) {
        err("portfolio.symbols", &[], format!("{e:#}"));
    }
    if let Err(e) = super::check_universe(&pf.synthetic_symbols) {
        err("portfolio.synthetic_symbols", &[], format!("{e:#}"));
    }
    if let (Some(a), Some(b)) = (day(&pf.start), day(&pf.end)) {
        if b < a {
            err(
                "portfolio.end",
                &["portfolio.start"],
                format!("{} is before portfolio.start ({})", pf.end, pf.start),
            );
        }
    }
}

/// Names that cannot name a series, a name listed twice, or one name under both equities and
/// crypto (which would make `SYNA` mean two series).
fn check_names(cfg: &Config, err: &mut impl FnMut(&'static str, &[&'static str], String)) {
    let u = &cfg.universe;
    if u.equities.is_empty() && u.crypto.is_empty() {
        err(
            "universe.equities",
            &["universe.crypto", "universe"],
            "list at least one symbol in equities or crypto".into(),
        );
        return;
    }
    if u.equities.len() + u.crypto.len() > MAX_UNIVERSE {
        err(
            "universe.equities",
            &["universe.crypto"],
            format!(
                "{} symbols: at most {MAX_UNIVERSE}",
                u.equities.len() + u.crypto.len()
            ),
        );
        return;
    }
    let mut seen: Vec<(String, &'static str)> = Vec::new();
    for (field, names) in [
        ("universe.equities", &u.equities),
        ("universe.crypto", &u.crypto),
    ] {
        for n in names {
            let key = match crate::market::symbol::validate_name(n) {
                Ok(k) => k,
                Err(e) => {
                    err(field, &[], format!("{e:#}"));
                    continue;
                }
            };
            match seen.iter().find(|(k, _)| *k == key) {
                Some((_, f)) if *f == field => err(field, &[], format!("{n:?} is listed twice")),
                Some(_) => err(
                    "universe.crypto",
                    &["universe.equities"],
                    format!(
                        "{n:?} is listed under both equities and crypto: a name means one series"
                    ),
                ),
                None => seen.push((key, field)),
            }
        }
    }
}
