//! Resuming a training run in its own directory: find the training state to continue from (the
//! run's newest, or a named checkpoint), check it against what the user asked for, set the
//! manifest back to running, and — when continuing from an earlier checkpoint than the run
//! reached — move what came after it aside.
//!
//! Events past the resume point stay in `events.jsonl` (it is append-only); the `Restart` event
//! that follows them marks them superseded, and readers (the TUI) drop them. Files past it — later
//! periodic checkpoints and states, a final or best model from after it, validations after it —
//! move to `superseded-<time>/` in the run directory: nothing is deleted, and no later resume or
//! evaluation mistakes the abandoned branch for the run. `best.safetensors` is restored from the
//! periodic checkpoint of the best validation the state knew, when pruning left it.

use super::ctx::resolve_train_run;
use super::rundir::hostname;
use super::train::VALIDATIONS;
use super::{JobKind, JobStatus, Manifest, RunDir};
use crate::config::Config;
use crate::engine::checkpoint::read_meta;
use crate::engine::prune::{checkpoint_path, CHECKPOINT_DIR};
use crate::engine::state::{
    newest_state, read_state_meta, state_path, update_of, NetLayout, StateMeta, STATE_DIR,
};
use crate::features::{events::EventTable, FeatureSpec};
use crate::paths::{write_atomic, Paths};
use crate::sim::N_ACTIONS;
use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use std::path::{Path, PathBuf};

/// Where a resumed run continues from.
#[derive(Debug, Clone)]
pub struct ResumePoint {
    pub run_id: String,
    pub state: PathBuf,
    pub meta: StateMeta,
}

impl ResumePoint {
    pub fn update(&self) -> usize {
        self.meta.progress.update
    }
}

/// The training state to continue: the newest of `run` (an id, a unique prefix or `latest`), or
/// the one of `checkpoint` (a state file, or a model file of the run: its update's state).
pub fn locate(paths: &Paths, run: Option<&str>, checkpoint: Option<&Path>) -> Result<ResumePoint> {
    let (run_id, state) = match (run, checkpoint) {
        (_, Some(file)) => {
            let file = file
                .canonicalize()
                .with_context(|| format!("cannot read checkpoint {}", file.display()))?;
            let run_dir = file
                .ancestors()
                .find(|d| d.join("manifest.json").is_file())
                .ok_or_else(|| {
                    anyhow!(
                        "{} is not inside a training run directory: --checkpoint takes a file under runs/<id>/",
                        file.display()
                    )
                })?;
            let id = run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let state = if read_state_meta(&file).is_ok() {
                file.clone()
            } else {
                let meta = read_meta(&file).with_context(|| {
                    format!(
                        "{} is neither a training state nor a model file",
                        file.display()
                    )
                })?;
                state_path(run_dir, meta.update)
            };
            if !state.is_file() {
                bail!(
                    "{} has no training state for update {} ({} is missing: pruned, or written before runs kept one)",
                    file.display(),
                    update_of(&state).unwrap_or(0),
                    state.display()
                );
            }
            (id, state)
        }
        (run, None) => {
            let id = resolve_train_run(paths, run.unwrap_or("latest"))?;
            let dir = RunDir::open(paths, &id)?;
            let (_, state) = newest_state(&dir.path).ok_or_else(|| {
                anyhow!(
                    "run {id} has no training state to resume from ({} is empty: it stopped before its first validation, or was trained before runs kept one)",
                    dir.path.join(STATE_DIR).display()
                )
            })?;
            (id, state)
        }
    };
    let manifest = RunDir::open(paths, &run_id)?.read_manifest()?;
    if manifest.kind != JobKind::Train {
        bail!(
            "run {run_id} is a {} run, not a training run",
            manifest.kind.as_str()
        );
    }
    let meta = read_state_meta(&state)?;
    if meta.progress.update >= meta.updates {
        bail!(
            "run {run_id} already did all {} updates; nothing is left to resume (train a new run)",
            meta.updates
        );
    }
    Ok(ResumePoint {
        run_id,
        state,
        meta,
    })
}

