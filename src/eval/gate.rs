//! Gating (seed §5): a trained run is APPROVED, REVIEW or DROP by fitness, profit factor,
//! consistency and max drawdown, with flags for what fell short and whether an earlier (best)
//! checkpoint should be used instead of the final one.

use super::baselines::{Baseline, MomentumRule};
use super::metrics::RawFigures;
use super::ValidationMetrics;
use crate::config::{GateThresholds, GatingConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GateClass {
    Approved,
    Review,
    Drop,
}

impl GateClass {
    pub fn as_str(self) -> &'static str {
        match self {
            GateClass::Approved => "APPROVED",
            GateClass::Review => "REVIEW",
            GateClass::Drop => "DROP",
        }
    }
}

/// What fell short, or what a user must know about the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GateFlag {
    /// The final fitness is more than `decline_tolerance` below the peak: use the best checkpoint.
    FitnessDecline,
    /// Late validations swing by more than `instability` of the peak.
    UnstableTraining,
    LowFitness,
    LowPf,
    LowConsistency,
    HighDrawdown,
    /// No validation ran at all.
    NoValidation,
    /// No validation had enough trades and days to be scored.
    InsufficientTrades,
    /// On the validation bars, the graded checkpoint does not beat momentum and buy-and-hold
    /// (a portfolio: equal weight): never APPROVED.
    BelowBaseline,
    /// A seed group's worst seed was dropped: the group is never APPROVED.
    WorstSeedDrop,
}

impl GateFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            GateFlag::FitnessDecline => "FITNESS_DECLINE",
            GateFlag::UnstableTraining => "UNSTABLE_TRAINING",
            GateFlag::LowFitness => "LOW_FITNESS",
            GateFlag::LowPf => "LOW_PF",
            GateFlag::LowConsistency => "LOW_CONSISTENCY",
            GateFlag::HighDrawdown => "HIGH_DRAWDOWN",
            GateFlag::NoValidation => "NO_VALIDATION",
            GateFlag::InsufficientTrades => "INSUFFICIENT_TRADES",
            GateFlag::BelowBaseline => "BELOW_BASELINE",
            GateFlag::WorstSeedDrop => "WORST_SEED_DROP",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub class: GateClass,
    pub flags: Vec<GateFlag>,
    /// The update of the checkpoint to deploy when fitness declined from its peak.
    pub use_checkpoint: Option<usize>,
    /// The metrics the class was decided on (the chosen checkpoint's).
    pub metrics: ValidationMetrics,
    /// The composite model score of the graded checkpoint (its validation and the training
    /// update that produced it; see `eval::composite`). Filled in by the gate job; absent in
    /// older results and where the run recorded no update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite: Option<super::CompositeScore>,
    /// The graded checkpoint beside the baselines on its validation bars (filled in by the gate
    /// job; absent in older results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baselines: Option<Box<BaselineCheck>>,
    /// A seed group's grading: every seed's result, the median the class comes from, the worst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Box<GroupGrade>>,
}

/// One seed of a group, as the gate graded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedGrade {
    pub run: String,
    pub seed: u64,
    pub result: GateResult,
}

/// A seed group's grading (`train --seeds N`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupGrade {
    pub id: String,
    /// In seed order.
    pub seeds: Vec<SeedGrade>,
    /// The run of the median seed (the group's class and model) and of the worst.
    pub median: String,
    pub worst: String,
}

impl GroupGrade {
    /// The graded fitness of each seed, lowest first.
    pub fn fitness_spread(&self) -> Vec<f64> {
        let mut f: Vec<f64> = self
            .seeds
            .iter()
            .map(|s| s.result.metrics.fitness)
            .collect();
        f.sort_by(f64::total_cmp);
        f
    }

    /// `3 seeds: 1 APPROVED, 1 REVIEW, 1 DROP; fitness worst −0.12, median 0.21, best 0.40`.
    pub fn line(&self) -> String {
        let count = |c: GateClass| self.seeds.iter().filter(|s| s.result.class == c).count();
        let f = self.fitness_spread();
        format!(
            "{} seeds: {} APPROVED, {} REVIEW, {} DROP; fitness worst {:+.3}, median {:+.3}, best {:+.3}",
            self.seeds.len(),
            count(GateClass::Approved),
            count(GateClass::Review),
            count(GateClass::Drop),
            f.first().copied().unwrap_or(0.0),
            f.get((f.len().max(1) - 1) / 2).copied().unwrap_or(0.0),
            f.last().copied().unwrap_or(0.0)
        )
    }

    /// A seed's own verdict as the group allows it: never above the group's class.
    pub fn verdict_of(&self, run: &str, group_class: GateClass) -> Option<GateResult> {
        let s = self.seeds.iter().find(|s| s.run == run)?;
        let mut r = s.result.clone();
        if rank(r.class) > rank(group_class) {
            r.class = group_class;
        }
        Some(r)
    }
}

