//! `compute.cpu_kernels`: which implementation of the convolutional layers a CPU node runs.

use candle_core::Device;
use serde::{Deserialize, Serialize};

/// The kernels behind convolution, batch norm and ReLU on a CPU device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuKernels {
    /// lagom's im2col + gemm kernels with fused batch norm / ReLU (the default).
    #[default]
    Fast,
    /// candle's own ops: the reference the fast kernels are tested against.
    Candle,
}

impl CpuKernels {
    /// True when a layer on `device` should run the fast kernels (never on a GPU).
    pub fn fast_on(self, device: &Device) -> bool {
        self == CpuKernels::Fast && device.is_cpu()
    }

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            CpuKernels::Fast => "fast",
            CpuKernels::Candle => "candle",
        }
    }
}