/// Locates the resume point and checks everything that can refuse the resume — the layout the
/// user's configuration expects, the flags, the device, the state file's digest, the validation
/// history — before the run is touched: a refused resume leaves an interrupted run interrupted,
/// not "failed". Returns the point and the configuration the run continues with (its own).
pub fn prepare(
    paths: &Paths,
    (run, checkpoint): (Option<&str>, Option<&Path>),
    device: Option<&str>,
    expect: Option<&Config>,
    events: &EventTable,
) -> Result<(ResumePoint, Config)> {
    let point = locate(paths, run, checkpoint)?;
    if let Some(expect) = expect {
        check_layout(&point, expect, events)?;
    }
    let mut c = point.meta.config.clone();
    if let Some(d) = device {
        c.ppo.device = d.to_string();
    }
    crate::config::validate(&c)?;
    crate::engine::device::select(&c.ppo.device)?;
    crate::engine::state::verify_file(&point.state)?;
    super::validations::read_validations(&RunDir::open(paths, &point.run_id)?)
        .map_err(|e| e.context("cannot resume over a damaged validation history"))?;
    Ok((point, c))
}

/// A run taken back for a resume: held by this process until the lock drops.
pub struct Reopened {
    pub dir: RunDir,
    pub manifest: Manifest,
    /// What moved aside, to be said once the run's events are open.
    pub note: Option<String>,
    pub lock: crate::data::store::SeriesLock,
}

/// Takes the run (its lock first: of two resumes started together one is refused), sets it
/// back to running and moves aside what came after the resume point.
pub fn open_run(paths: &Paths, point: &ResumePoint) -> Result<Reopened> {
    let dir = RunDir::open(paths, &point.run_id)?;
    let lock = dir.lock()?;
    let stale = super::list_runs(paths)
        .iter()
        .any(|r| r.manifest.id == point.run_id && r.stale);
    let manifest = reopen(&dir, stale)?;
    let moved = supersede_after(&dir, point)?;
    let note = (!moved.is_empty()).then(|| {
        format!(
            "resuming from update {}; moved aside: {}",
            point.update(),
            moved.join(", ")
        )
    });
    Ok(Reopened {
        dir,
        manifest,
        note,
        lock,
    })
}

/// Says what the resume did to the run directory: temp files of killed writes removed (the
/// run's folder, `state/`, `checkpoints/`), what moved aside, and a progress file that is gone.
pub fn announce(dir: &RunDir, sink: &super::EventSink, note: Option<String>, events_lost: bool) {
    for d in [
        dir.path.clone(),
        dir.path.join(STATE_DIR),
        dir.path.join(CHECKPOINT_DIR),
    ] {
        let (notes, problems) = crate::paths::remove_orphan_tmps(&d);
        for n in notes {
            sink.info(n);
        }
        for p in problems {
            sink.warn(p);
        }
    }
    if let Some(n) = note {
        tracing::info!("run {}: {n}", dir.id);
        sink.info(n);
    }
    if events_lost {
        sink.warn(format!(
            "{} was missing or empty: the run's progress before this resume is lost (its models, state and validations are intact)",
            dir.events_path().display()
        ));
    }
}

/// Refuses a configuration whose network differs from the checkpoint's, naming both layouts.
pub fn check_layout(point: &ResumePoint, expect: &Config, events: &EventTable) -> Result<()> {
    let spec = FeatureSpec::current(expect.features.window, events);
    let layout = if point.meta.layout.portfolio.is_some() {
        let ps = crate::features::portfolio::PortfolioSpec::from_config(expect)?;
        let mut l = NetLayout::mlp(
            &spec,
            &expect.ppo.hidden_dims,
            crate::sim::portfolio::N_REGIMES,
        );
        l.obs_dim = ps.obs_dim();
        let shape = (ps.seq_len(), ps.step_dim(), ps.tail_dim());
        l.portfolio = Some(ps);
        l.for_encoder(&expect.ppo, shape)
    } else {
        let shape = (spec.window, spec.n_features(), spec.account.len());
        NetLayout::mlp(&spec, &expect.ppo.hidden_dims, N_ACTIONS).for_encoder(&expect.ppo, shape)
    };
    layout
        .ensure_continues(&point.meta.layout)
        .with_context(|| format!("cannot resume run {}", point.run_id))
}

