//! `[compute]`: the device and CPU threads of a node.

use serde::{Deserialize, Serialize};

use super::DeviceSpec;
use crate::kernels::CpuKernels;
use crate::model::ActivationMemory;

/// `[compute]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeConfig {
    /// `auto`, `cpu` or `cuda:N`.
    pub device: DeviceSpec,
    /// CPU threads for tensor ops; 0 keeps candle's default (the physical cores).
    pub threads: usize,
    /// Kernels of the convolutional layers on a CPU device: `fast` (lagom's) or `candle`.
    pub cpu_kernels: CpuKernels,
    /// What a training step holds for its backward pass: `keep` (every activation, fastest) or
    /// `recompute` (ResNet-20: block inputs only, recomputed per block; less memory).
    pub activations: ActivationMemory,
}

/// Sets the CPU thread count of candle's pools and rayon's global pool. Both read it once, when
/// they are first used, so this must run before the first tensor operation of the process.
pub fn set_cpu_threads(threads: usize) {
    if threads > 0 {
        let n = threads.to_string();
        std::env::set_var("RAYON_NUM_THREADS", &n);
        std::env::set_var("CANDLE_NUM_THREADS", &n);
    }
}
