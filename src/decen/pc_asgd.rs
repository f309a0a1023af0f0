//! One node of PC-ASGD (spec §16; the reconstruction is UNCONFIRMED and its choices are
//! configurable): delayed nodes' parameters reach their neighbours τ iterations late and their own
//! gradients are computed on their parameters of τ iterations ago. Each iteration combines
//!
//! * the predicting candidate `x^P = Σ_j W_ij x_j^latest − γ ĝ`, with the delay-compensated
//!   gradient `ĝ = g + λ g⊙g⊙(x^k − x^stale)` (DC-ASGD's correction), keeping stale neighbours;
//! * the clipping candidate `x^C = Σ_j W̃_ij x_j^latest − γ g`, where `W̃` drops every edge with a
//!   delayed end and gives its weight back to both ends' self-loops, so `W̃` stays symmetric and
//!   doubly stochastic;
//!
//! as `x^{k+1} = θ_k x^P + (1 − θ_k) x^C`, with θ fixed or chosen by the practical variant:
//! `"adaptive"` keeps the predicting candidates of iteration k everywhere when the nodes' mean
//! local mini-batch loss there is at most that at the clipping candidates (one θ_k for the whole
//! network, a reduction of two numbers per iteration, so the effective mixing
//! `θ_k W + (1 − θ_k) W̃` stays doubly stochastic); `"adaptive-per-node"` lets each node keep its
//! own lower-loss candidate (no reduction, but the effective mixing is then only row-stochastic).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::algo::Real;

use super::node::{DecentralizedNode, GossipMessage, Incoming, Outgoing, Reduction};
use super::{Mixing, Theta, ThetaRule, Topology};

/// A (mean) loss at least this large is taken as one that could not be computed: the predicting
/// candidate is not kept. The mean over n nodes of a loss sent as
/// [`LOSS_NOT_COMPUTED`](super::node::LOSS_NOT_COMPUTED) (10³⁰) is far above it for any n.
pub const LOSS_TOO_LARGE: f64 = 1e20;

/// The clipped mixing matrix `W̃` of iteration `k`: `W(k)` without the edges that touch a node of
/// `delayed`, their weight moved to the diagonal at both ends. With no delay (`delay == 0`) it is
/// `W(k)` itself.
pub fn clipped_mixing(topology: &Topology, delayed: &[bool], delay: u64, k: u64) -> Mixing {
    let mut m = topology.mixing(k);
    if delay == 0 {
        return m;
    }
    let n = m.size();
    for i in 0..n {
        for j in 0..n {
            if i != j && (delayed[i] || delayed[j]) {
                let v = m.get(i, j);
                if v != 0.0 {
                    m.set(i, j, 0.0);
                    m.add(i, i, v);
                }
            }
        }
    }
    m
}

/// The lateness of a delayed node's messages for a delay of `delay` iterations: its parameters
/// of iteration k (sent when k begins) are mixed at the end of iteration k + τ, as `x_j^{k−τ}`
/// is at iteration k; a lateness of τ alone would mix them at the end of k + τ − 1 (the
/// receiver's point k + τ comes right after its step of k + τ − 1).
fn delayed_lateness(delay: u64) -> u64 {
    delay + 1
}

/// What a [`PcAsgdNode`] needs to know about the whole run.
#[derive(Debug, Clone)]
pub struct PcAsgdSpec {
    /// The symmetric, doubly stochastic graph.
    pub topology: Arc<Topology>,
    /// Which nodes are delayed.
    pub delayed: Arc<Vec<bool>>,
    /// The delay τ in iterations.
    pub delay: u64,
    /// The compensation scale λ.
    pub lambda: f64,
    /// The tradeoff.
    pub theta: Theta,
    /// L2 weight decay added to the gradient (`wd · eval point`).
    pub weight_decay: f64,
}

