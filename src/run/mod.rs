//! Run outputs, one format for every run kind: `metrics.jsonl` (one JSON event per line),
//! `summary.json` (written atomically at the end), the effective `config.toml`, and progress.

pub mod catalog;
mod checkpoint_writer;
pub mod details;
mod dir;
mod eval_point;
pub mod event;
pub mod generations;
mod headline;
mod policy;
mod progress;
mod summary;

pub use checkpoint_writer::{CheckpointWriter, WriteDone};
pub use details::{
    DecentralizedSimDetails, IncarnationApplied, ModelFacts, RendezvousDetails, RunDetails,
    ServerDetails, SimDetails, TrainDetails,
};
pub use dir::{MetricsWriter, RunDir};
pub use eval_point::{eval_points, EvalPoint};
pub use event::RunEvent;
pub use policy::{PolicyAction, PolicyConfig, RunPolicy};
pub use progress::Progress;
pub use summary::{PerWorker, Summary};
