//! Configuration: Rust defaults, overlaid by `configs/default.toml`, a training mode file, a user
//! file and finally command-line flags. Every file is checked on its own first, so an error names
//! the file, the line and the field.

mod checks;
pub mod duration;
mod load;
mod notify;
mod portfolio;
mod ppo;
mod range;
mod schema;
mod shape;
pub mod sweep;

pub use checks::{check, FieldError, MAX_UNIVERSE};
pub use duration::TrainDuration;
pub use load::{load, load_with_notes, merge_values, validate, ConfigSource, MODES};
pub use notify::{NotifyConfig, NotifyTemplate};
pub use portfolio::{check_universe, PortfolioConfig, CASH, MAX_SYMBOLS, SEED_UNIVERSE};
pub use ppo::{Encoder, GpuSizing, PpoConfig, Precision};
pub use range::MAX_TRAIN_PATHS;
pub use schema::*;
pub use sweep::{BackendKind, SlurmConfig, Stage, SweepConfig};
