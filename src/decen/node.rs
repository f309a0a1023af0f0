//! The contract every decentralized node core follows, one iteration at a time, so that the
//! in-process cluster (simulator, exact tests) and a networked worker drive them the same way.
//!
//! Iteration k at node i:
//! 1. messages that arrived are [`absorb`](DecentralizedNode::absorb)ed;
//! 2. [`begin`](DecentralizedNode::begin) fixes the point the gradient is computed at and may send
//!    (overlap and combine-then-adapt algorithms send their pre-step parameters here);
//! 3. the caller computes a gradient at [`eval_point`](DecentralizedNode::eval_point), replaced by
//!    the exact mean over nodes when [`reduces_gradients`](DecentralizedNode::reduces_gradients);
//! 4. [`step`](DecentralizedNode::step) applies it and may send (adapt-then-combine algorithms);
//! 5. messages due this iteration are absorbed;
//! 6. [`loss_points`](DecentralizedNode::loss_points) names the points whose local mini-batch loss
//!    `end` needs (PC-ASGD's adaptive θ; usually none), and the caller computes them;
//!    — averaged over the nodes first when [`reduces_losses`](DecentralizedNode::reduces_losses)
//!    (a condition that is one for the whole network, like PC-ASGD's θ_k);
//! 7. [`end`](DecentralizedNode::end) finishes the iteration with those losses and may ask for an
//!    exact average, which the caller computes over all nodes and hands to
//!    [`apply_reduction`](DecentralizedNode::apply_reduction).
//!
//! [`NodeDriver`](super::NodeDriver) is the one place that runs this order; the in-process
//! cluster and a networked worker both drive nodes through it.

use serde::{Deserialize, Serialize};

/// A point-to-point message between nodes: a (scaled) parameter vector and its push-sum weight.
#[derive(Debug, Clone, PartialEq)]
pub struct GossipMessage<T> {
    /// The sender.
    pub from: usize,
    /// The sender's iteration when it sent.
    pub iteration: u64,
    /// The parameters (push-sum numerator share, or plain parameters).
    pub x: Vec<T>,
    /// The push-sum weight share (1 where weights are not tracked).
    pub weight: T,
}

impl<T> GossipMessage<T> {
    /// Bytes this message takes on the wire: 4 per value (f32) plus the weight.
    pub fn wire_bytes(&self) -> u64 {
        4 * self.x.len() as u64 + 4
    }
}

/// A message and where and when it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing<T> {
    /// The receiver.
    pub to: usize,
    /// Iterations after the current one at which it is absorbed at the latest when the network
    /// is perfect: 0 = before this iteration ends, 1 = before the next one begins.
    pub lateness: u64,
    /// Extra iterations the network may add (OSGP's bound); a driver picks 0..=jitter.
    pub jitter: u64,
    /// The message.
    pub message: GossipMessage<T>,
}

/// A message a node must receive: who sends it at the iteration asked about, and its timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming {
    /// The sender.
    pub from: usize,
    /// The sender's [`Outgoing::lateness`].
    pub lateness: u64,
    /// The sender's [`Outgoing::jitter`].
    pub jitter: u64,
}

/// What an exact average over the nodes averages (and so how long each node's part is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReduceKind {
    /// Gradients (AR-SGD).
    Gradients,
    /// De-biased parameters (Local SGD, SlowMo).
    Params,
    /// Parameters and momentum buffers (double averaging, `buffers = "sync"`).
    ParamsAndBuffers,
    /// The local mini-batch losses at a node's [`LOSS_POINTS`] loss points (PC-ASGD's global θ).
    Losses,
}

/// How many loss points a node that reduces its losses names (PC-ASGD: predicting, clipping).
pub const LOSS_POINTS: usize = 2;

/// What a node sends for a loss that could not be computed (or is not finite): larger than any
/// real loss, and still finite so that the rendezvous accepts it and a mean stays finite in f32.
pub const LOSS_NOT_COMPUTED: f64 = 1e30;

impl ReduceKind {
    /// Values in one node's part for a model of `dim` parameters.
    pub fn len(self, dim: usize) -> usize {
        match self {
            ReduceKind::ParamsAndBuffers => 2 * dim,
            ReduceKind::Gradients | ReduceKind::Params => dim,
            ReduceKind::Losses => LOSS_POINTS,
        }
    }
}

