//! `compute.activations`: whether a training step keeps every activation for the backward pass
//! or recomputes them block by block (less memory, one more forward pass).

use serde::{Deserialize, Serialize};

/// How a training step holds the activations its backward pass needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationMemory {
    /// One autograd graph over the whole network: every activation lives until the backward
    /// pass ends (the fastest; the default).
    #[default]
    Keep,
    /// ResNet-20 keeps only each residual block's input; the backward pass recomputes one block
    /// at a time and differentiates it alone. The same gradient and running statistics for
    /// about one more forward pass per step and a fraction of the memory. Models without
    /// residual blocks (`mlp`, `cnn`) keep their activations either way.
    Recompute,
}

impl ActivationMemory {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivationMemory::Keep => "keep",
            ActivationMemory::Recompute => "recompute",
        }
    }
}
