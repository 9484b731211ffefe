use crate::jobs::list_runs;
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
    let runs = list_runs(paths);
    if a.json {
        let ms: Vec<_> = runs
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(&r.manifest).unwrap_or_default();
                v["state"] = r.state().into();
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&ms)?);
        return Ok(0);
    }
    if runs.is_empty() {
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
    Ok(0)
}
