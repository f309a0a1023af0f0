//! `[model]`: which network, and how its batch-norm statistics reach evaluation.

use serde::{Deserialize, Serialize};

use super::ModelName;

/// Where the batch-norm running statistics of an evaluated model come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BnEval {
    /// The exponential moving averages kept by training forwards (PyTorch's default).
    Running,
    /// Recomputed before each evaluation as the exact average over `bn_batches` training
    /// batches (precise BN); what a node does with parameters trained elsewhere.
    Recompute,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Which network.
    pub name: ModelName,
    /// Batch-norm statistics for evaluation in `lagom train` (a server always recomputes).
    pub bn_eval: BnEval,
    /// Training batches used to recompute batch-norm statistics.
    pub bn_batches: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            name: ModelName::Cnn,
            bn_eval: BnEval::Running,
            bn_batches: 20,
        }
    }
}

impl ModelConfig {
    /// Checks value ranges; returns every problem as (key, message).
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.bn_batches == 0 {
            problems.push(("model.bn_batches", "must be ≥ 1, got 0".to_string()));
        }
        problems
    }
}
