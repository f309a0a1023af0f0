//! One node of AR-SGD, Local SGD, double averaging, SGP, OSGP or D-PSGD, optionally under
//! SlowMo (spec §9–§15): a push-sum numerator `x`, its weight `w`, a local optimizer, and the
//! rules for when to mix with peers and when to ask for an exact average.

use std::sync::Arc;

use crate::algo::vector::scale;
use crate::algo::{LocalSgd, Real};

use super::node::{DecentralizedNode, GossipMessage, Incoming, Outgoing, Reduction};
use super::slowmo::{apply_buffer_strategy, SlowMo};
use super::{BufferStrategy, Topology};

/// When a node mixes with its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixTiming {
    /// Never (AR-SGD, Local SGD, double averaging).
    Never,
    /// After the gradient step, absorbed in the same iteration (SGP, D-PSGD adapt-then-combine):
    /// `x ← P(x − γd)`.
    AfterStep,
    /// Before the gradient step, absorbed from the next iteration on, up to `jitter` iterations
    /// later (OSGP; D-PSGD combine-then-adapt with `jitter = 0`): `x ← Px − γd`.
    BeforeStep {
        /// The most extra iterations a message may be late.
        jitter: u64,
    },
}

/// What a [`GossipNode`] does each iteration.
#[derive(Debug, Clone)]
pub struct GossipSpec {
    /// The graph.
    pub topology: Arc<Topology>,
    /// When it mixes.
    pub timing: MixTiming,
    /// Whether the push-sum weight is tracked and divided out (SGP, OSGP); D-PSGD's doubly
    /// stochastic mixing keeps it at 1 and does not track it.
    pub push_sum: bool,
    /// AR-SGD: the gradient is replaced by its exact mean over nodes.
    pub reduce_gradients: bool,
    /// Local SGD: an exact average of the parameters every `period` steps, and what happens to
    /// the momentum buffers then.
    pub local_average: Option<(u64, BufferStrategy)>,
}

/// A node of the gossip / averaging family (see [`GossipSpec`]).
pub struct GossipNode<T> {
    id: usize,
    spec: GossipSpec,
    x: Vec<T>,
    w: T,
    z: Vec<T>,
    opt: LocalSgd<T>,
    slow: Option<SlowMo<T>>,
    /// The share this node kept of its last push, when mixing is doubly stochastic without
    /// tracked weights (D-PSGD): what stands in for a message of an absent neighbour.
    kept_share: Option<Vec<T>>,
}

impl<T: Real> GossipNode<T> {
    /// Node `id` starting from `x0` with weight 1, the local optimizer `opt`, and SlowMo on top
    /// when `slow` is given.
    pub fn new(
        id: usize,
        spec: GossipSpec,
        x0: Vec<T>,
        opt: LocalSgd<T>,
        slow: Option<SlowMo<T>>,
    ) -> Self {
        let z = x0.clone();
        GossipNode {
            id,
            spec,
            x: x0,
            w: T::one(),
            z,
            opt,
            slow,
            kept_share: None,
        }
    }

    /// The SlowMo state, if SlowMo wraps this node.
    pub fn slowmo(&self) -> Option<&SlowMo<T>> {
        self.slow.as_ref()
    }

    /// Scales `(x, w)` by this node's share and returns copies for each out-peer.
    fn push(&mut self, k: u64, lateness: u64, jitter: u64) -> Vec<Outgoing<T>> {
        let peers = self.spec.topology.out_peers(self.id, k);
        if peers.is_empty() {
            return Vec::new();
        }
        let p = T::of(self.spec.topology.share(self.id, k));
        scale(&mut self.x, p);
        self.w = self.w * p;
        if !self.spec.push_sum {
            match &mut self.kept_share {
                Some(kept) => kept.copy_from_slice(&self.x),
                None => self.kept_share = Some(self.x.clone()),
            }
        }
        peers
            .into_iter()
            .map(|to| Outgoing {
                to,
                lateness,
                jitter,
                message: GossipMessage {
                    from: self.id,
                    iteration: k,
                    x: self.x.clone(),
                    weight: self.w,
                },
            })
            .collect()
    }

    /// `x / w`, exactly `x` when `w = 1` or when weights are not tracked.
    fn debiased(&self) -> Vec<T> {
        if self.w == T::one() || !self.spec.push_sum {
            self.x.clone()
        } else {
            self.x.iter().map(|&v| v / self.w).collect()
        }
    }
}

/// A push-sum weight below this is scaled back up (see [`GossipNode::renormalize`]).
const SMALLEST_WEIGHT: f64 = 1.0 / (1u64 << 63) as f64 / 2.0;
/// The factor it is scaled by: 2⁶⁴, exact in binary floating point.
const WEIGHT_RESCALE: f64 = (1u64 << 63) as f64 * 2.0;

impl<T: Real> GossipNode<T> {
    /// Keeps a push-sum weight from underflowing: while a peer is absent, mass sent to it before
    /// its absence was noticed is in flight, and a node's `(x, w)` can shrink geometrically; below
    /// 2⁻⁶⁴ both are multiplied by 2⁶⁴. A power of two scales exactly, so `x / w` — every value
    /// this node trains on and reports — is unchanged to the bit; only how much this node counts
    /// against mass still in flight changes. Calm runs never come near it (weights stay within a
    /// factor n of 1).
    fn renormalize(&mut self) {
        if self.spec.push_sum && self.w.to_f64() < SMALLEST_WEIGHT && self.w.to_f64() > 0.0 {
            let factor = T::of(WEIGHT_RESCALE);
            scale(&mut self.x, factor);
            self.w = self.w * factor;
        }
    }
}

