use crate::jobs::scan_runs;
use crate::paths::Paths;
use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Print the manifests as a JSON array.
    #[arg(long)]
    pub json: bool,
}

pub fn run(paths: &Paths, a: RunsArgs) -> Result<i32> {
    let scan = scan_runs(paths);
    let (runs, damaged) = (scan.runs, scan.damaged);
    if a.json {
        let mut ms: Vec<_> = runs
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(&r.manifest).unwrap_or_default();
                v["state"] = r.state().into();
                v
            })
            .collect();
        ms.extend(damaged.iter().map(|d| {
            serde_json::json!({
                "id": d.id,
                "kind": d.kind.map(|k| k.as_str()),
                "state": "damaged",
                "problem": d.problem,
                "models": d.models,
            })
        }));
        println!("{}", serde_json::to_string_pretty(&ms)?);
        return Ok(0);
    }
    if runs.is_empty() && damaged.is_empty() {
        println!("no runs under {} yet: try `quantdeck fetch` then `quantdeck train SYNA --mode quick_test`", paths.runs.display());
        return Ok(0);
    }
    println!(
        "{:<44} {:<12} {:<11} {:<19} OUTCOME",
        "RUN", "KIND", "STATE", "CREATED (UTC)"
    );
    for r in runs {
        let m = &r.manifest;
        println!(
            "{:<44} {:<12} {:<11} {:<19} {}",
            m.id,
            m.kind.as_str(),
            r.state(),
            m.created.format("%Y-%m-%d %H:%M:%S"),
            m.message.lines().next().unwrap_or("")
        );
    }
    for d in &damaged {
        println!(
            "{:<44} {:<12} {:<11} {:<19} {}",
            d.id,
            d.kind.map_or("?", |k| k.as_str()),
            "damaged",
            d.created
                .map(|c| c.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            d.describe()
        );
    }
    Ok(0)
}
