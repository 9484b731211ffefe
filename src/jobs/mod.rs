//! Long-running work as jobs. A job owns `runs/<id>/`: `manifest.json` (with a heartbeat while it
//! runs), an append-only `events.jsonl`, and its artifacts. The screen (or a headless progress
//! bar) learns of a job's progress only through its events: from a channel when it started the
//! job, by tailing the file when the job runs elsewhere. One file per job kind.

pub mod cancel;
mod ctx;
pub mod estimate;
pub mod events;
mod fetch;
mod fetch_alpaca;
mod gate;
mod gate_check;
mod paper;
mod paper_claim;
mod paper_feed;
mod paper_flatten;
pub mod paper_output;
mod paper_portfolio;
mod portfolio;
pub mod replay;
pub mod resume;
pub mod rundir;
pub mod runner;
pub mod runscan;
pub mod sink;
pub mod sweep;
pub mod tail;
pub mod tensorboard;
mod train;
mod train_paths;
mod train_portfolio;
pub mod validations;
mod walk_portfolio;
mod walkforward;
pub mod watch;

pub use cancel::CancelToken;
pub use ctx::{resolve_model, resolve_train_run, ModelChoice};
pub use events::{CheckpointReason, Event, EventRecord, JobKind, JobStatus, JobSummary, LogLevel};
pub use paper_flatten::flatten_now;
pub use paper_output::PaperOutput;
pub use rundir::{ActiveRun, Manifest, RunDir, RunSummary};
pub use runner::{run as run_job, spawn, JobHandle, JobRequest, Observer};
pub use runscan::{list_runs, scan_runs, DamagedRun, RunScan};
pub use sink::EventSink;
pub use tail::EventTail;
pub use train::{read_validations, VALIDATIONS};
pub use train_portfolio::PORTFOLIO_LABEL;
pub use walkforward::EvalPeriod;
