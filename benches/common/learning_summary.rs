//! The learning bench's closing tables (included by `benches/learning.rs`): per symbol and run,
//! the policies' median and worst seed beside the reference rules, as markdown.

use super::{costs_label, RunScore, Scoreboard, SymbolReport, BEST, FINAL, GATED};
use quantdeck::eval::learning::{self, Costs};
use serde_json::json;

impl SymbolReport {
    pub fn json(&self) -> serde_json::Value {
        json!({
            "symbol": self.symbol,
            "out_of_sample": { "period": self.period, "bars": self.bars },
            "drawn_paths_reference": self.drawn_reference,
            "groups": self.groups.iter().map(|(label, runs)| json!({
                "label": label,
                "medians": Costs::ALL.iter().enumerate()
                    .filter_map(|(k, _)| median_board(runs, |r| &r.boards[k]))
                    .collect::<Vec<_>>(),
                "in_sample_median": median_board(runs, |r| &r.in_sample),
                "runs": runs.iter().map(|r| json!({
                    "label": r.label, "steps": r.steps, "updates": r.updates, "wall_s": r.wall_s,
                    "sps": r.sps, "cancelled": r.cancelled, "boards": r.boards,
                    "in_sample": r.in_sample, "checkpoints": r.checkpoints,
                    "averaged_last_k": r.averaged, "drawn_paths": r.drawn,
                    "checkpoints_on_drawn_paths": r.drawn_checkpoints,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

pub fn median_board(
    runs: &[RunScore],
    pick: impl Fn(&RunScore) -> &Scoreboard,
) -> Option<Scoreboard> {
    let boards: Vec<Scoreboard> = runs.iter().map(|r| pick(r).clone()).collect();
    Scoreboard::median_of(&boards)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The median and worst seed of `name`'s Sharpe on each run's board; None when no run has it.
fn median_worst(
    runs: &[RunScore],
    pick: &dyn Fn(&RunScore) -> &Scoreboard,
    name: &str,
) -> Option<(f64, f64)> {
    let sh: Vec<f64> = runs
        .iter()
        .filter_map(|r| pick(r).get(name).map(|x| x.sharpe))
        .collect();
    let worst = sh.iter().copied().fold(f64::INFINITY, f64::min);
    median(sh).map(|m| (m, worst))
}

/// A markdown table over all symbols: per setting, the policies' median (worst) seed Sharpe and
/// the rules', out of sample under `costs`, or in sample (training-env costs) when None.
pub fn print(reports: &[SymbolReport], costs: Option<Costs>) {
    let title = match costs {
        Some(c) => format!("out of sample, {}", costs_label(c)),
        None => "in sample (the bars trained on), training-env costs".to_string(),
    };
    println!("\nSharpe, {title}; policy: median (worst) of the seeds\n");
    println!("| symbol | run | policy (gate's pick) | policy (final) | policy (best val.) | momentum | drift filter | oracle | buy-and-hold | random | gate's pick ≥ max(momentum, filter) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for rep in reports {
        for (label, runs) in &rep.groups {
            let k = costs.and_then(|c| Costs::ALL.iter().position(|x| *x == c));
            let pick: &dyn Fn(&RunScore) -> &Scoreboard = &move |r| match k {
                Some(k) => &r.boards[k],
                None => &r.in_sample,
            };
            let Some(median) = median_board(runs, pick) else {
                continue;
            };
            let policy = |name: &str| {
                median_worst(runs, pick, name)
                    .map(|(m, w)| format!("{m:.2} ({w:.2})"))
                    .unwrap_or_else(|| "—".into())
            };
            let rule = |name: &str| {
                median
                    .get(name)
                    .map(|r| format!("{:.2}", r.sharpe))
                    .unwrap_or_else(|| "—".into())
            };
            let bar = [learning::MOMENTUM, learning::FILTER]
                .iter()
                .filter_map(|n| median.get(n).map(|r| r.sharpe))
                .fold(f64::NEG_INFINITY, f64::max);
            let beats = match median_worst(runs, pick, GATED) {
                Some((m, _)) if bar.is_finite() => {
                    if m >= bar {
                        "yes"
                    } else {
                        "no"
                    }
                }
                _ => "—",
            };
            println!(
                "| {} | {label} | {} | {} | {} | {} | {} | {} | {} | {} | {beats} |",
                rep.symbol,
                policy(GATED),
                policy(FINAL),
                policy(BEST),
                rule(learning::MOMENTUM),
                rule(learning::FILTER),
                rule(learning::ORACLE),
                rule("buy-and-hold"),
                rule("random"),
            );
        }
    }
}

/// As traded, what each rule the baselines do not trade by costs the final policy: its median
/// (worst) seed with the confidence threshold, the stop/take-profit exits, or both lifted.
pub fn print_rule_costs(reports: &[SymbolReport]) {
    let Some(k) = Costs::ALL.iter().position(|c| *c == Costs::Backtest) else {
        return;
    };
    let pick: &dyn Fn(&RunScore) -> &Scoreboard = &move |r| &r.boards[k];
    let names = [
        FINAL,
        super::NO_THRESHOLD,
        super::NO_EXITS,
        super::NO_EITHER,
    ];
    println!("\nAs traded, the final policy with a rule lifted; median (worst) of the seeds\n");
    println!("| symbol | run | as traded | no threshold | no stop/take | neither | momentum |");
    println!("|---|---|---|---|---|---|---|");
    for rep in reports {
        for (label, runs) in &rep.groups {
            let cell = |name: &str| {
                median_worst(runs, pick, name)
                    .map(|(m, w)| format!("{m:.2} ({w:.2})"))
                    .unwrap_or_else(|| "—".into())
            };
            let momentum = median_board(runs, pick)
                .and_then(|b| {
                    b.get(learning::MOMENTUM)
                        .map(|r| format!("{:.2}", r.sharpe))
                })
                .unwrap_or_else(|| "—".into());
            let cells: Vec<String> = names.iter().map(|n| cell(n)).collect();
            println!(
                "| {} | {label} | {} | {momentum} |",
                rep.symbol,
                cells.join(" | ")
            );
        }
    }
}

/// As traded, over every run of every symbol: how often the gate's pick was an earlier checkpoint
/// than the final model, and whether that won out of sample — the check that the checkpoint the
/// verdicts trade is the one that generalises, pooled because one symbol's three seeds say little.
pub fn print_checkpoint_choice(reports: &[SymbolReport]) {
    let Some(k) = Costs::ALL.iter().position(|c| *c == Costs::Backtest) else {
        return;
    };
    let sharpe = |r: &RunScore, name: &str| r.boards[k].get(name).map(|x| x.sharpe);
    let runs: Vec<(f64, f64, f64)> = reports
        .iter()
        .flat_map(|rep| rep.groups.iter().flat_map(|(_, runs)| runs.iter()))
        .filter_map(|r| {
            let (gated, last) = (sharpe(r, GATED)?, sharpe(r, FINAL)?);
            // A run whose best validation was its last has no separate best row.
            Some((gated, last, sharpe(r, BEST).unwrap_or(last)))
        })
        .collect();
    if runs.is_empty() {
        return;
    }
    // The pick is the final model's file or the best checkpoint's: equal Sharpe means the final.
    let earlier: Vec<&(f64, f64, f64)> = runs.iter().filter(|(g, f, _)| g != f).collect();
    let won = earlier.iter().filter(|(g, f, _)| g > f).count();
    let mean = |i: usize| runs.iter().map(|t| [t.0, t.1, t.2][i]).sum::<f64>() / runs.len() as f64;
    println!(
        "\nThe gate's checkpoint choice, as traded, over all {} runs: an earlier checkpoint on {}, \
         better than the final model out of sample on {won}, worse on {}; mean Sharpe: gate's pick \
         {:.2}, final {:.2}, best val. {:.2}",
        runs.len(),
        earlier.len(),
        earlier.len() - won,
        mean(0),
        mean(1),
        mean(2)
    );
}

/// Per symbol and run, over the drawn out-of-sample paths (`--oos-paths`), as traded: the
/// policies' mean Sharpe over the paths, median (worst) seed, and the paired difference against
/// momentum (median seed), beside the rules' means.
pub fn print_drawn(reports: &[SymbolReport]) {
    let mean = |v: &[f64]| super::oos::mean_se(v).0;
    let rule = |rep: &SymbolReport, name: &str| {
        rep.drawn_reference
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut rows = Vec::new();
    for rep in reports {
        let Some(momentum) = rule(rep, learning::MOMENTUM) else {
            continue;
        };
        let paths = momentum.len();
        let of = |name: &str| rule(rep, name).map_or("—".into(), |v| format!("{:.2}", mean(&v)));
        for (label, runs) in &rep.groups {
            let cell = |name: &str| {
                let per_seed: Vec<(f64, f64)> = runs
                    .iter()
                    .filter_map(|r| r.drawn.iter().find(|(n, _)| n == name))
                    .map(|(_, v)| {
                        let d: Vec<f64> = v.iter().zip(&momentum).map(|(a, b)| a - b).collect();
                        (mean(v), mean(&d))
                    })
                    .collect();
                let worst = per_seed.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
                match (
                    median(per_seed.iter().map(|p| p.0).collect()),
                    median(per_seed.iter().map(|p| p.1).collect()),
                ) {
                    (Some(m), Some(d)) => format!("{m:.2} ({worst:.2}), {d:+.2}"),
                    _ => "—".into(),
                }
            };
            rows.push(format!(
                "| {} | {label} | {paths} | {} | {} | {} | {} | {} | {} |",
                rep.symbol,
                cell(GATED),
                cell(FINAL),
                of(learning::MOMENTUM),
                of(learning::FILTER),
                of(learning::ORACLE),
                of("buy-and-hold")
            ));
        }
    }
    if rows.is_empty() {
        return;
    }
    println!(
        "\n### On drawn out-of-sample paths, as traded: mean Sharpe over the paths, median (worst) seed, and the median seed's mean difference from momentum\n"
    );
    println!("| symbol | run | paths | gate's pick | final | momentum | drift filter | oracle | buy-and-hold |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
