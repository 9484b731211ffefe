//! `quantdeck export`: TensorBoard event files for training runs made before every run wrote one
//! (or to write a run's file again from its `events.jsonl`).

use crate::jobs::{list_runs, resolve_train_run, tensorboard, JobKind, RunDir};
use crate::paths::Paths;
use anyhow::{bail, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Training runs (ids, unique prefixes, or `latest`); default: the newest.
    pub runs: Vec<String>,
    /// Every training run under runs/.
    #[arg(long, conflicts_with = "runs")]
    pub all: bool,
    /// Only runs that have no TensorBoard file yet (with --all).
    #[arg(long, requires = "all")]
    pub missing: bool,
}

pub fn run(paths: &Paths, a: ExportArgs) -> Result<i32> {
    let ids: Vec<String> = if a.all {
        list_runs(paths)
            .into_iter()
            .filter(|r| r.manifest.kind == JobKind::Train)
            .filter(|r| !a.missing || tensorboard::event_files(&r.path).is_empty())
            .map(|r| r.manifest.id)
            .collect()
    } else if a.runs.is_empty() {
        vec![resolve_train_run(paths, "latest")?]
    } else {
        a.runs
            .iter()
            .map(|r| resolve_train_run(paths, r))
            .collect::<Result<_>>()?
    };
    if ids.is_empty() {
        println!("no training run to export under {}", paths.runs.display());
        return Ok(0);
    }
    let mut failed = 0;
    for id in &ids {
        let dir = RunDir::open(paths, id)?;
        let m = dir.read_manifest()?;
        let cfg: crate::config::Config = match serde_json::from_value(m.config.clone()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{id}: its manifest's configuration does not read ({e}); skipped");
                failed += 1;
                continue;
            }
        };
        let portfolio = m.label == crate::jobs::PORTFOLIO_LABEL;
        match tensorboard::export(&dir, tensorboard::episode_len(&cfg, portfolio)) {
            Ok((file, points)) => println!("{id}: {points} points → {}", file.display()),
            Err(e) => {
                eprintln!("{id}: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} run(s) not exported", ids.len());
    }
    println!(
        "view them with: tensorboard --logdir {}",
        paths.runs.display()
    );
    Ok(0)
}