/// The run's manifest, back to running under this process.
pub fn reopen(dir: &RunDir, stale: bool) -> Result<Manifest> {
    let mut m = dir.read_manifest()?;
    if m.status == JobStatus::Running && !stale {
        bail!(
            "run {} is still running (pid {} on {}): stop it first, or wait for it to end",
            m.id,
            m.pid,
            if m.host.is_empty() {
                "this host"
            } else {
                &m.host
            }
        );
    }
    let now = Utc::now();
    m.status = JobStatus::Running;
    m.finished = None;
    m.host = hostname();
    m.pid = std::process::id();
    m.heartbeat = Some(now);
    m.message = String::new();
    dir.write_manifest(&m)?;
    Ok(m)
}

/// Moves everything of the run past `point` aside (see the module comment); returns what moved.
pub fn supersede_after(dir: &RunDir, point: &ResumePoint) -> Result<Vec<String>> {
    let upto = point.update();
    let aside = dir
        .path
        .join(format!("superseded-{}", Utc::now().format("%Y%m%d-%H%M%S")));
    let mut moved = Vec::new();
    let mut move_aside = |from: &Path, rel: &str| -> Result<()> {
        let to = aside.join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::rename(from, &to)
            .with_context(|| format!("cannot move {} aside", from.display()))?;
        moved.push(rel.to_string());
        Ok(())
    };
    for sub in [CHECKPOINT_DIR, STATE_DIR] {
        let Ok(entries) = std::fs::read_dir(dir.path.join(sub)) else {
            continue;
        };
        let mut later: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| update_of(p).is_some_and(|u| u > upto))
            .collect();
        later.sort();
        for p in later {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            move_aside(&p, &format!("{sub}/{}", name.unwrap_or_default()))?;
        }
    }
    let best = dir.artifact("best.safetensors");
    for name in ["model.safetensors", "best.safetensors"] {
        let p = dir.artifact(name);
        if p.is_file() && read_meta(&p).is_ok_and(|m| m.update > upto) {
            move_aside(&p, name)?;
        }
    }
    if !best.exists() {
        if let Some((_, u)) = point.meta.progress.best {
            let cp = checkpoint_path(&dir.path, u);
            if cp.is_file() {
                std::fs::copy(&cp, &best)
                    .with_context(|| format!("cannot restore {}", best.display()))?;
            }
        }
    }
    let log = dir.artifact(VALIDATIONS);
    // A torn tail goes aside first (it was never committed); a damaged line stops the resume.
    if let Some(r) = crate::jsonl::repair_tail(&log)? {
        moved.push(r.message());
    }
    let history: Vec<serde_json::Value> = crate::jsonl::read_records(&log, "validation")?
        .map(crate::jsonl::Records::into_values)
        .unwrap_or_default();
    let (mut keep, mut drop) = (String::new(), String::new());
    for v in history {
        let later = v
            .get("update")
            .and_then(|u| u.as_u64())
            .is_some_and(|u| u as usize > upto);
        let to = if later { &mut drop } else { &mut keep };
        to.push_str(&v.to_string());
        to.push('\n');
    }
    if !drop.is_empty() {
        std::fs::create_dir_all(&aside)?;
        write_atomic(&aside.join(VALIDATIONS), drop.as_bytes())?;
        write_atomic(&log, keep.as_bytes())?;
        moved.push(format!("{VALIDATIONS} (lines after update {upto})"));
    }
    Ok(moved)
}