fn rank(c: GateClass) -> u8 {
    match c {
        GateClass::Drop => 0,
        GateClass::Review => 1,
        GateClass::Approved => 2,
    }
}

/// Grades a seed group on its median and its worst seed: seeds rank by class, then by graded
/// fitness; the group takes the (lower) median seed's result, and is never APPROVED when its
/// worst seed was dropped. One lucky seed cannot carry the group.
pub fn grade_group(id: &str, seeds: Vec<SeedGrade>) -> Option<GateResult> {
    let mut order: Vec<&SeedGrade> = seeds.iter().collect();
    order.sort_by(|a, b| {
        rank(a.result.class).cmp(&rank(b.result.class)).then(
            a.result
                .metrics
                .fitness
                .total_cmp(&b.result.metrics.fitness),
        )
    });
    let worst = order.first()?;
    let median = order[(order.len() - 1) / 2];
    let mut res = median.result.clone();
    if worst.result.class == GateClass::Drop && res.class == GateClass::Approved {
        res.class = GateClass::Review;
        res.flags.push(GateFlag::WorstSeedDrop);
    }
    res.group = Some(Box::new(GroupGrade {
        id: id.to_string(),
        median: median.run.clone(),
        worst: worst.run.clone(),
        seeds: seeds.clone(),
    }));
    Some(res)
}

/// The graded checkpoint against the simple rules on the same validation bars: the model as
/// paper trades it; the baselines plain, at the same sizing and costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineCheck {
    pub model: RawFigures,
    /// The raw policy (no confidence threshold), where the rules have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<RawFigures>,
    pub baselines: Vec<(Baseline, RawFigures)>,
    /// The momentum spans, fitted on the training bars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum: Option<MomentumRule>,
    pub beats: Vec<Baseline>,
    pub trails: Vec<Baseline>,
    /// Where the model's figures come from: a re-run of the graded file, or its validation record.
    pub source: String,
}

impl BaselineCheck {
    /// Compares `model` with each baseline by the one rule ([`super::baselines::beats`]).
    pub fn new(
        model: RawFigures,
        raw: Option<RawFigures>,
        baselines: Vec<(Baseline, RawFigures)>,
        momentum: Option<MomentumRule>,
        source: String,
    ) -> Self {
        let (beats, trails): (Vec<_>, Vec<_>) = baselines.iter().partition(|(_, b)| {
            super::baselines::beats(model.total_return, model.sharpe, b.total_return, b.sharpe)
        });
        BaselineCheck {
            model,
            raw,
            momentum,
            beats: beats.into_iter().map(|(b, _)| b).collect(),
            trails: trails.into_iter().map(|(b, _)| b).collect(),
            baselines,
            source,
        }
    }

    /// `model +1.20 % (Sharpe 1.10) vs momentum +2.00 % (1.50), buy-and-hold …: trails momentum`.
    pub fn line(&self) -> String {
        let f =
            |x: &RawFigures| format!("{:+.2} % (Sharpe {:+.2})", x.total_return * 100.0, x.sharpe);
        let rest: Vec<String> = self
            .baselines
            .iter()
            .map(|(b, x)| format!("{} {}", b.name(), f(x)))
            .collect();
        let names = |v: &[Baseline]| v.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ");
        let verdict = if self.trails.is_empty() {
            "beats them".to_string()
        } else {
            format!("trails {}", names(&self.trails))
        };
        format!(
            "validation bars, model as traded {} vs {}: {verdict}",
            f(&self.model),
            rest.join(", ")
        )
    }
}

impl GateResult {
    /// Records the baseline check: a model that trails any of the baselines gets
    /// `BELOW_BASELINE` and is never APPROVED (REVIEW at best).
    pub fn with_baselines(mut self, check: BaselineCheck) -> Self {
        if !check.trails.is_empty() {
            self.flags.push(GateFlag::BelowBaseline);
            if self.class == GateClass::Approved {
                self.class = GateClass::Review;
            }
        }
        self.baselines = Some(Box::new(check));
        self
    }
}

fn meets(m: &ValidationMetrics, t: &GateThresholds) -> bool {
    m.fitness >= t.fitness
        && m.profit_factor >= t.profit_factor
        && m.consistency >= t.consistency
        && m.max_drawdown <= t.max_drawdown
}

