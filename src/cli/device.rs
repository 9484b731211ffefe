//! `quantdeck device`: check a compute device's arithmetic against a host f64 reference (see
//! `engine::device_check`) — the first command to run on a new GPU host.

use crate::engine::{device, device_check};
use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// The device to check: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// One JSON object instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// Exit code 0 when every comparison is within its tolerance, 1 otherwise.
pub fn run(a: DeviceArgs) -> Result<i32> {
    let dev = device::select(&a.device)?;
    let label = match device::describe(&dev).as_str() {
        "cuda" if a.device == "auto" => "cuda:0".to_string(),
        "cuda" => a.device.clone(),
        other => other.to_string(),
    };
    let c = device_check::check(&dev, &label)?;
    if a.json {
        println!("{}", serde_json::to_string(&c)?);
    } else {
        println!("device {}", c.device);
        for x in &c.comparisons {
            println!(
                "  {:<44} relative error {:.2e} (tolerance {:.0e}) {}",
                x.what,
                x.rel_error,
                x.tolerance,
                if x.ok { "ok" } else { "WRONG" }
            );
        }
        println!(
            "{}",
            if c.ok {
                "all within tolerance"
            } else {
                "this device computes wrong results: do not train on it"
            }
        );
    }
    Ok(if c.ok { 0 } else { 1 })
}
