//! All nodes of a decentralized run in one process, iteration by iteration: delivers messages
//! (with OSGP's bounded random lateness and PC-ASGD's delays), computes the exact averages the
//! nodes ask for in node order (so every node gets bit-identical values), and counts the bytes each
//! node would send and receive. The simulator and the exact tests of spec §17.9–§17.17 run on it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::algo::Real;

use super::node::{DecentralizedNode, GossipMessage, Reduction};

/// Writes node i's stochastic gradient at a point into the buffer: `(i, point, out)`.
pub type GradientOracle<'a, T> = dyn FnMut(usize, &[T], &mut Vec<T>) + 'a;

/// A message on its way.
#[derive(Debug, Clone)]
struct InFlight<T> {
    arrive: u64,
    to: usize,
    message: GossipMessage<T>,
}

/// What one iteration did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IterationReport {
    /// Bytes each node sent (point-to-point messages plus its part of exact averages).
    pub bytes_sent: Vec<u64>,
    /// Bytes each node received.
    pub bytes_received: Vec<u64>,
    /// True when the gradients were replaced by their exact mean (AR-SGD).
    pub reduced_gradients: bool,
    /// True when the nodes averaged their parameters exactly at the end of the iteration.
    pub averaged: bool,
    /// True when that average fed a SlowMo slow step.
    pub slow_step: bool,
}

/// The nodes of a run and the messages between them (see the module docs).
pub struct Engine<T> {
    nodes: Vec<Box<dyn DecentralizedNode<T>>>,
    in_flight: Vec<InFlight<T>>,
    rng: ChaCha8Rng,
    k: u64,
}

/// Bytes of one vector of `d` values on the wire (f32).
fn vector_bytes(d: usize) -> u64 {
    4 * d as u64
}

/// Consensus distance of the nodes' parameters: `sqrt(mean_i ‖z_i − z̄‖²)`.
pub fn consensus_distance<T: Real>(params: &[Vec<T>]) -> f64 {
    let avg = node_mean(params);
    let total: f64 = params
        .iter()
        .map(|p| {
            p.iter()
                .zip(&avg)
                .map(|(&a, &b)| (a - b).to_f64().powi(2))
                .sum::<f64>()
        })
        .sum();
    (total / params.len() as f64).sqrt()
}

/// The element-wise mean of `vectors` (at least one, all of one length), summed in the order
/// given: every exact average of the family goes through it, so all nodes get identical values.
pub fn node_mean<T: Real>(vectors: &[Vec<T>]) -> Vec<T> {
    let mut sum = vectors[0].clone();
    for v in &vectors[1..] {
        for (s, &x) in sum.iter_mut().zip(v) {
            *s = *s + x;
        }
    }
    let n = T::of(vectors.len() as f64);
    sum.iter_mut().for_each(|s| *s = *s / n);
    sum
}

impl<T: Real> Engine<T> {
    /// Runs `nodes` (at least one); `seed` fixes the lateness drawn for late messages.
    pub fn new(nodes: Vec<Box<dyn DecentralizedNode<T>>>, seed: u64) -> Self {
        assert!(!nodes.is_empty(), "an engine needs at least one node");
        Engine {
            nodes,
            in_flight: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            k: 0,
        }
    }

    /// The number of iterations run.
    pub fn iteration(&self) -> u64 {
        self.k
    }

    /// The nodes.
    pub fn nodes(&self) -> &[Box<dyn DecentralizedNode<T>>] {
        &self.nodes
    }

