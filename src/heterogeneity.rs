//! The heterogeneity model shared by the simulator and the supervisor: which workers are slow,
//! each worker's relative speed, and random jitter of compute times.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};
use serde::{Deserialize, Serialize};

/// How a worker is made slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SlowdownMechanism {
    /// The worker stretches each step to its compute time × 1/speed (CPU and GPU alike).
    #[default]
    Delay,
    /// The supervisor caps the worker process's CPU time with cgroup v2 `cpu.max` (CPU workers
    /// on hosts that delegate the cpu controller).
    CpuQuota,
}

/// `[heterogeneity]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeterogeneityConfig {
    /// Fraction of the workers that are slow (rounded to the nearest count).
    pub slow_fraction: f64,
    /// How many times longer a slow worker takes per step.
    pub slowdown: f64,
    /// Explicit relative speeds, one per worker (1 = nominal, 0.25 = four times slower);
    /// when given, `slow_fraction` and `slowdown` are ignored.
    pub speeds: Vec<f64>,
    /// Coefficient of variation of each step's compute time (0 = deterministic). Step times are
    /// Gamma-distributed with mean 1 and this spread, times the worker's nominal time.
    pub jitter: f64,
    /// How slow workers are slowed: `delay` or `cpu-quota`.
    pub mechanism: SlowdownMechanism,
    /// Seed for choosing the slow workers and for the jitter; absent means `run.seed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Default for HeterogeneityConfig {
    fn default() -> Self {
        HeterogeneityConfig {
            slow_fraction: 0.0,
            slowdown: 1.0,
            speeds: Vec::new(),
            jitter: 0.0,
            mechanism: SlowdownMechanism::Delay,
            seed: None,
        }
    }
}

impl HeterogeneityConfig {
    /// Checks value ranges against `workers`; returns every problem as (key, message).
    pub fn validate(&self, workers: usize) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.slow_fraction) {
            problems.push((
                "heterogeneity.slow_fraction",
                format!("must be in [0, 1], got {}", self.slow_fraction),
            ));
        }
        if !(self.slowdown.is_finite() && self.slowdown >= 1.0) {
            problems.push((
                "heterogeneity.slowdown",
                format!("must be ≥ 1, got {}", self.slowdown),
            ));
        }
        if !self.speeds.is_empty() && self.speeds.len() != workers {
            problems.push((
                "heterogeneity.speeds",
                format!(
                    "has {} entries but cluster.workers is {workers}",
                    self.speeds.len()
                ),
            ));
        }
        if let Some(bad) = self.speeds.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            problems.push((
                "heterogeneity.speeds",
                format!("must all be > 0, got {bad}"),
            ));
        }
        if !(self.jitter.is_finite() && self.jitter >= 0.0) {
            problems.push((
                "heterogeneity.jitter",
                format!("must be ≥ 0, got {}", self.jitter),
            ));
        }
        problems
    }

    /// Each worker's relative speed: the explicit list, or `1/slowdown` for a seeded random choice
    /// of `round(slow_fraction × workers)` workers and 1 for the others.
    pub fn speeds(&self, workers: usize, run_seed: u64) -> Vec<f64> {
        if !self.speeds.is_empty() {
            return self.speeds.clone();
        }
        let slow = (self.slow_fraction * workers as f64).round() as usize;
        let mut ids: Vec<usize> = (0..workers).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed.unwrap_or(run_seed));
        ids.shuffle(&mut rng);
        let mut speeds = vec![1.0; workers];
        for &k in ids.iter().take(slow) {
            speeds[k] = 1.0 / self.slowdown;
        }
        speeds
    }

    /// A sampler of jitter multipliers (mean 1), or `None` when there is no jitter.
    pub fn jitter_distribution(&self) -> Option<Gamma<f64>> {
        if self.jitter <= 0.0 {
            return None;
        }
        let shape = 1.0 / (self.jitter * self.jitter);
        Gamma::new(shape, 1.0 / shape).ok()
    }
}

/// Draws one jitter multiplier (1 when there is no jitter).
pub fn jitter_factor<R: rand::Rng>(dist: Option<&Gamma<f64>>, rng: &mut R) -> f64 {
    dist.map_or(1.0, |d| d.sample(rng))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarter_of_sixteen_workers_are_four_times_slower() {
        let h = HeterogeneityConfig {
            slow_fraction: 0.25,
            slowdown: 4.0,
            ..Default::default()
        };
        let speeds = h.speeds(16, 7);
        assert_eq!(speeds.iter().filter(|&&s| s == 0.25).count(), 4);
        assert_eq!(speeds.iter().filter(|&&s| s == 1.0).count(), 12);
        assert_eq!(speeds, h.speeds(16, 7), "seeded choice is reproducible");
    }

    #[test]
    fn jitter_has_mean_one_and_the_configured_spread() {
        let h = HeterogeneityConfig {
            jitter: 0.2,
            ..Default::default()
        };
        let dist = h.jitter_distribution();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let xs: Vec<f64> = (0..20000)
            .map(|_| jitter_factor(dist.as_ref(), &mut rng))
            .collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / xs.len() as f64;
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
        assert!((var.sqrt() - 0.2).abs() < 0.01, "cv {}", var.sqrt());
        assert_eq!(jitter_factor(None, &mut rng), 1.0);
    }
}
