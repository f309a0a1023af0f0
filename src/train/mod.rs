//! Single-process training: `lagom train`.

mod config;
mod setup;
mod trainer;

pub use config::TrainConfig;
pub use setup::TrainSetup;
pub use trainer::{bn_batches, run, TrainResult};