/// An exact average over all nodes that a node needs at the end of an iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reduction {
    /// Average the nodes' de-biased parameters.
    pub params: bool,
    /// Average the local optimizer's momentum buffers as well.
    pub buffers: bool,
    /// The average feeds a SlowMo slow step.
    pub slow_step: bool,
}

/// One node of a decentralized algorithm (pure state machine; see the module docs for the order
/// of calls).
pub trait DecentralizedNode<T>: Send {
    /// Starts iteration `k`; returns messages to send before the gradient step.
    fn begin(&mut self, k: u64) -> Vec<Outgoing<T>>;
    /// The parameters the gradient of iteration `k` must be computed at (fixed by `begin`).
    fn eval_point(&self) -> &[T];
    /// True when the caller must replace the gradient by its exact mean over nodes (AR-SGD).
    fn reduces_gradients(&self) -> bool;
    /// Applies the gradient with learning rate `lr`; returns messages to send after the step.
    fn step(&mut self, k: u64, grad: &[T], lr: f64) -> Vec<Outgoing<T>>;
    /// Adds a received message (never dropped, however late).
    fn absorb(&mut self, message: &GossipMessage<T>);
    /// A message this node addressed to a peer that is absent was not sent. Push-sum takes its
    /// mass back; a node that sends copies (D-PSGD's rows are completed by [`Self::absent`] on the
    /// receiving side, PC-ASGD's by the latest copy) has nothing to do.
    fn unsent(&mut self, _message: &GossipMessage<T>) {}
    /// The points whose local mini-batch loss [`end`](Self::end) of iteration `k` needs, in the
    /// order it wants the losses (PC-ASGD's adaptive θ: its two candidates; others: none).
    fn loss_points(&mut self, _k: u64, _lr: f64) -> Vec<Vec<T>> {
        Vec::new()
    }
    /// True when the losses at the [`LOSS_POINTS`] loss points must be averaged over the nodes
    /// before [`end`](Self::end) sees them (a decision taken once for the whole network).
    fn reduces_losses(&self) -> bool {
        false
    }
    /// Ends iteration `k` with the losses at [`loss_points`](Self::loss_points), in its order (a
    /// loss that could not be computed is `+∞`; averaged over the nodes, each at most
    /// [`LOSS_NOT_COMPUTED`], when [`reduces_losses`](Self::reduces_losses)). Returns the exact
    /// average it needs now, if any.
    fn end(&mut self, k: u64, lr: f64, losses: &[f64]) -> Option<Reduction>;
    /// Applies the exact averages requested by `end` (`buffers` present iff requested).
    fn apply_reduction(
        &mut self,
        reduction: Reduction,
        params: &[T],
        buffers: Option<&[T]>,
        lr: f64,
    );
    /// The de-biased parameters `x / w` (what is evaluated and averaged).
    fn params(&self) -> Vec<T>;
    /// The local optimizer's momentum buffer.
    fn buffer(&self) -> &[T];
    /// The push-sum numerator `x`.
    fn numerator(&self) -> &[T];
    /// The push-sum weight `w` (1 where weights are not tracked).
    fn weight(&self) -> T;
    /// The messages the other nodes send this node at iteration `k` (exactly those their
    /// `begin`/`step` of iteration `k` address to it), so a networked node knows what to wait for.
    fn incoming(&self, k: u64) -> Vec<Incoming>;
    /// The message of `from` sent at iteration `iteration` will not be waited for any longer (its
    /// sender is absent). Returns true when the node made up for it (so a late copy must be
    /// discarded), false when a late copy must still be absorbed (push-sum keeps the mass).
    fn absent(&mut self, from: usize, iteration: u64) -> bool;
    /// The node's share of the tradeoff: PC-ASGD's θ of the last iteration, else `None`.
    fn last_theta(&self) -> Option<f64> {
        None
    }
    /// The part of the node's state that every node holds alike (SlowMo's outer point and slow
    /// momentum), for a rejoining peer to start with; empty where there is none.
    fn shared_state(&self) -> Vec<T> {
        Vec::new()
    }
    /// Takes a live peer's [`shared_state`](Self::shared_state) (a node built fresh, before its
    /// first iteration); a state of the wrong length is an error.
    fn adopt_shared_state(&mut self, state: &[T]) -> Result<(), String> {
        if state.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "a shared state of {} values for a node that keeps none",
                state.len()
            ))
        }
    }
}

impl Reduction {
    /// The kind of average this asks for.
    pub fn kind(self) -> ReduceKind {
        if self.buffers {
            ReduceKind::ParamsAndBuffers
        } else {
            ReduceKind::Params
        }
    }
}
