//! The server core's state as a checkpoint stores it, and its restoration into a fresh core
//! built from the same configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::core::REJECT_CODES;
use super::{ServerCore, StalenessHistogram, WorkerRecord};
use crate::algo::{AlgorithmState, Real};

/// Everything the core has learned and counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoreSnapshot<T> {
    /// Applied updates (the iteration counter).
    pub t: u64,
    /// Whether the first (synchronous) round had started.
    pub started: bool,
    /// Per worker slot: incarnation, last sequence number, counters.
    pub workers: Vec<WorkerRecord>,
    /// Staleness histogram as `(staleness, count)`.
    pub staleness: Vec<(u64, u64)>,
    /// Rejections by reason code.
    pub rejected: BTreeMap<String, u64>,
    /// The algorithm's learned state (parameters, buffers, counters).
    pub algorithm: AlgorithmState<T>,
}

impl<T: Real, P> ServerCore<T, P> {
    /// The core's state now.
    pub fn snapshot(&self) -> CoreSnapshot<T> {
        CoreSnapshot {
            t: self.t,
            started: self.started,
            workers: self.workers.clone(),
            staleness: self.staleness.counts(),
            rejected: self
                .rejected
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            algorithm: self.algorithm.save_state(),
        }
    }

    /// Restores a snapshot into this core (built from the same configuration, before any event).
    /// Nobody is connected after a restart: every slot is marked gone and holds nothing, but
    /// keeps its incarnation and last sequence number, so a gradient sent before the restart is
    /// never applied twice. On error nothing changes.
    pub fn restore(&mut self, snap: &CoreSnapshot<T>) -> Result<(), String> {
        if snap.workers.len() != self.workers.len() {
            return Err(format!(
                "the checkpoint has {} worker slots, the configuration {}",
                snap.workers.len(),
                self.workers.len()
            ));
        }
        let mut rejected = BTreeMap::new();
        for (code, n) in &snap.rejected {
            let known = REJECT_CODES
                .iter()
                .find(|c| **c == code.as_str())
                .ok_or_else(|| format!("unknown rejection code `{code}` in the checkpoint"))?;
            rejected.insert(*known, *n);
        }
        self.algorithm.load_state(&snap.algorithm)?;
        self.t = snap.t;
        self.started = snap.started;
        self.stopped = false;
        self.waiting.clear();
        self.round_fresh = true;
        self.workers = snap
            .workers
            .iter()
            .map(|w| WorkerRecord {
                alive: false,
                outstanding: None,
                ..w.clone()
            })
            .collect();
        self.staleness = StalenessHistogram::from_counts(&snap.staleness);
        self.rejected = rejected;
        Ok(())
    }
}
