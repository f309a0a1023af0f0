//! The `[supervisor]` section: which workers this host runs, and the restart rules.

use serde::{Deserialize, Serialize};

use super::restart::RestartPolicy;

/// One worker of this host (`[[supervisor.workers]]`); unset fields take the run's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisedWorker {
    /// Worker slot on the server (0-based, below `cluster.workers`).
    pub worker: usize,
    /// Compute device (`auto`, `cpu`, `cuda:N`); default `compute.device`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// CPU threads; default `compute.threads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Relative speed (1 = nominal, 0.25 = four times slower); default from `[heterogeneity]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
}

/// The `[supervisor]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorConfig {
    /// The workers to run, each with its own settings. Empty: `count` workers with defaults.
    pub workers: Vec<SupervisedWorker>,
    /// Workers to run when `workers` is empty; 0 means `cluster.workers`.
    pub count: usize,
    /// Slot of the first of the `count` workers (hosts split the slots between them).
    pub first_worker: usize,
    /// Wait before restarting a failed worker, in seconds; doubles with each quick failure.
    pub restart_backoff_s: f64,
    /// Longest wait between restarts, in seconds.
    pub restart_backoff_max_s: f64,
    /// A worker that ran this long before failing starts the backoff over, in seconds.
    pub restart_stable_s: f64,
    /// Restarts allowed per worker within `restart_window_s`; one more and the supervisor gives
    /// up on that worker.
    pub restart_budget: usize,
    /// The window of the restart budget, in seconds.
    pub restart_window_s: f64,
    /// On SIGTERM/SIGINT: seconds the workers get to stop before they are killed.
    pub grace_s: f64,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            workers: Vec::new(),
            count: 0,
            first_worker: 0,
            restart_backoff_s: 0.5,
            restart_backoff_max_s: 30.0,
            restart_stable_s: 60.0,
            restart_budget: 5,
            restart_window_s: 300.0,
            grace_s: 10.0,
        }
    }
}

impl SupervisorConfig {
    /// The restart rules.
    pub fn policy(&self) -> RestartPolicy {
        RestartPolicy {
            backoff_s: self.restart_backoff_s,
            backoff_max_s: self.restart_backoff_max_s,
            stable_s: self.restart_stable_s,
            budget: self.restart_budget,
            window_s: self.restart_window_s,
        }
    }

    /// The workers this host runs, for a cluster of `cluster_workers` slots.
    pub fn resolved(&self, cluster_workers: usize) -> Vec<SupervisedWorker> {
        if !self.workers.is_empty() {
            return self.workers.clone();
        }
        let count = if self.count == 0 {
            cluster_workers.saturating_sub(self.first_worker)
        } else {
            self.count
        };
        (self.first_worker..self.first_worker + count)
            .map(|worker| SupervisedWorker {
                worker,
                device: None,
                threads: None,
                speed: None,
            })
            .collect()
    }

    /// Checks value ranges against `cluster_workers`; returns every problem as (key, message).
    pub fn validate(&self, cluster_workers: usize) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        for (key, v) in [
            ("supervisor.restart_backoff_s", self.restart_backoff_s),
            (
                "supervisor.restart_backoff_max_s",
                self.restart_backoff_max_s,
            ),
            ("supervisor.restart_stable_s", self.restart_stable_s),
            ("supervisor.restart_window_s", self.restart_window_s),
            ("supervisor.grace_s", self.grace_s),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                problems.push((key, format!("must be a number ≥ 0, got {v}")));
            }
        }
        let workers = self.resolved(cluster_workers);
        let mut seen = std::collections::BTreeSet::new();
        for w in &workers {
            if w.worker >= cluster_workers {
                problems.push((
                    "supervisor.workers",
                    format!(
                        "worker slot {} is outside 0..{cluster_workers} (cluster.workers)",
                        w.worker
                    ),
                ));
            }
            if !seen.insert(w.worker) {
                problems.push((
                    "supervisor.workers",
                    format!("worker slot {} appears twice", w.worker),
                ));
            }
            if let Some(s) = w.speed {
                if !(s.is_finite() && s > 0.0 && s <= 1.0) {
                    problems.push((
                        "supervisor.workers",
                        format!("worker {}: speed must be in (0, 1], got {s}", w.worker),
                    ));
                }
            }
        }
        if workers.is_empty() {
            problems.push((
                "supervisor.count",
                format!(
                    "no workers to run (first_worker {} of {cluster_workers} slots)",
                    self.first_worker
                ),
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_defaults_to_the_remaining_cluster_slots() {
        let c = SupervisorConfig {
            first_worker: 2,
            ..SupervisorConfig::default()
        };
        let slots: Vec<usize> = c.resolved(5).iter().map(|w| w.worker).collect();
        assert_eq!(slots, vec![2, 3, 4]);
        assert!(c.validate(5).is_empty());
    }

    #[test]
    fn slots_outside_the_cluster_duplicates_and_bad_speeds_are_reported() {
        let w = |worker, speed| SupervisedWorker {
            worker,
            device: None,
            threads: None,
            speed,
        };
        let c = SupervisorConfig {
            workers: vec![w(0, Some(0.5)), w(0, None), w(4, Some(2.0))],
            ..SupervisorConfig::default()
        };
        let problems: Vec<String> = c.validate(4).into_iter().map(|(_, m)| m).collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|m| m.contains("appears twice")));
        assert!(problems.iter().any(|m| m.contains("outside 0..4")));
        assert!(problems
            .iter()
            .any(|m| m.contains("speed must be in (0, 1]")));
    }
}
