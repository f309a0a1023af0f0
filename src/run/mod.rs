//! Run outputs, one format for every run kind: `metrics.jsonl` (one JSON event per line),
//! `summary.json` (written atomically at the end), the effective `config.toml`, and progress.

mod dir;
mod headline;
mod policy;
mod progress;
mod summary;

pub use dir::{MetricsWriter, RunDir};
pub use policy::{PolicyAction, PolicyConfig, RunPolicy};
pub use progress::Progress;
pub use summary::{PerWorker, Summary};