/// A PC-ASGD node (see the module docs).
pub struct PcAsgdNode<T> {
    id: usize,
    spec: PcAsgdSpec,
    x: Vec<T>,
    /// Own parameters of the last τ + 1 iterations, newest last.
    history: VecDeque<Vec<T>>,
    /// Latest parameters received from each node, with their iteration.
    latest: Vec<Option<(u64, Vec<T>)>>,
    z: Vec<T>,
    grad: Vec<T>,
    theta: Option<f64>,
    /// The predicting and clipping candidates of the current iteration (set by `loss_points`).
    candidates: Option<(Vec<T>, Vec<T>)>,
}

impl<T: Real> PcAsgdNode<T> {
    /// Node `id` starting from `x0`, which every node also assumes of its neighbours until their
    /// first message arrives.
    pub fn new(id: usize, spec: PcAsgdSpec, x0: Vec<T>) -> Self {
        let n = spec.topology.nodes();
        PcAsgdNode {
            id,
            latest: vec![Some((0, x0.clone())); n],
            history: VecDeque::new(),
            z: x0.clone(),
            grad: vec![T::zero(); x0.len()],
            x: x0,
            spec,
            theta: None,
            candidates: None,
        }
    }

    /// The predicting step (delay-compensated gradient over the full mixing) and the clipping
    /// step (plain gradient over the mixing without the delayed links) of iteration `k`.
    fn candidates(&self, k: u64, lr: f64) -> (Vec<T>, Vec<T>) {
        let gamma = T::of(lr);
        let lambda = T::of(self.spec.lambda);
        let full = self.spec.topology.mixing(k);
        let clipped = clipped_mixing(&self.spec.topology, &self.spec.delayed, self.spec.delay, k);
        let mut predicting = self.mix(&full);
        let mut clipping = self.mix(&clipped);
        for i in 0..self.x.len() {
            let g = self.grad[i];
            let compensated = g + lambda * g * g * (self.x[i] - self.z[i]);
            predicting[i] = predicting[i] - gamma * compensated;
            clipping[i] = clipping[i] - gamma * g;
        }
        (predicting, clipping)
    }

    fn is_delayed(&self) -> bool {
        self.spec.delay > 0 && self.spec.delayed[self.id]
    }

    /// `Σ_j m_ij x_j` over the latest known parameters (own: the current ones).
    fn mix(&self, m: &Mixing) -> Vec<T> {
        let mut out = vec![T::zero(); self.x.len()];
        for j in 0..m.size() {
            let wij = m.get(self.id, j);
            if wij == 0.0 {
                continue;
            }
            let wij = T::of(wij);
            let xj = if j == self.id {
                &self.x
            } else {
                match &self.latest[j] {
                    Some((_, x)) => x,
                    None => continue,
                }
            };
            for (o, &v) in out.iter_mut().zip(xj) {
                *o = *o + wij * v;
            }
        }
        out
    }
}

impl<T: Real> DecentralizedNode<T> for PcAsgdNode<T> {
    fn begin(&mut self, k: u64) -> Vec<Outgoing<T>> {
        self.history.push_back(self.x.clone());
        while self.history.len() as u64 > self.spec.delay + 1 {
            self.history.pop_front();
        }
        self.z = if self.is_delayed() {
            self.history
                .front()
                .cloned()
                .unwrap_or_else(|| self.x.clone())
        } else {
            self.x.clone()
        };
        let lateness = if self.is_delayed() {
            delayed_lateness(self.spec.delay)
        } else {
            0
        };
        let m = self.spec.topology.mixing(k);
        (0..m.size())
            .filter(|&j| j != self.id && m.get(j, self.id) != 0.0)
            .map(|to| Outgoing {
                to,
                lateness,
                jitter: 0,
                message: GossipMessage {
                    from: self.id,
                    iteration: k,
                    x: self.x.clone(),
                    weight: T::one(),
                },
            })
            .collect()
    }

    fn eval_point(&self) -> &[T] {
        &self.z
    }

    fn reduces_gradients(&self) -> bool {
        false
    }

    fn reduces_losses(&self) -> bool {
        self.spec.theta == Theta::Named(ThetaRule::Adaptive)
    }

