//! What single-process training needs from the configuration, gathered by `config` (which owns
//! the whole file), so training depends on no configuration layer above it.

use crate::algo::AlgorithmConfig;
use crate::compute::ComputeConfig;
use crate::data::DataConfig;
use crate::model::ModelConfig;

use super::TrainConfig;

/// The sections and values one training run uses.
#[derive(Debug, Clone)]
pub struct TrainSetup {
    /// `[algorithm]`.
    pub algorithm: AlgorithmConfig,
    /// `[model]`.
    pub model: ModelConfig,
    /// `[data]`.
    pub data: DataConfig,
    /// `[compute]`.
    pub compute: ComputeConfig,
    /// `[train]`.
    pub train: TrainConfig,
    /// `run.seed`.
    pub seed: u64,
    /// `run.divergence_loss`.
    pub divergence_loss: f64,
}