    /// Runs one iteration with learning rate `lr`. `gradient(i, point, out)` writes node i's
    /// stochastic gradient at `point` into `out`; `loss(i, point)` is node i's local loss (only
    /// PC-ASGD's adaptive θ calls it).
    pub fn iterate(
        &mut self,
        lr: f64,
        gradient: &mut GradientOracle<'_, T>,
        loss: &mut dyn FnMut(usize, &[T]) -> f64,
    ) -> IterationReport {
        let n = self.nodes.len();
        let k = self.k;
        let mut report = IterationReport {
            bytes_sent: vec![0; n],
            bytes_received: vec![0; n],
            ..IterationReport::default()
        };
        self.deliver(k, &mut report);
        for i in 0..n {
            let out = self.nodes[i].begin(k);
            self.send(i, k, out, &mut report);
        }
        self.deliver(k, &mut report);

        let mut grads: Vec<Vec<T>> = Vec::with_capacity(n);
        for i in 0..n {
            let mut g = Vec::new();
            gradient(i, self.nodes[i].eval_point(), &mut g);
            grads.push(g);
        }
        if self.nodes.iter().any(|node| node.reduces_gradients()) {
            report.reduced_gradients = true;
            let m = node_mean(&grads);
            let bytes = vector_bytes(m.len());
            for (i, g) in grads.iter_mut().enumerate() {
                g.copy_from_slice(&m);
                report.bytes_sent[i] += bytes;
                report.bytes_received[i] += bytes;
            }
        }
        for (i, g) in grads.iter().enumerate() {
            let out = self.nodes[i].step(k, g, lr);
            self.send(i, k, out, &mut report);
        }
        // Messages due at the start of the next iteration are absorbed now: nothing happens in
        // between, and the nodes' parameters are then complete at the iteration boundary.
        self.deliver(k + 1, &mut report);

        let mut requests: Vec<Option<Reduction>> = Vec::with_capacity(n);
        for (i, node) in self.nodes.iter_mut().enumerate() {
            requests.push(node.end(k, lr, &mut |p: &[T]| loss(i, p)));
        }
        if let Some(reduction) = requests.iter().flatten().next().copied() {
            // Finish in-flight gossip first: an exact average must see all the mass.
            self.deliver(u64::MAX, &mut report);
            self.reduce(reduction, lr, &mut report);
        }
        self.k += 1;
        report
    }

    /// Exact averages for every node (all nodes of a run request the same reduction at the same
    /// iteration).
    fn reduce(&mut self, reduction: Reduction, lr: f64, report: &mut IterationReport) {
        let params: Vec<Vec<T>> = self.nodes.iter().map(|node| node.params()).collect();
        let mean_params = node_mean(&params);
        let mean_buffers = reduction.buffers.then(|| {
            let buffers: Vec<Vec<T>> = self
                .nodes
                .iter()
                .map(|node| node.buffer().to_vec())
                .collect();
            node_mean(&buffers)
        });
        let vectors = 1 + u64::from(reduction.buffers);
        let bytes = vectors * vector_bytes(mean_params.len());
        for (i, node) in self.nodes.iter_mut().enumerate() {
            node.apply_reduction(reduction, &mean_params, mean_buffers.as_deref(), lr);
            report.bytes_sent[i] += bytes;
            report.bytes_received[i] += bytes;
        }
        report.averaged = true;
        report.slow_step = reduction.slow_step;
    }

    fn send(
        &mut self,
        from: usize,
        k: u64,
        out: Vec<super::node::Outgoing<T>>,
        report: &mut IterationReport,
    ) {
        for o in out {
            let extra = if o.jitter > 0 {
                self.rng.gen_range(0..=o.jitter)
            } else {
                0
            };
            report.bytes_sent[from] += o.message.wire_bytes();
            self.in_flight.push(InFlight {
                arrive: k + o.lateness + extra,
                to: o.to,
                message: o.message,
            });
        }
    }

    /// Absorbs every message due by iteration `k` (all of them for `u64::MAX`), in the order
    /// sent.
    fn deliver(&mut self, k: u64, report: &mut IterationReport) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|m| m.arrive <= k);
        self.in_flight = later;
        for m in due {
            report.bytes_received[m.to] += m.message.wire_bytes();
            self.nodes[m.to].absorb(&m.message);
        }
    }

    /// The sums of the numerators and weights of the messages still in flight.
    pub fn in_flight_mass(&self, d: usize) -> (Vec<T>, T) {
        let mut x = vec![T::zero(); d];
        let mut w = T::zero();
        for m in &self.in_flight {
            for (s, &v) in x.iter_mut().zip(&m.message.x) {
                *s = *s + v;
            }
            w = w + m.message.weight;
        }
        (x, w)
    }

    /// The mean of the nodes' de-biased parameters (the model a run reports); OSGP messages
    /// still in flight beyond the next iteration are not in it.
    pub fn mean_params(&self) -> Vec<T> {
        let params: Vec<Vec<T>> = self.nodes.iter().map(|node| node.params()).collect();
        node_mean(&params)
    }

    /// Consensus distance: `sqrt(mean_i ‖z_i − z̄‖²)` over the de-biased parameters.
    pub fn consensus_distance(&self) -> f64 {
        let params: Vec<Vec<T>> = self.nodes.iter().map(|node| node.params()).collect();
        consensus_distance(&params)
    }
}