impl<T: Real> DecentralizedNode<T> for GossipNode<T> {
    fn shared_state(&self) -> Vec<T> {
        self.slow
            .as_ref()
            .map_or_else(Vec::new, SlowMo::shared_state)
    }

    fn adopt_shared_state(&mut self, state: &[T]) -> Result<(), String> {
        match &mut self.slow {
            Some(slow) => slow.adopt(state),
            None if state.is_empty() => Ok(()),
            None => Err(format!(
                "a shared state of {} values for a node without SlowMo",
                state.len()
            )),
        }
    }

    fn begin(&mut self, k: u64) -> Vec<Outgoing<T>> {
        if !self.spec.push_sum && self.spec.timing != MixTiming::Never {
            // Doubly stochastic mixing returns the weight to 1 (up to rounding, not tracked).
            self.w = T::one();
        }
        self.renormalize();
        self.z = self.debiased();
        match self.spec.timing {
            MixTiming::BeforeStep { jitter } => self.push(k, 1, jitter),
            _ => Vec::new(),
        }
    }

    fn eval_point(&self) -> &[T] {
        &self.z
    }

    fn reduces_gradients(&self) -> bool {
        self.spec.reduce_gradients
    }

    fn step(&mut self, k: u64, grad: &[T], lr: f64) -> Vec<Outgoing<T>> {
        // The gradient was taken at z (the de-biased point), so is the weight decay's: stepping
        // x — scaled by the self-weight before the step (CTA, OSGP) or by the push-sum weight —
        // with `wd · x` would scale the decay by that weight.
        self.opt.step_decaying_at(&mut self.x, grad, &self.z, lr);
        match self.spec.timing {
            MixTiming::AfterStep => self.push(k, 0, 0),
            _ => Vec::new(),
        }
    }

    fn absorb(&mut self, message: &GossipMessage<T>) {
        for (x, &m) in self.x.iter_mut().zip(&message.x) {
            *x = *x + m;
        }
        self.w = self.w + message.weight;
    }

    fn unsent(&mut self, message: &GossipMessage<T>) {
        if self.spec.push_sum {
            self.absorb(message);
        }
    }

    fn end(&mut self, k: u64, _lr: f64, _losses: &[f64]) -> Option<Reduction> {
        let local = self
            .spec
            .local_average
            .filter(|(period, _)| (k + 1) % (*period).max(1) == 0);
        let slow = self.slow.as_ref().filter(|s| s.due(k));
        let strategy = match (slow, local) {
            (Some(s), _) => s.buffers(),
            (None, Some((_, strategy))) => strategy,
            (None, None) => return None,
        };
        Some(Reduction {
            params: true,
            buffers: strategy == BufferStrategy::Sync,
            slow_step: slow.is_some(),
        })
    }

    fn apply_reduction(
        &mut self,
        reduction: Reduction,
        params: &[T],
        buffers: Option<&[T]>,
        lr: f64,
    ) {
        let strategy = if reduction.slow_step {
            match self.slow.as_mut() {
                Some(slow) => {
                    self.x.copy_from_slice(slow.step(params, lr));
                    slow.buffers()
                }
                None => BufferStrategy::Maintain,
            }
        } else {
            self.x.copy_from_slice(params);
            self.spec
                .local_average
                .map_or(BufferStrategy::Maintain, |(_, s)| s)
        };
        self.w = T::one();
        apply_buffer_strategy(strategy, self.opt.buffer_mut(), buffers);
    }

    fn incoming(&self, k: u64) -> Vec<Incoming> {
        let (lateness, jitter) = match self.spec.timing {
            MixTiming::Never => return Vec::new(),
            MixTiming::AfterStep => (0, 0),
            MixTiming::BeforeStep { jitter } => (1, jitter),
        };
        self.spec
            .topology
            .in_peers(self.id, k)
            .into_iter()
            .map(|from| Incoming {
                from,
                lateness,
                jitter,
            })
            .collect()
    }

    fn absent(&mut self, _from: usize, _iteration: u64) -> bool {
        if self.spec.push_sum {
            // Push-sum: the weight travels with the numerator, so x / w stays a convex
            // combination without the message; a late copy still brings its mass.
            return false;
        }
        // Doubly stochastic mixing (D-PSGD): the absent neighbour's weight goes back to the
        // self-loop (every neighbour's share equals this node's on the regular graphs allowed).
        match &self.kept_share {
            Some(kept) => {
                for (x, &v) in self.x.iter_mut().zip(kept) {
                    *x = *x + v;
                }
                true
            }
            None => false,
        }
    }

    fn params(&self) -> Vec<T> {
        self.debiased()
    }

    fn buffer(&self) -> &[T] {
        self.opt.buffer()
    }

    fn numerator(&self) -> &[T] {
        &self.x
    }

    fn weight(&self) -> T {
        self.w
    }
}
