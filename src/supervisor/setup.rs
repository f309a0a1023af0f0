//! What the supervisor needs from the configuration, gathered by `config` (which owns the whole
//! file), so the supervisor depends on no configuration layer above it.

use crate::heterogeneity::HeterogeneityConfig;

use super::{ChaosConfig, SupervisorConfig};

/// The sections and values one supervisor runs with.
#[derive(Debug, Clone)]
pub struct SupervisionSetup {
    /// `[supervisor]`.
    pub supervisor: SupervisorConfig,
    /// `[chaos]`.
    pub chaos: ChaosConfig,
    /// `[heterogeneity]`: the slow workers and how they are slowed.
    pub heterogeneity: HeterogeneityConfig,
    /// `cluster.workers`.
    pub workers: usize,
    /// `compute.threads` (0: all cores).
    pub threads: usize,
    /// `run.seed`.
    pub seed: u64,
}
