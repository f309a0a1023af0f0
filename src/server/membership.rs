//! What the server knows about each worker slot: incarnation, liveness, the one parameter index
//! it holds, the last sequence number applied, and counters for the summary.

use serde::{Deserialize, Serialize};

/// The server's record of one worker slot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// The incarnation of the process that holds the slot now (increases on every restart).
    pub incarnation: u64,
    /// Whether the worker is a member now (joined and not left).
    pub alive: bool,
    /// The index of the parameters the worker is computing on, if it holds any.
    pub outstanding: Option<u64>,
    /// The highest gradient sequence number seen from this incarnation.
    pub last_seq: Option<u64>,
    /// Gradients applied, over all incarnations.
    pub applied: u64,
    /// Gradients rejected, over all incarnations.
    pub rejected: u64,
    /// Sum of the staleness of the applied gradients.
    pub staleness_sum: u64,
    /// How many times the slot joined.
    pub joins: u64,
}

impl WorkerRecord {
    /// Mean staleness of this worker's applied gradients (0 when none).
    pub fn mean_staleness(&self) -> f64 {
        if self.applied == 0 {
            0.0
        } else {
            self.staleness_sum as f64 / self.applied as f64
        }
    }
}
