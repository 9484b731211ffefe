//! The one place that lists run directories. A directory under `runs/` is a run when it holds a
//! readable manifest — or anything at all besides a write in progress: a run whose manifest is
//! damaged or missing but whose models, checkpoints or events are there is still a run, listed
//! as *damaged* with the file and the problem named, so that no listing omits it and `latest`
//! never silently picks an older run in its place.

use super::rundir::{read_manifest, RunSummary};
use super::JobKind;
use crate::paths::Paths;
use chrono::{DateTime, NaiveDateTime, Utc};
use std::path::{Path, PathBuf};

/// A run directory whose manifest cannot be read.
#[derive(Debug, Clone, PartialEq)]
pub struct DamagedRun {
    /// The directory's name.
    pub id: String,
    pub path: PathBuf,
    /// From the directory's name (`train-20240101-120000-syna`).
    pub kind: Option<JobKind>,
    pub created: Option<DateTime<Utc>>,
    /// What is wrong, naming the file.
    pub problem: String,
    /// The model files it holds (`model.safetensors`, `best.safetensors`, checkpoints).
    pub models: Vec<PathBuf>,
}

impl DamagedRun {
    /// `run train-… is damaged: …/manifest.json is not a valid run manifest (…); it holds …`.
    pub fn describe(&self) -> String {
        let models = if self.models.is_empty() {
            String::new()
        } else {
            format!("; it holds {} model file(s)", self.models.len())
        };
        format!("run {} is damaged: {}{models}", self.id, self.problem)
    }
}

/// Every run directory: the readable ones (oldest first) and the damaged ones.
#[derive(Debug, Clone, Default)]
pub struct RunScan {
    pub runs: Vec<RunSummary>,
    pub damaged: Vec<DamagedRun>,
}

/// Scans `runs/` (see the module comment).
pub fn scan_runs(paths: &Paths) -> RunScan {
    let Ok(entries) = std::fs::read_dir(&paths.runs) else {
        return RunScan::default();
    };
    let now = Utc::now();
    let mut scan = RunScan::default();
    for e in entries.flatten() {
        let path = e.path();
        if !path.is_dir() {
            continue;
        }
        let manifest = path.join("manifest.json");
        match read_manifest(&manifest) {
            Ok(m) => scan.runs.push(RunSummary {
                stale: m.is_stale(now),
                manifest: m,
                path,
            }),
            Err(err) => {
                let missing = !manifest.exists();
                // A directory just created holds nothing but its manifest's temp file.
                if missing && !holds_anything(&path) {
                    continue;
                }
                let problem = if missing {
                    format!("{} is missing", manifest.display())
                } else {
                    format!("{err:#}")
                };
                tracing::warn!("run {} is damaged: {problem}", path.display());
                scan.damaged.push(damaged(&path, problem));
            }
        }
    }
    scan.runs.sort_by(|a, b| {
        a.manifest
            .created
            .cmp(&b.manifest.created)
            .then(a.manifest.id.cmp(&b.manifest.id))
    });
    scan.damaged
        .sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    scan
}

/// The readable runs under `runs/`, oldest first; damaged ones are logged and left out (see
/// [`scan_runs`] for a listing that shows them).
pub fn list_runs(paths: &Paths) -> Vec<RunSummary> {
    scan_runs(paths).runs
}

/// Whether a directory holds anything besides temp files (`.<name>.<pid>.tmp`).
fn holds_anything(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            !(n.starts_with('.') && n.ends_with(".tmp"))
        })
    })
}

fn damaged(path: &Path, problem: String) -> DamagedRun {
    let id = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (kind, created) = parse_id(&id);
    let mut models: Vec<PathBuf> = ["model.safetensors", "best.safetensors"]
        .iter()
        .map(|n| path.join(n))
        .filter(|p| p.is_file())
        .collect();
    if let Ok(rd) = std::fs::read_dir(path.join("checkpoints")) {
        let mut cps: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        cps.sort();
        models.extend(cps);
    }
    DamagedRun {
        id,
        path: path.to_path_buf(),
        kind,
        created,
        problem,
        models,
    }
}

/// The kind and creation time a run id spells: `<kind>-<YYYYmmdd-HHMMSS>-<label>`.
fn parse_id(id: &str) -> (Option<JobKind>, Option<DateTime<Utc>>) {
    let kinds = [
        JobKind::WalkForward,
        JobKind::Fetch,
        JobKind::Train,
        JobKind::Gate,
        JobKind::Paper,
        JobKind::Sweep,
    ];
    for k in kinds {
        if let Some(rest) = id
            .strip_prefix(k.as_str())
            .and_then(|r| r.strip_prefix('-'))
        {
            let created = rest
                .get(..15)
                .and_then(|s| NaiveDateTime::parse_from_str(s, "%Y%m%d-%H%M%S").ok())
                .map(|t| t.and_utc());
            return (Some(k), created);
        }
    }
    (None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_spell_kind_and_time() {
        let (k, t) = parse_id("walk-forward-20240102-030405-syna");
        assert_eq!(k, Some(JobKind::WalkForward));
        assert_eq!(t.unwrap().to_rfc3339(), "2024-01-02T03:04:05+00:00");
        assert_eq!(parse_id("train-x").0, Some(JobKind::Train));
        assert_eq!(parse_id("train-x").1, None);
        assert_eq!(parse_id("other"), (None, None));
    }

    #[test]
    fn a_run_with_a_damaged_or_missing_manifest_is_listed_as_damaged() {
        let home = tempfile::tempdir().unwrap();
        let paths = Paths::under(home.path());
        let runs = &paths.runs;
        // Garbled manifest, with a model: damaged, the model named.
        let a = runs.join("train-20240102-030405-syna");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(a.join("manifest.json"), "{\"id\": garbage").unwrap();
        std::fs::write(a.join("model.safetensors"), "x").unwrap();
        // Missing manifest but events: damaged.
        let b = runs.join("gate-20240103-030405-syna");
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("events.jsonl"), "").unwrap();
        // Only a manifest being written: not a run yet.
        let c = runs.join("train-20240104-030405-syna");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join(".manifest.json.42.tmp"), "").unwrap();
        let scan = scan_runs(&paths);
        assert!(scan.runs.is_empty());
        let ids: Vec<&str> = scan.damaged.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(
            ids,
            ["train-20240102-030405-syna", "gate-20240103-030405-syna"]
        );
        let d = &scan.damaged[0];
        assert!(d.problem.contains("manifest.json"), "{}", d.problem);
        assert_eq!(d.models.len(), 1);
        assert!(d.describe().contains("1 model file"), "{}", d.describe());
        assert!(scan.damaged[1].problem.contains("is missing"));
    }
}
