//! `[train]`: single-process training (`lagom train`) and the mini-batch every worker uses.

use serde::{Deserialize, Serialize};

/// `[train]`. The learning rate, momentum, weight decay and schedule come from `[algorithm]`, so
/// one file describes both the single-process baseline and the cluster run it is compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Passes over the training set; training stops at whichever of the limits comes first.
    pub epochs: u64,
    /// Wall-clock limit in seconds (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_budget_s: Option<f64>,
    /// Step limit (absent: none); for smoke runs and tests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u64>,
    /// Examples per mini-batch.
    pub batch_size: usize,
    /// Examples per evaluation batch (memory only; results do not depend on it). 250: the `cnn`
    /// evaluator peaks ~80 MB lower than at 1 000, at the same speed on the CPU.
    pub eval_batch_size: usize,
    /// Evaluate on the test set every this many steps; 0 = at the end of every epoch. The end of
    /// training is always evaluated.
    pub eval_every: u64,
    /// Write a training-loss line every this many steps.
    pub log_every: u64,
    /// Nesterov instead of heavy-ball momentum in the local optimizer.
    pub nesterov: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 1,
            time_budget_s: None,
            max_steps: None,
            batch_size: 128,
            eval_batch_size: 250,
            eval_every: 0,
            log_every: 50,
            nesterov: false,
        }
    }
}

impl TrainConfig {
    /// Checks value ranges; returns every problem as (key, message).
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.epochs == 0 {
            problems.push(("train.epochs", "must be ≥ 1, got 0".to_string()));
        }
        if let Some(t) = self.time_budget_s {
            if !(t.is_finite() && t > 0.0) {
                problems.push(("train.time_budget_s", format!("must be > 0, got {t}")));
            }
        }
        if self.max_steps == Some(0) {
            problems.push(("train.max_steps", "must be ≥ 1, got 0".to_string()));
        }
        if self.batch_size == 0 {
            problems.push(("train.batch_size", "must be ≥ 1, got 0".to_string()));
        }
        if self.eval_batch_size == 0 {
            problems.push(("train.eval_batch_size", "must be ≥ 1, got 0".to_string()));
        }
        if self.log_every == 0 {
            problems.push(("train.log_every", "must be ≥ 1, got 0".to_string()));
        }
        problems
    }
}
