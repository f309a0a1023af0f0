//! Fault injection, seeded: when to kill a worker (SIGKILL) and when to pause one (SIGSTOP, then
//! SIGCONT), with exponentially distributed times between faults. Pure: the shell asks for the
//! next fault and carries it out.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use serde::{Deserialize, Serialize};

/// The `[chaos]` section. Off unless a mean time between faults is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChaosConfig {
    /// Mean seconds between kills (`kill -9`) of a random running worker; 0 = never.
    pub kill_mtbf_s: f64,
    /// Mean seconds between pauses (SIGSTOP) of a random running worker; 0 = never.
    pub pause_mtbf_s: f64,
    /// How long a paused worker stays stopped before SIGCONT, in seconds.
    pub pause_s: f64,
    /// Seconds after start before the first fault may happen.
    pub start_after_s: f64,
    /// Seed for the fault times and victims; absent means `run.seed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        ChaosConfig {
            kill_mtbf_s: 0.0,
            pause_mtbf_s: 0.0,
            pause_s: 5.0,
            start_after_s: 0.0,
            seed: None,
        }
    }
}

impl ChaosConfig {
    /// True when any fault is configured.
    pub fn enabled(&self) -> bool {
        self.kill_mtbf_s > 0.0 || self.pause_mtbf_s > 0.0
    }

    /// Checks value ranges; returns every problem as (key, message).
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        for (key, v) in [
            ("chaos.kill_mtbf_s", self.kill_mtbf_s),
            ("chaos.pause_mtbf_s", self.pause_mtbf_s),
            ("chaos.pause_s", self.pause_s),
            ("chaos.start_after_s", self.start_after_s),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                problems.push((key, format!("must be a number ≥ 0, got {v}")));
            }
        }
        problems
    }
}

/// A fault to inject.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// SIGKILL this worker.
    Kill {
        /// Worker slot.
        worker: usize,
    },
    /// SIGSTOP this worker, SIGCONT it `for_s` seconds later.
    Pause {
        /// Worker slot.
        worker: usize,
        /// Seconds stopped.
        for_s: f64,
    },
}

/// The seeded schedule of faults.
#[derive(Debug, Clone)]
pub struct ChaosSchedule {
    config: ChaosConfig,
    rng: ChaCha8Rng,
    next_kill: Option<f64>,
    next_pause: Option<f64>,
}

impl ChaosSchedule {
    /// A schedule starting at time 0 (seconds since the supervisor started).
    pub fn new(config: &ChaosConfig, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed.unwrap_or(seed) ^ 0xc4a0_5000);
        let start = config.start_after_s;
        let next_kill = draw(&mut rng, config.kill_mtbf_s).map(|d| start + d);
        let next_pause = draw(&mut rng, config.pause_mtbf_s).map(|d| start + d);
        ChaosSchedule {
            config: config.clone(),
            rng,
            next_kill,
            next_pause,
        }
    }

    /// When the next fault is due (`None`: never).
    pub fn next_at(&self) -> Option<f64> {
        match (self.next_kill, self.next_pause) {
            (Some(k), Some(p)) => Some(k.min(p)),
            (k, p) => k.or(p),
        }
    }

    /// The fault due at `now` (if any) against one of `running` (worker slots), and the schedule
    /// moves on. With no running worker the due fault is skipped.
    pub fn due(&mut self, now: f64, running: &[usize]) -> Option<Fault> {
        let at = self.next_at().filter(|&t| t <= now)?;
        let kill = self.next_kill == Some(at);
        if kill {
            self.next_kill = draw(&mut self.rng, self.config.kill_mtbf_s).map(|d| at + d);
        } else {
            self.next_pause = draw(&mut self.rng, self.config.pause_mtbf_s).map(|d| at + d);
        }
        if running.is_empty() {
            return None;
        }
        let worker = running[self.rng.random_range(0..running.len())];
        Some(if kill {
            Fault::Kill { worker }
        } else {
            Fault::Pause {
                worker,
                for_s: self.config.pause_s,
            }
        })
    }
}

/// An exponential waiting time with this mean, or `None` for a mean of 0 (never).
fn draw(rng: &mut ChaCha8Rng, mean: f64) -> Option<f64> {
    if mean > 0.0 {
        Exp::new(1.0 / mean).ok().map(|e| e.sample(rng))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kill: f64, pause: f64) -> ChaosConfig {
        ChaosConfig {
            kill_mtbf_s: kill,
            pause_mtbf_s: pause,
            pause_s: 2.0,
            ..ChaosConfig::default()
        }
    }

    /// Every fault over `horizon` seconds, polling every 10 ms.
    fn faults(s: &mut ChaosSchedule, horizon: f64) -> Vec<(f64, Fault)> {
        let mut out = Vec::new();
        let mut now = 0.0;
        while now < horizon {
            while let Some(f) = s.due(now, &[0, 1, 2, 3]) {
                out.push((now, f));
            }
            now += 0.01;
        }
        out
    }

    #[test]
    fn off_by_default_and_never_due() {
        let c = ChaosConfig::default();
        assert!(!c.enabled());
        let mut s = ChaosSchedule::new(&c, 1);
        assert_eq!(s.next_at(), None);
        assert!(faults(&mut s, 100.0).is_empty());
    }

    #[test]
    fn the_same_seed_gives_the_same_faults_and_another_seed_does_not() {
        let a = faults(&mut ChaosSchedule::new(&config(3.0, 5.0), 7), 200.0);
        let b = faults(&mut ChaosSchedule::new(&config(3.0, 5.0), 7), 200.0);
        let c = faults(&mut ChaosSchedule::new(&config(3.0, 5.0), 8), 200.0);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn fault_rates_match_the_mean_times_between_failures() {
        let all = faults(&mut ChaosSchedule::new(&config(2.0, 8.0), 3), 4000.0);
        let kills = all
            .iter()
            .filter(|(_, f)| matches!(f, Fault::Kill { .. }))
            .count();
        let pauses = all.len() - kills;
        // Poisson counts: 2000 ± 45 kills and 500 ± 22 pauses (one standard deviation).
        assert!((1800..2200).contains(&kills), "{kills} kills");
        assert!((400..600).contains(&pauses), "{pauses} pauses");
        assert!(all.iter().all(|(_, f)| match f {
            Fault::Kill { worker } | Fault::Pause { worker, .. } => *worker < 4,
        }));
    }

    #[test]
    fn no_running_worker_skips_the_fault_and_nothing_before_the_start() {
        let mut c = config(1.0, 0.0);
        c.start_after_s = 50.0;
        let mut s = ChaosSchedule::new(&c, 1);
        assert!(s.next_at().is_some_and(|t| t > 50.0));
        assert_eq!(s.due(49.0, &[0]), None);
        let at = s.next_at().unwrap_or(0.0);
        assert_eq!(s.due(at, &[]), None);
        assert!(s.next_at().is_some_and(|t| t > at));
    }
}