    fn step(&mut self, _k: u64, grad: &[T], _lr: f64) -> Vec<Outgoing<T>> {
        self.grad.copy_from_slice(grad);
        if self.spec.weight_decay != 0.0 {
            let wd = T::of(self.spec.weight_decay);
            for (g, &z) in self.grad.iter_mut().zip(&self.z) {
                *g = *g + wd * z;
            }
        }
        Vec::new()
    }

    fn absorb(&mut self, message: &GossipMessage<T>) {
        let newer = match &self.latest[message.from] {
            Some((it, _)) => message.iteration >= *it,
            None => true,
        };
        if newer {
            self.latest[message.from] = Some((message.iteration, message.x.clone()));
        }
    }

    fn loss_points(&mut self, k: u64, lr: f64) -> Vec<Vec<T>> {
        let (predicting, clipping) = self.candidates(k, lr);
        let points = match self.spec.theta {
            Theta::Fixed(_) => Vec::new(),
            Theta::Named(_) => vec![predicting.clone(), clipping.clone()],
        };
        self.candidates = Some((predicting, clipping));
        points
    }

    fn end(&mut self, k: u64, lr: f64, losses: &[f64]) -> Option<Reduction> {
        let (predicting, clipping) = match self.candidates.take() {
            Some(c) => c,
            None => self.candidates(k, lr),
        };
        let theta = match (&self.spec.theta, losses) {
            (Theta::Fixed(t), _) => *t,
            // A loss that could not be computed (∞, NaN, or in a mean) never picks predicting.
            (Theta::Named(_), [p, c]) if *p < LOSS_TOO_LARGE && p <= c => 1.0,
            (Theta::Named(_), _) => 0.0,
        };
        self.theta = Some(theta);
        let (a, b) = (T::of(theta), T::of(1.0 - theta));
        for ((x, &p), &c) in self.x.iter_mut().zip(&predicting).zip(&clipping) {
            *x = a * p + b * c;
        }
        None
    }

    fn apply_reduction(&mut self, _: Reduction, _: &[T], _: Option<&[T]>, _: f64) {}

    fn incoming(&self, k: u64) -> Vec<Incoming> {
        let m = self.spec.topology.mixing(k);
        (0..m.size())
            .filter(|&j| j != self.id && m.get(self.id, j) != 0.0)
            .map(|from| Incoming {
                from,
                lateness: if self.spec.delay > 0 && self.spec.delayed[from] {
                    delayed_lateness(self.spec.delay)
                } else {
                    0
                },
                jitter: 0,
            })
            .collect()
    }

    fn absent(&mut self, _from: usize, _iteration: u64) -> bool {
        // The neighbour's latest known parameters stand in; a late copy updates them if newer.
        false
    }

    fn params(&self) -> Vec<T> {
        self.x.clone()
    }

    fn buffer(&self) -> &[T] {
        &[]
    }

    fn numerator(&self) -> &[T] {
        &self.x
    }

    fn weight(&self) -> T {
        T::one()
    }

    fn last_theta(&self) -> Option<f64> {
        self.theta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decen::TopologyName;

    #[test]
    fn the_clipped_matrix_stays_symmetric_and_doubly_stochastic() {
        let t = Topology::new(TopologyName::Ring, 6).unwrap();
        let delayed = vec![false, true, false, false, true, false];
        let w = t.mixing(0);
        let c = clipped_mixing(&t, &delayed, 2, 0);
        assert_eq!(c.get(0, 1), 0.0);
        assert_eq!(c.get(1, 1), 1.0);
        assert!((c.get(0, 0) - 2.0 / 3.0).abs() < 1e-15);
        for theta in [0.0, 0.3, 1.0] {
            let e = w.combine(theta, &c, 1.0 - theta);
            assert!(
                e.is_symmetric(1e-15) && e.is_doubly_stochastic(1e-12),
                "θ = {theta}"
            );
        }
        assert_eq!(clipped_mixing(&t, &delayed, 0, 0), w);
    }
}
