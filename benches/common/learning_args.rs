//! The learning bench's arguments (included by `benches/learning.rs`, whose header lists them).

use chrono::NaiveDate;
use std::path::PathBuf;

pub struct Args {
    pub budget_s: f64,
    pub steps: Option<u64>,
    pub quick: bool,
    pub long: bool,
    pub symbols: Option<Vec<String>>,
    pub eval_end: NaiveDate,
    pub out: Option<PathBuf>,
    pub calibrate: bool,
    pub seeds: u64,
    pub first_seed: u64,
    pub config: Option<PathBuf>,
    pub oos_paths: usize,
}

pub fn parse_args() -> Args {
    let mut a = Args {
        budget_s: 600.0,
        steps: None,
        quick: true,
        long: true,
        symbols: None,
        eval_end: NaiveDate::from_ymd_opt(2025, 12, 31).expect("date"),
        out: None,
        calibrate: false,
        seeds: 3,
        first_seed: 1,
        config: None,
        oos_paths: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match arg.as_str() {
            "--budget-s" => a.budget_s = value("--budget-s").parse().expect("--budget-s SECONDS"),
            "--steps" => a.steps = Some(value("--steps").parse().expect("--steps N")),
            "--no-quick" => a.quick = false,
            "--no-long" => a.long = false,
            "--symbol" => a.symbols = Some(vec![value("--symbol")]),
            "--symbols" => {
                a.symbols = Some(value("--symbols").split(',').map(str::to_string).collect())
            }
            "--eval-end" => {
                a.eval_end = NaiveDate::parse_from_str(&value("--eval-end"), "%Y-%m-%d")
                    .expect("--eval-end YYYY-MM-DD")
            }
            "--out" => a.out = Some(value("--out").into()),
            "--seeds" => a.seeds = value("--seeds").parse().expect("--seeds K"),
            "--first-seed" => a.first_seed = value("--first-seed").parse().expect("--first-seed F"),
            "--config" => a.config = Some(value("--config").into()),
            "--oos-paths" => a.oos_paths = value("--oos-paths").parse().expect("--oos-paths N"),
            "calibrate" => a.calibrate = true,
            // cargo bench passes `--bench`; other harness flags mean nothing here.
            _ => {}
        }
    }
    a.seeds = a.seeds.max(1);
    a
}

impl Args {
    pub fn seed_range(&self) -> std::ops::RangeInclusive<u64> {
        self.first_seed..=self.first_seed.saturating_add(self.seeds - 1)
    }
}
