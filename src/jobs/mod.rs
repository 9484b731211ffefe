//! Long-running work as jobs. A job owns `runs/<id>/`: `manifest.json`, an append-only
//! `events.jsonl`, and its artifacts. The screen (or a headless progress bar) learns of a job's
//! progress only through its events: from a channel when it started the job, by tailing the file
//! when the job runs elsewhere.

pub mod cancel;
pub mod runner;
mod work;
pub use work::{resolve_model, resolve_train_run, run as run_job};
pub mod events;
mod fetch;
pub mod rundir;
pub mod sink;
pub mod tail;

pub use cancel::CancelToken;
pub use events::{Event, EventRecord, JobKind, JobStatus};
pub use rundir::{list_runs, Manifest, RunDir, RunSummary};
pub use runner::{spawn, JobHandle, JobRequest, Observer};
pub use sink::EventSink;
pub use tail::EventTail;
