//! A whole decentralized run in one process: one [`NodeDriver`] per node and one
//! [`RendezvousCore`], connected by an in-memory network. The simulator and the exact tests of
//! spec §17.9–§17.17 run on it, so they test the very drivers a networked worker executes.
//!
//! The network hands every message over the moment it is sent, with its modelled lateness (plus
//! OSGP's jitter, drawn from a seeded generator in the order messages are sent); the receiving
//! driver absorbs it at the point that lateness says. Exact averages go through the rendezvous
//! core in slot order. Every node is present and the drivers are polled in rounds, node by node,
//! until each has completed the iteration; the bytes each node sends and absorbs are counted.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::algo::Real;

use super::driver::{DriverAction, NodeDriver};
use super::mean::{consensus_distance, node_mean};
use super::node::{DecentralizedNode, ReduceKind};
use super::rendezvous::{RendezvousAction, RendezvousCore};

/// Writes node i's stochastic gradient at a point into the buffer: `(i, point, out)`.
pub type GradientOracle<'a, T> = dyn FnMut(usize, &[T], &mut Vec<T>) + 'a;

/// What one iteration did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IterationReport {
    /// Bytes each node sent (point-to-point messages plus its part of exact averages).
    pub bytes_sent: Vec<u64>,
    /// Bytes each node received (messages it absorbed plus the averages it got back).
    pub bytes_received: Vec<u64>,
    /// True when the gradients were replaced by their exact mean (AR-SGD).
    pub reduced_gradients: bool,
    /// True when the nodes averaged their losses at their loss points (PC-ASGD's global θ).
    pub reduced_losses: bool,
    /// True when the nodes averaged their parameters exactly at the end of the iteration.
    pub averaged: bool,
    /// True when that average fed a SlowMo slow step.
    pub slow_step: bool,
    /// Inputs a driver or the rendezvous refused (0 unless a core is wrong).
    pub refused: u64,
}

/// The nodes of a run, their drivers and the rendezvous (see the module docs).
pub struct InProcessCluster<T> {
    drivers: Vec<NodeDriver<T>>,
    rendezvous: RendezvousCore<T>,
    rng: ChaCha8Rng,
}

/// Bytes of `values` on the wire (f32).
fn vector_bytes(values: usize) -> u64 {
    4 * values as u64
}

