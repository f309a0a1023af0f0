//! Single-process training: `lagom train`.

mod config;
mod trainer;

pub use config::TrainConfig;
pub use trainer::{bn_batches, run, TrainResult};
