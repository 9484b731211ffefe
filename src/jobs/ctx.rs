//! What every job shares: the context it runs in, and the resolvers that turn a user's words (a
//! run id prefix, `latest`, a symbol) into runs, model files and bars.

use super::{list_runs, ActiveRun, CancelToken, EventSink, JobKind, JobStatus, JobSummary, RunDir};
use crate::config::Config;
use crate::data::Store;
use crate::features::events::EventTable;
use crate::market::{Bar, Symbol};
use crate::paths::{write_atomic, Paths};
use anyhow::{anyhow, bail, Result};
use std::path::PathBuf;

pub(super) struct Ctx<'a> {
    pub(super) paths: &'a Paths,
    pub(super) cfg: &'a Config,
    pub(super) run: &'a ActiveRun,
    pub(super) sink: &'a EventSink,
    pub(super) cancel: &'a CancelToken,
    /// The event-day table of this home, passed to every feature computation.
    pub(super) events: EventTable,
}

impl Ctx<'_> {
    pub(super) fn dir(&self) -> &RunDir {
        &self.run.dir
    }

    /// Writes an artifact atomically and lists it in the manifest.
    pub(super) fn save_json(&self, name: &str, value: &impl serde::Serialize) -> Result<()> {
        write_atomic(
            &self.dir().artifact(name),
            &serde_json::to_vec_pretty(value)?,
        )?;
        self.run.update(|m| m.artifacts.push(name.to_string()))
    }

    pub(super) fn set_summary(&self, summary: JobSummary) -> Result<()> {
        self.run.update(|m| m.summary = summary)
    }

    /// A symbol of the universe, or one the store holds (fetched or imported outside it).
    pub(super) fn find_symbol(&self, name: &str) -> Result<Symbol> {
        self.cfg.universe.find(name).or_else(|e| {
            Store::new(&self.paths.data)
                .list()
                .into_iter()
                .find(|s| {
                    s.symbol.eq_ignore_ascii_case(name) && s.timeframe == self.cfg.data.timeframe
                })
                .map(|s| s.symbol())
                .ok_or(e)
        })
    }

    /// Reads a symbol's bars, generating the synthetic market first if the store has none.
    pub(super) fn load_bars(&self, sym: &Symbol) -> Result<(Vec<Bar>, String)> {
        self.load_bars_tf(sym, self.cfg.data.timeframe)
    }

    /// [`Ctx::load_bars`] of another timeframe (a model's own, whatever the config says now).
    pub(super) fn load_bars_tf(
        &self,
        sym: &Symbol,
        tf: crate::market::Timeframe,
    ) -> Result<(Vec<Bar>, String)> {
        let store = Store::new(&self.paths.data);
        let got = crate::data::load_bars(self.cfg, &store, sym, tf)?;
        if got.generated {
            self.sink.info(format!(
                "no stored {tf} bars for {sym}: generated the synthetic market ({} bars)",
                got.bars.len()
            ));
        }
        if let Some(w) = got.warning {
            self.sink.warn(w);
        }
        Ok((got.bars, got.source))
    }
}

/// `latest` (newest training run that finished or was interrupted), an exact run id, or a unique
/// prefix of one. A training run whose manifest is damaged is never skipped: when it is the
/// newest, or the one named, the answer is an error that names the damage.
pub fn resolve_train_run(paths: &Paths, s: &str) -> Result<String> {
    let scan = super::scan_runs(paths);
    let runs: Vec<_> = scan
        .runs
        .into_iter()
        .filter(|r| r.manifest.kind == JobKind::Train)
        .collect();
    let damaged: Vec<_> = scan
        .damaged
        .into_iter()
        .filter(|d| d.kind == Some(JobKind::Train))
        .collect();
    if s == "latest" || s.is_empty() {
        // The newest run; of a gated seed group, the median seed the gate graded it on.
        let newest = runs
            .iter()
            .rev()
            .find(|r| r.manifest.status != JobStatus::Running || r.stale);
        let newest_damaged = damaged
            .iter()
            .rfind(|d| newest.is_none_or(|r| d.created.is_none_or(|c| c >= r.manifest.created)));
        if let Some(d) = newest_damaged {
            bail!(
                "the newest training run cannot be used: {}. Name a run explicitly (`quantdeck runs` lists them)",
                d.describe()
            );
        }
        return newest
            .map(|r| {
                r.manifest
                    .group
                    .as_ref()
                    .and_then(|g| super::gate::group_median(paths, &g.id))
                    .unwrap_or_else(|| r.manifest.id.clone())
            })
            .ok_or_else(|| match runs.last() {
                Some(r) => anyhow!(
                    "no finished training run under {}: {} is still running (pid {}); wait for it to end",
                    paths.runs.display(),
                    r.manifest.id,
                    r.manifest.pid
                ),
                None => anyhow!(
                    "no finished training run under {}: run `quantdeck train SYMBOL` first",
                    paths.runs.display()
                ),
            });
    }
    // A full id is never ambiguous, even when a run started the same second got `<id>-2`.
    if runs.iter().any(|r| r.manifest.id == s) {
        return Ok(s.to_string());
    }
    let hits: Vec<&str> = runs
        .iter()
        .map(|r| r.manifest.id.as_str())
        .chain(damaged.iter().map(|d| d.id.as_str()))
        .filter(|id| id.starts_with(s))
        .collect();
    if let [one] = hits.as_slice() {
        if let Some(d) = damaged.iter().find(|d| d.id == *one) {
            bail!("{}", d.describe());
        }
    }
    match hits.as_slice() {
        [one] => Ok(one.to_string()),
        [] => bail!("no training run matches {s:?} (see `quantdeck runs`)"),
        many => bail!(
            "{s:?} matches {} training runs; give more of the id",
            many.len()
        ),
    }
}

