//! `quantdeck models`: the models and checkpoints of every training run (and of `models/`), read
//! from their safetensors metadata.

use crate::engine::checkpoint::{read_meta, read_meta_verified, ModelMeta};
use crate::jobs::{scan_runs, JobKind};
use crate::paths::Paths;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub action: Option<ModelsAction>,
    /// JSON output.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// List models (default).
    List,
    /// Show everything a model file carries: sizes, layout, actions, data range, config.
    Inspect {
        /// A model file, or a training run id (its final model).
        target: String,
    },
}

/// Every model file, and a line for each training run whose manifest is damaged (its models
/// are listed all the same).
fn all_models(paths: &Paths) -> (Vec<PathBuf>, Vec<String>) {
    let mut out = Vec::new();
    let scan = scan_runs(paths);
    let damaged: Vec<String> = scan
        .damaged
        .iter()
        .filter(|d| d.kind.is_none_or(|k| k == JobKind::Train) && !d.models.is_empty())
        .map(|d| d.describe())
        .collect();
    let dirs = scan
        .runs
        .into_iter()
        .filter(|r| r.manifest.kind == JobKind::Train)
        .map(|r| r.path)
        .chain(scan.damaged.into_iter().map(|d| d.path));
    for dir in dirs {
        for name in ["model.safetensors", "best.safetensors"] {
            let p = dir.join(name);
            if p.exists() {
                out.push(p);
            }
        }
        if let Ok(rd) = std::fs::read_dir(dir.join("checkpoints")) {
            let mut cps: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            cps.sort();
            out.extend(cps);
        }
    }
    if let Ok(rd) = std::fs::read_dir(&paths.models) {
        out.extend(
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "safetensors")),
        );
    }
    (out, damaged)
}

fn short(p: &Path, paths: &Paths) -> String {
    p.strip_prefix(&paths.home)
        .unwrap_or(p)
        .display()
        .to_string()
}

pub fn run(paths: &Paths, a: ModelsArgs) -> Result<i32> {
    match a.action.unwrap_or(ModelsAction::List) {
        ModelsAction::List => list(paths, a.json),
        ModelsAction::Inspect { target } => inspect(paths, &target, a.json),
    }
}

/// `models list`: every model file with its metadata (or why it is unreadable).
fn list(paths: &Paths, json: bool) -> Result<i32> {
    let (files, damaged) = all_models(paths);
    let rows: Vec<(PathBuf, Result<ModelMeta>)> = files
        .into_iter()
        .map(|p| (p.clone(), read_meta_verified(&p)))
        .collect();
    if json {
        let mut v: Vec<_> = rows
            .iter()
            .map(|(p, m)| match m {
                Ok(m) => serde_json::json!({ "path": p, "meta": m }),
                Err(e) => serde_json::json!({ "path": p, "error": format!("{e:#}") }),
            })
            .collect();
        v.extend(
            damaged
                .iter()
                .map(|d| serde_json::json!({ "damaged_run": d })),
        );
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    for d in &damaged {
        println!("warning: {d}");
    }
    if rows.is_empty() {
        println!("no models yet: train one with `quantdeck train SYNA --mode quick_test`");
    }
    for (p, m) in rows {
        match m {
            Ok(m) => println!(
                "{}\n    {} {} ({})  hidden {:?}  {} params  obs_dim {}  layout {}  update {}  data {} → {}",
                short(&p, paths),
                m.symbol,
                m.timeframe,
                m.source,
                m.hidden_dims,
                m.param_count,
                m.obs_dim,
                m.feature_spec.describe(),
                m.update,
                m.data_first.format("%Y-%m-%d"),
                m.data_last.format("%Y-%m-%d")
            ),
            Err(e) => println!("{}\n    damaged: {e:#}", short(&p, paths)),
        }
    }
    Ok(0)
}

/// `models inspect TARGET`: everything one model file carries.
fn inspect(paths: &Paths, target: &str, json: bool) -> Result<i32> {
    let path = if Path::new(target).is_file() {
        PathBuf::from(target)
    } else {
        let id = crate::jobs::resolve_train_run(paths, target)?;
        paths.runs.join(id).join("model.safetensors")
    };
    let m = read_meta(&path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&m)?);
        return Ok(0);
    }
    println!("model        {}", path.display());
    println!(
        "symbol       {} ({}, {}) from {}",
        m.symbol,
        m.class.as_str(),
        m.timeframe,
        m.source
    );
    println!(
        "network      MLP hidden {:?}, {} parameters, {} actions",
        m.hidden_dims, m.param_count, m.n_actions
    );
    println!(
        "observation  obs_dim {} = {}",
        m.obs_dim,
        m.feature_spec.describe()
    );
    println!("features     {}", m.feature_spec.names.join(", "));
    println!("account      {}", m.feature_spec.account.join(", "));
    println!("actions      {}", m.action_meanings.join(", "));
    println!(
        "trained on   {} → {} (data {} → {}, sha256 {})",
        m.train_first,
        m.train_last,
        m.data_first,
        m.data_last,
        &m.data_sha256[..12.min(m.data_sha256.len())]
    );
    println!(
        "progress     update {}, {} timesteps, created {}",
        m.update, m.timesteps, m.created
    );
    println!(
        "mode         {}",
        if m.config.mode.is_empty() {
            "default"
        } else {
            &m.config.mode
        }
    );
    Ok(0)
}