impl<T: Real> InProcessCluster<T> {
    /// Runs `nodes` (at least one, all with parameters of one length); `seed` fixes the lateness
    /// drawn for late messages.
    pub fn new(nodes: Vec<Box<dyn DecentralizedNode<T>>>, seed: u64) -> Self {
        assert!(!nodes.is_empty(), "a cluster needs at least one node");
        let n = nodes.len();
        let params = nodes[0].params();
        let dim = params.len();
        let mut rendezvous = RendezvousCore::new(n, params, 0);
        for i in 0..n {
            // Every node starts from its own core's state; the Start actions are not needed.
            let _ = rendezvous.join(i, "in-process".to_string());
        }
        let drivers = nodes
            .into_iter()
            .enumerate()
            .map(|(i, node)| NodeDriver::new(i, n, dim, node, 0, f64::INFINITY))
            .collect();
        InProcessCluster {
            drivers,
            rendezvous,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The number of iterations run.
    pub fn iteration(&self) -> u64 {
        self.drivers[0].iteration()
    }

    /// The node cores, in slot order.
    pub fn nodes(&self) -> Vec<&dyn DecentralizedNode<T>> {
        self.drivers.iter().map(|d| d.node()).collect()
    }

    /// Runs one iteration with learning rate `lr`. `gradient(i, point, out)` writes node i's
    /// stochastic gradient at `point` into `out`; `loss(i, point)` is node i's local loss (only
    /// PC-ASGD's adaptive θ asks for it).
    pub fn iterate(
        &mut self,
        lr: f64,
        gradient: &mut GradientOracle<'_, T>,
        loss: &mut dyn FnMut(usize, &[T]) -> f64,
    ) -> IterationReport {
        let n = self.drivers.len();
        let mut report = IterationReport {
            bytes_sent: vec![0; n],
            bytes_received: vec![0; n],
            ..IterationReport::default()
        };
        let absorbed_before: Vec<u64> = self
            .drivers
            .iter()
            .map(|d| d.counts().absorbed_bytes)
            .collect();
        self.drivers.iter_mut().for_each(|d| d.start(lr));
        let mut done = vec![false; n];
        // Every message is delivered at once, so a round without progress only happens if a
        // core waits for a message nobody sends: the deadline then passes (`now = ∞`).
        let mut now = 0.0;
        while done.iter().any(|d| !d) {
            let mut progressed = false;
            for (i, finished) in done.iter_mut().enumerate() {
                if *finished {
                    continue;
                }
                for action in self.drivers[i].poll(now) {
                    progressed |= !matches!(action, DriverAction::WaitUntil(_));
                    *finished |= matches!(action, DriverAction::Completed { .. });
                    self.execute(i, action, &mut report, gradient, loss);
                }
            }
            if !progressed {
                if now == f64::INFINITY {
                    break;
                }
                now = f64::INFINITY;
            }
        }
        for (i, d) in self.drivers.iter().enumerate() {
            report.bytes_received[i] += d.counts().absorbed_bytes - absorbed_before[i];
        }
        report
    }

    /// Carries out one action of node `i`'s driver.
    fn execute(
        &mut self,
        i: usize,
        action: DriverAction<T>,
        report: &mut IterationReport,
        gradient: &mut GradientOracle<'_, T>,
        loss: &mut dyn FnMut(usize, &[T]) -> f64,
    ) {
        let refused = match action {
            DriverAction::Send(o) => {
                let extra = if o.jitter > 0 {
                    self.rng.random_range(0..=o.jitter)
                } else {
                    0
                };
                report.bytes_sent[i] += o.message.wire_bytes();
                self.drivers[o.to]
                    .receive(o.lateness + extra, o.message)
                    .is_err()
            }
            DriverAction::ComputeGradient { iteration, point } => {
                let mut g = Vec::new();
                gradient(i, &point, &mut g);
                self.drivers[i].on_gradient(iteration, g).is_err()
            }
            DriverAction::ComputeLosses { iteration, points } => {
                let losses = points.iter().map(|p| loss(i, p)).collect();
                self.drivers[i].on_losses(iteration, losses).is_err()
            }
            DriverAction::Reduce {
                iteration,
                kind,
                values,
            } => {
                let bytes = vector_bytes(values.len());
                report.bytes_sent[i] += bytes;
                report.bytes_received[i] += bytes;
                report.reduced_gradients |= kind == ReduceKind::Gradients;
                report.reduced_losses |= kind == ReduceKind::Losses;
                match self.rendezvous.on_reduce(i, iteration, kind, values) {
                    Ok(actions) => self.hand_over(actions) > 0,
                    Err(_) => true,
                }
            }
            DriverAction::Completed {
                completed,
                reduction,
            } => {
                if let Some(r) = reduction {
                    report.averaged = true;
                    report.slow_step = r.slow_step;
                }
                // What a network worker tells the rendezvous after every iteration.
                match self.rendezvous.on_progress(i, completed) {
                    Ok(actions) => self.hand_over(actions) > 0,
                    Err(_) => true,
                }
            }
            DriverAction::WaitUntil(_) | DriverAction::GaveUp { .. } => false,
        };
        report.refused += u64::from(refused);
    }

    /// Hands the rendezvous' averages to the drivers; returns how many inputs were refused.
    fn hand_over(&mut self, actions: Vec<RendezvousAction<T>>) -> u64 {
        let mut refused = 0;
        for action in actions {
            if let RendezvousAction::Reduced {
                worker,
                iteration,
                kind,
                values,
                ..
            } = action
            {
                refused += u64::from(
                    self.drivers[worker]
                        .on_reduced(iteration, kind, Arc::unwrap_or_clone(values))
                        .is_err(),
                );
            }
        }
        refused
    }

    /// The sums of the numerators and weights of the messages not absorbed yet.
    pub fn in_flight_mass(&self, d: usize) -> (Vec<T>, T) {
        let mut x = vec![T::zero(); d];
        let mut w = T::zero();
        for driver in &self.drivers {
            let (dx, dw) = driver.waiting_mass();
            for (s, &v) in x.iter_mut().zip(&dx) {
                *s = *s + v;
            }
            w = w + dw;
        }
        (x, w)
    }

    /// The mean of the nodes' de-biased parameters (the model a run reports); OSGP messages
    /// not absorbed yet are not in it.
    pub fn mean_params(&self) -> Vec<T> {
        let params: Vec<Vec<T>> = self.drivers.iter().map(|d| d.node().params()).collect();
        node_mean(&params)
    }

    /// Consensus distance: `sqrt(mean_i ‖z_i − z̄‖²)` over the de-biased parameters.
    pub fn consensus_distance(&self) -> f64 {
        let params: Vec<Vec<T>> = self.drivers.iter().map(|d| d.node().params()).collect();
        consensus_distance(&params)
    }
}