/// Which model file of a training run to evaluate, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelChoice {
    pub path: PathBuf,
    /// A sentence for the user: which file and why.
    pub why: String,
    /// The run stopped before saving its final model (killed or cancelled mid-way).
    pub interrupted: bool,
}

/// The model to evaluate for a training run: the best checkpoint when the latest gate of the run
/// said to use it (fitness declined) or when the run was interrupted before its final model,
/// else the final model.
pub fn resolve_model(paths: &Paths, train_run: &str) -> Result<ModelChoice> {
    let dir = RunDir::open(paths, train_run)?;
    let runs = list_runs(paths);
    let me = runs.iter().find(|r| r.manifest.id == train_run);
    let interrupted = me.is_some_and(|r| r.stale || r.manifest.status == JobStatus::Cancelled);
    let gate_says_best =
        super::gate::verdict_of(paths, train_run).map(|r| r.use_checkpoint.is_some());
    let best = dir.artifact("best.safetensors");
    let last = dir.artifact("model.safetensors");
    let choice = if gate_says_best == Some(true) && best.exists() {
        ModelChoice {
            path: best,
            why: "the best checkpoint (the gate found fitness declined after it)".into(),
            interrupted,
        }
    } else if interrupted && best.exists() {
        ModelChoice {
            path: best,
            why: "the best checkpoint of an interrupted run".into(),
            interrupted,
        }
    } else if last.exists() {
        ModelChoice {
            path: last,
            why: "the final model".into(),
            interrupted,
        }
    } else if best.exists() {
        ModelChoice {
            path: best,
            why: "the best checkpoint (the run never saved a final model)".into(),
            interrupted: true,
        }
    } else {
        bail!(
            "training run {train_run} has no model file yet (no final model, no best checkpoint in {}): did it stop before its first validation?",
            dir.path.display()
        );
    };
    Ok(choice)
}

/// A trained model ready to evaluate: weights, metadata, the stored bars of its symbol and the
/// feature layout to compute from them.
pub(super) struct Evaluated {
    /// MLP or GRU.
    pub policy: crate::engine::HostPolicy,
    pub meta: crate::engine::ModelMeta,
    pub choice: ModelChoice,
    pub symbol: Symbol,
    pub bars: Vec<Bar>,
    pub spec: crate::features::FeatureSpec,
}

impl Ctx<'_> {
    /// Loads the model of a training run and its symbol's bars, refusing a layout mismatch and
    /// warning when the stored bars the model trained on have changed since.
    pub(super) fn load_evaluated(&self, train_run: &str) -> Result<Evaluated> {
        self.load_evaluated_choice(resolve_model(self.paths, train_run)?)
    }

    /// [`Ctx::load_evaluated`] of a given model file.
    pub(super) fn load_evaluated_choice(&self, choice: ModelChoice) -> Result<Evaluated> {
        use crate::features::FeatureSpec;
        let (policy, meta) = crate::engine::load_policy(&choice.path)?;
        let spec = FeatureSpec::current(meta.feature_spec.window, &self.events);
        meta.check_layout(&spec)
            .map_err(|e| anyhow!("cannot use {}: {e:#}", choice.path.display()))?;
        if let Some(w) = spec.events_warning(&meta.feature_spec) {
            self.sink.warn(w);
        }
        let symbol = Symbol {
            name: meta.symbol.clone(),
            class: meta.class,
        };
        let (bars, _) = self.load_bars_tf(&symbol, meta.timeframe)?;
        // The bars the model trained on must be the ones still stored.
        let lo = bars.partition_point(|b| b.ts < meta.data_first);
        let hi = bars.partition_point(|b| b.ts <= meta.data_last);
        let now = crate::data::store::hash_bars(&bars[lo..hi]);
        if now != meta.data_sha256 {
            self.sink.warn(format!(
                "the stored {symbol} bars between {} and {} differ from those the model trained on (hash {} then, {} now): the data was refetched, revised or re-imported since",
                meta.data_first.format("%Y-%m-%d"),
                meta.data_last.format("%Y-%m-%d"),
                &meta.data_sha256[..meta.data_sha256.len().min(12)],
                &now[..12]
            ));
        }
        self.sink.info(format!(
            "model: {} — {} ({} params, {}); it saw {}",
            choice.path.display(),
            choice.why,
            meta.param_count,
            meta.feature_spec.describe(),
            meta.seen_range()
        ));
        Ok(Evaluated {
            policy,
            meta,
            choice,
            symbol,
            bars,
            spec,
        })
    }
}
