//! What the server applied between two evaluations: the staleness of those gradients and how
//! many came from each worker, so staleness and per-worker throughput can be plotted over time.

use serde::{Deserialize, Serialize};

use super::{StalenessHistogram, StalenessSummary};

/// The gradients applied since the last [`AppliedWindow::take`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppliedWindow {
    staleness: StalenessHistogram,
    per_worker: Vec<u64>,
}

/// `applied` of an `eval` event: the window's staleness and gradients per worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedStats {
    /// Gradients applied in the window.
    pub gradients: u64,
    /// Staleness of those gradients (all zero when none).
    pub staleness: StalenessSummary,
    /// Gradients applied from each worker slot in the window, by slot.
    pub per_worker: Vec<u64>,
}

impl AppliedWindow {
    /// An empty window over `workers` slots.
    pub fn new(workers: usize) -> Self {
        AppliedWindow {
            staleness: StalenessHistogram::default(),
            per_worker: vec![0; workers],
        }
    }

    /// Records a gradient of `worker` applied with staleness `tau` (a slot beyond the initial
    /// count widens the window).
    pub fn record(&mut self, worker: usize, tau: u64) {
        if worker >= self.per_worker.len() {
            self.per_worker.resize(worker + 1, 0);
        }
        self.per_worker[worker] += 1;
        self.staleness.record(tau);
    }

    /// The window's figures; the window starts again empty over the same slots.
    pub fn take(&mut self) -> AppliedStats {
        let workers = self.per_worker.len();
        let done = std::mem::replace(self, AppliedWindow::new(workers));
        AppliedStats {
            gradients: done.staleness.count(),
            staleness: done.staleness.summary(),
            per_worker: done.per_worker,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_its_own_gradients_and_starts_again_empty() {
        let mut w = AppliedWindow::new(3);
        for (worker, tau) in [(0, 0), (2, 4), (2, 1), (0, 9)] {
            w.record(worker, tau);
        }
        let first = w.take();
        assert_eq!(first.gradients, 4);
        assert_eq!(first.per_worker, vec![2, 0, 2]);
        assert_eq!(first.staleness.mean, 3.5);
        assert_eq!(first.staleness.p50, 1);
        assert_eq!(first.staleness.p99, 9);
        w.record(1, 2);
        w.record(4, 0);
        let second = w.take();
        assert_eq!(second.gradients, 2);
        assert_eq!(second.per_worker, vec![0, 1, 0, 0, 1]);
        assert_eq!(second.staleness.max, 2);
        assert_eq!(w.take().gradients, 0);
    }
}
