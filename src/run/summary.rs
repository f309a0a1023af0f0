//! `summary.json`: the fields every run kind writes, plus the kind's own [`RunDetails`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RunDetails;
use crate::server::{StalenessSummary, WorkerRecord};

/// One worker's line in `per_worker`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerWorker {
    /// Worker slot id.
    pub id: usize,
    /// Gradients applied from it, over all incarnations.
    pub gradients: u64,
    /// Mean staleness of those gradients.
    pub mean_staleness: f64,
    /// Its configured relative speed (1 = nominal, 0.25 = four times slower).
    pub speed: f64,
    /// What it really did: its gradients relative to the most productive worker's (0.25 = a
    /// quarter as many; 0 when no worker delivered any).
    pub effective_speed: f64,
}

impl PerWorker {
    /// One line per worker slot from the server core's records and the configured speeds
    /// (1.0 where a speed is missing).
    pub fn from_records(records: &[WorkerRecord], speeds: &[f64]) -> Vec<PerWorker> {
        let most = records.iter().map(|r| r.applied).max().unwrap_or(0);
        records
            .iter()
            .enumerate()
            .map(|(id, r)| PerWorker {
                id,
                gradients: r.applied,
                mean_staleness: r.mean_staleness(),
                speed: speeds.get(id).copied().unwrap_or(1.0),
                effective_speed: if most == 0 {
                    0.0
                } else {
                    r.applied as f64 / most as f64
                },
            })
            .collect()
    }
}

/// The run summary. Field order is fixed, so equal runs give byte-identical files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// What produced it: `sim`, `train`, `server`, …
    pub kind: String,
    /// The algorithm's configuration name.
    pub algorithm: String,
    /// `async` or `sync`.
    pub scheduler: String,
    /// K.
    pub workers: usize,
    /// Applied server updates.
    pub updates: u64,
    /// Elapsed time of the run in seconds (virtual for `sim`, wall-clock otherwise).
    pub wall_s: f64,
    /// The last evaluated loss (`null` when it was not finite).
    pub final_loss: Option<f64>,
    /// True when the loss became non-finite or exceeded `run.divergence_loss`.
    pub diverged: bool,
    /// Staleness over all applied gradients.
    pub staleness: StalenessSummary,
    /// Per worker.
    pub per_worker: Vec<PerWorker>,
    /// Rejected gradients by reason.
    pub gradients_rejected: BTreeMap<String, u64>,
    /// The run seed.
    pub seed: u64,
    /// The signal that ended the run early (absent when it ran to its end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    /// The fields of this kind of run (e.g. `objective` for `sim`), beside the common ones.
    #[serde(flatten)]
    pub details: RunDetails,
}
