//! Where the host's time went during a simulation: computing gradients and losses, evaluating,
//! or the simulator itself (cores, schedulers, clocks, stale copies). Measured outside the
//! outputs, so it never breaks a run's determinism; it is how `benches/sim_overhead.sh` measures
//! the simulator's cost over the gradients in the same process at the same moments.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::source::{Evaluation, GradientSource};

/// Host seconds of one simulation, split by what they were spent on.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HostTime {
    /// From the first to the last step of the simulation loop, final evaluation included.
    pub total_s: f64,
    /// Inside the source's `gradient` and `local_loss` (parameters in, batch, forward, backward).
    pub compute_s: f64,
    /// Inside the source's `evaluate`.
    pub evaluate_s: f64,
    /// Inside the parameter server's core (its algorithm's update, the parameters each worker
    /// is sent); `None` for the decentralized family, whose cores step inside each iteration.
    pub core_s: Option<f64>,
}

impl HostTime {
    /// The simulator's own time as a share of the compute time (0.03 = 3 % over the gradients);
    /// `None` when nothing was computed.
    pub fn overhead(&self) -> Option<f64> {
        (self.compute_s > 0.0)
            .then(|| (self.total_s - self.compute_s - self.evaluate_s) / self.compute_s)
    }

    /// The `host time:` line `lagom sim` prints after a model's run; `None` when nothing was
    /// computed.
    pub fn line(&self) -> Option<String> {
        let overhead = self.overhead()?;
        let core = self.core_share().map_or(String::new(), |c| {
            format!(
                " (of it the server core, its algorithm's update and the parameters it sends: \
                 {:.2} %)",
                100.0 * c
            )
        });
        Some(format!(
            "host time: {:.3} s in the loop, {:.3} s computing gradients and losses, {:.3} s \
             evaluating; the simulator's own share {:.2} % over the computing{core}",
            self.total_s,
            self.compute_s,
            self.evaluate_s,
            100.0 * overhead
        ))
    }

    /// The server core's time as a share of the compute time, where it was measured.
    pub fn core_share(&self) -> Option<f64> {
        self.core_s
            .filter(|_| self.compute_s > 0.0)
            .map(|c| c / self.compute_s)
    }
}

/// A [`GradientSource`] that passes every call through and adds up the host time each kind took.
pub struct TimedSource {
    inner: Box<dyn GradientSource>,
    started: Instant,
    compute: Duration,
    evaluate: Duration,
}

impl TimedSource {
    /// Wraps `inner`; the total time counts from now.
    pub fn new(inner: Box<dyn GradientSource>) -> Self {
        TimedSource {
            inner,
            started: Instant::now(),
            compute: Duration::ZERO,
            evaluate: Duration::ZERO,
        }
    }

    /// The time so far.
    pub fn host_time(&self) -> HostTime {
        HostTime {
            total_s: self.started.elapsed().as_secs_f64(),
            compute_s: self.compute.as_secs_f64(),
            evaluate_s: self.evaluate.as_secs_f64(),
            core_s: None,
        }
    }
}

impl GradientSource for TimedSource {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn initial(&self) -> Result<Vec<f32>> {
        self.inner.initial()
    }

    fn gradient(
        &mut self,
        worker: usize,
        w: &[f32],
        weight_decay: f32,
        out: &mut Vec<f32>,
    ) -> Result<Option<f64>> {
        let start = Instant::now();
        let r = self.inner.gradient(worker, w, weight_decay, out);
        self.compute += start.elapsed();
        r
    }

    fn local_loss(&mut self, worker: usize, w: &[f32]) -> Result<f64> {
        let start = Instant::now();
        let r = self.inner.local_loss(worker, w);
        self.compute += start.elapsed();
        r
    }

    fn evaluate(&mut self, w: &[f32]) -> Result<Evaluation> {
        let start = Instant::now();
        let r = self.inner.evaluate(w);
        self.evaluate += start.elapsed();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{build_objective, AnalyticSource, SimConfig};

    #[test]
    fn passes_calls_through_and_splits_the_time() {
        let sim = SimConfig::default();
        let objective = build_objective(&sim, 7).unwrap();
        let plain = AnalyticSource::new(build_objective(&sim, 7).unwrap(), 2, 7);
        let mut timed = TimedSource::new(Box::new(AnalyticSource::new(objective, 2, 7)));
        let mut plain: Box<dyn GradientSource> = Box::new(plain);
        let w = timed.initial().unwrap();
        assert_eq!(w, plain.initial().unwrap());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for worker in [0, 1, 0] {
            timed.gradient(worker, &w, 0.1, &mut a).unwrap();
            plain.gradient(worker, &w, 0.1, &mut b).unwrap();
            assert_eq!(a, b, "the wrapper changed a gradient");
        }
        assert_eq!(timed.evaluate(&w).unwrap(), plain.evaluate(&w).unwrap());
        let t = timed.host_time();
        assert!(t.compute_s > 0.0 && t.evaluate_s > 0.0, "{t:?}");
        assert!(t.compute_s + t.evaluate_s <= t.total_s, "{t:?}");
        assert!(t.overhead().is_some_and(|o| o >= 0.0), "{t:?}");
        assert_eq!(HostTime::default().overhead(), None);
        let with_core = HostTime {
            core_s: Some(t.compute_s / 4.0),
            ..t
        };
        assert!((with_core.core_share().unwrap() - 0.25).abs() < 1e-12);
        assert_eq!(t.core_share(), None);
        assert!(with_core
            .line()
            .is_some_and(|l| l.contains("server core") && l.contains("25.00 %")));
        assert!(t.line().is_some_and(|l| !l.contains("server core")));
        assert_eq!(HostTime::default().line(), None);
    }
}