/// Assesses a run from its validation history (oldest first; the last entry is the final model).
/// Validations marked insufficient (too few trades or days) are never graded: when the final one
/// is insufficient, the best scored checkpoint is graded instead; when none is scored, the run
/// is dropped for lack of evidence.
pub fn assess(cfg: &GatingConfig, history: &[ValidationMetrics]) -> GateResult {
    let Some(final_point) = history.last() else {
        return GateResult {
            class: GateClass::Drop,
            flags: vec![GateFlag::NoValidation],
            use_checkpoint: None,
            metrics: ValidationMetrics::default(),
            composite: None,
            baselines: None,
            group: None,
        };
    };
    let scored: Vec<&ValidationMetrics> = history.iter().filter(|m| !m.insufficient).collect();
    let Some(peak) = scored
        .iter()
        .copied()
        .max_by(|a, b| a.fitness.total_cmp(&b.fitness))
    else {
        return GateResult {
            class: GateClass::Drop,
            flags: vec![GateFlag::InsufficientTrades],
            use_checkpoint: None,
            metrics: final_point.clone(),
            composite: None,
            baselines: None,
            group: None,
        };
    };
    let last = final_point;
    let mut flags = Vec::new();
    if last.insufficient {
        flags.push(GateFlag::InsufficientTrades);
    }
    let declined = last.insufficient
        || (peak.fitness > 0.0 && last.fitness < peak.fitness * (1.0 - cfg.decline_tolerance));
    if declined && !last.insufficient {
        flags.push(GateFlag::FitnessDecline);
    }
    // Swings between consecutive scored validations in the second half of training.
    let late = &scored[scored.len() / 2..];
    let scale = peak.fitness.abs().max(1e-9);
    if late
        .windows(2)
        .any(|w| (w[1].fitness - w[0].fitness).abs() > cfg.instability * scale)
        && late.len() >= 2
    {
        flags.push(GateFlag::UnstableTraining);
    }
    let chosen = if declined { peak } else { last };
    let use_checkpoint = (declined && chosen.update != last.update).then_some(chosen.update);
    let a = &cfg.approved;
    for (bad, flag) in [
        (chosen.fitness < a.fitness, GateFlag::LowFitness),
        (chosen.profit_factor < a.profit_factor, GateFlag::LowPf),
        (chosen.consistency < a.consistency, GateFlag::LowConsistency),
        (chosen.max_drawdown > a.max_drawdown, GateFlag::HighDrawdown),
    ] {
        if bad {
            flags.push(flag);
        }
    }
    let class = if meets(chosen, &cfg.approved) {
        GateClass::Approved
    } else if meets(chosen, &cfg.review) {
        GateClass::Review
    } else {
        GateClass::Drop
    };
    GateResult {
        class,
        flags,
        use_checkpoint,
        metrics: chosen.clone(),
        composite: None,
        baselines: None,
        group: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(update: usize, fitness: f64, pf: f64, cons: f64, dd: f64) -> ValidationMetrics {
        ValidationMetrics {
            update,
            fitness,
            profit_factor: pf,
            consistency: cons,
            max_drawdown: dd,
            ..Default::default()
        }
    }

    #[test]
    fn classes_follow_seed_thresholds() {
        let cfg = GatingConfig::default();
        assert_eq!(
            assess(&cfg, &[m(5, 0.40, 1.5, 0.75, 0.05)]).class,
            GateClass::Approved
        );
        let r = assess(&cfg, &[m(5, 0.20, 1.2, 0.60, 0.15)]);
        assert_eq!(r.class, GateClass::Review);
        assert_eq!(
            r.flags,
            vec![
                GateFlag::LowFitness,
                GateFlag::LowPf,
                GateFlag::LowConsistency,
                GateFlag::HighDrawdown
            ]
        );
        assert_eq!(
            assess(&cfg, &[m(5, 0.40, 1.5, 0.75, 0.25)]).class,
            GateClass::Drop
        );
        assert_eq!(assess(&cfg, &[]).class, GateClass::Drop);
    }

    #[test]
    fn decline_points_at_the_peak_checkpoint() {
        let cfg = GatingConfig::default();
        let h = [
            m(5, 0.2, 1.5, 0.8, 0.05),
            m(10, 0.5, 1.6, 0.8, 0.05),
            m(15, 0.3, 1.3, 0.6, 0.05),
        ];
        let r = assess(&cfg, &h);
        assert!(r.flags.contains(&GateFlag::FitnessDecline));
        assert!(r.flags.contains(&GateFlag::UnstableTraining));
        assert_eq!(r.use_checkpoint, Some(10));
        assert_eq!(
            r.class,
            GateClass::Approved,
            "decided on the peak checkpoint"
        );
    }

    /// The case: a checkpoint with 1–3 trades and a PF of 99 must not be graded.
    #[test]
    fn insufficient_validations_are_never_graded() {
        let cfg = GatingConfig::default();
        let thin = |u, f| ValidationMetrics {
            insufficient: true,
            trades: 2,
            profit_factor: 99.0,
            ..m(u, f, 99.0, 1.0, 0.0)
        };
        // Nothing scored: DROP for lack of evidence, whatever the numbers say.
        let r = assess(&cfg, &[thin(5, 3.0), thin(10, 4.0)]);
        assert_eq!(r.class, GateClass::Drop);
        assert_eq!(r.flags, vec![GateFlag::InsufficientTrades]);
        // A thin final point falls back to the best scored checkpoint.
        let r = assess(&cfg, &[m(5, 0.40, 1.5, 0.75, 0.05), thin(10, 9.0)]);
        assert_eq!(r.use_checkpoint, Some(5));
        assert_eq!(r.metrics.update, 5);
        assert_eq!(r.class, GateClass::Approved);
        assert!(r.flags.contains(&GateFlag::InsufficientTrades));
        // A thin peak never outranks a scored point.
        let r = assess(&cfg, &[thin(5, 9.0), m(10, 0.20, 1.2, 0.6, 0.1)]);
        assert_eq!(r.use_checkpoint, None);
        assert_eq!(r.class, GateClass::Review);
    }

    #[test]
    fn a_seed_group_is_graded_on_its_median_and_its_worst() {
        let cfg = GatingConfig::default();
        let seed = |run: &str, seed, fit, dd| SeedGrade {
            run: run.into(),
            seed,
            result: assess(&cfg, &[m(5, fit, 1.5, 0.75, dd)]),
        };
        // One lucky seed among two poor ones: the median (REVIEW) decides, not the best.
        let g = grade_group(
            "g",
            vec![
                seed("a", 1, 0.9, 0.05),
                seed("b", 2, 0.15, 0.05),
                seed("c", 3, 0.2, 0.05),
            ],
        )
        .unwrap();
        assert_eq!(g.class, GateClass::Review);
        let grade = g.group.as_ref().unwrap();
        assert_eq!((grade.median.as_str(), grade.worst.as_str()), ("c", "b"));
        assert!(grade
            .line()
            .starts_with("3 seeds: 1 APPROVED, 2 REVIEW, 0 DROP"));
        // The lucky seed traded alone is capped at the group's class.
        assert_eq!(
            grade.verdict_of("a", g.class).unwrap().class,
            GateClass::Review
        );
        // Two APPROVED and a DROP: the median is APPROVED, the worst caps it at REVIEW.
        let g = grade_group(
            "g",
            vec![
                seed("a", 1, 0.5, 0.05),
                seed("b", 2, 0.4, 0.05),
                seed("c", 3, 0.4, 0.5),
            ],
        )
        .unwrap();
        assert_eq!(g.class, GateClass::Review);
        assert!(g.flags.contains(&GateFlag::WorstSeedDrop));
        assert!(grade_group("g", Vec::new()).is_none());
    }

    #[test]
    fn a_model_below_a_baseline_is_never_approved() {
        let cfg = GatingConfig::default();
        let approved = assess(&cfg, &[m(5, 0.40, 1.5, 0.75, 0.05)]);
        assert_eq!(approved.class, GateClass::Approved);
        let fig = |r: f64, s: f64| RawFigures {
            total_return: r,
            sharpe: s,
            ..Default::default()
        };
        // Higher return but a lower Sharpe than momentum: it does not beat it.
        let check = BaselineCheck::new(
            fig(0.03, 1.2),
            None,
            vec![
                (Baseline::Momentum, fig(0.02, 1.5)),
                (Baseline::BuyHold, fig(0.01, 0.4)),
            ],
            None,
            "test".into(),
        );
        assert_eq!(check.trails, vec![Baseline::Momentum]);
        assert_eq!(check.beats, vec![Baseline::BuyHold]);
        let r = approved.clone().with_baselines(check);
        assert_eq!(r.class, GateClass::Review);
        assert!(r.flags.contains(&GateFlag::BelowBaseline));
        // Beating both keeps the class.
        let check = BaselineCheck::new(
            fig(0.03, 1.6),
            None,
            vec![(Baseline::Momentum, fig(0.02, 1.5))],
            None,
            "test".into(),
        );
        let r = approved.with_baselines(check);
        assert_eq!(r.class, GateClass::Approved);
        assert!(!r.flags.contains(&GateFlag::BelowBaseline));
        // A DROP stays a DROP.
        let dropped =
            assess(&cfg, &[m(5, 0.40, 1.5, 0.75, 0.25)]).with_baselines(BaselineCheck::new(
                fig(-0.1, -1.0),
                None,
                vec![(Baseline::BuyHold, fig(0.1, 1.0))],
                None,
                "t".into(),
            ));
        assert_eq!(dropped.class, GateClass::Drop);
    }
}
