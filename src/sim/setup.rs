//! What a simulation needs from the configuration, gathered by `config` (which owns the whole
//! file), so the simulator depends on no configuration layer above it.

use crate::algo::AlgorithmConfig;
use crate::compute::ComputeConfig;
use crate::data::DataConfig;
use crate::heterogeneity::HeterogeneityConfig;
use crate::model::ModelConfig;
use crate::run::PolicyConfig;
use crate::train::TrainConfig;

use super::SimConfig;

/// The sections and values one simulation runs with.
#[derive(Debug, Clone)]
pub struct SimSetup {
    /// `[algorithm]`.
    pub algorithm: AlgorithmConfig,
    /// `cluster.workers`: virtual workers (or nodes).
    pub workers: usize,
    /// `[heterogeneity]`.
    pub heterogeneity: HeterogeneityConfig,
    /// `[sim]`.
    pub sim: SimConfig,
    /// `run.seed`.
    pub seed: u64,
    /// `train.nesterov`: Nesterov momentum for the decentralized nodes' local optimizer.
    pub nesterov: bool,
    /// When to evaluate and when the run has diverged.
    pub policy: PolicyConfig,
    /// `[model]` (`sim.objective = "model"`).
    pub model: ModelConfig,
    /// `[data]` (`sim.objective = "model"`).
    pub data: DataConfig,
    /// `[compute]` (`sim.objective = "model"`).
    pub compute: ComputeConfig,
    /// `[train]`: the mini-batch and evaluation batch sizes (`sim.objective = "model"`).
    pub train: TrainConfig,
}
