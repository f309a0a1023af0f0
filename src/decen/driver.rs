//! One node of a decentralized run driven from the outside world (a networked worker): messages
//! arrive whenever the network brings them, and the driver absorbs each one at the first point of
//! the iteration where the in-process [`Engine`](super::Engine) would have, says which messages the
//! node must still wait for, and turns a wait that ran out into an absent sender
//! ([`DecentralizedNode::absent`]). Pure: no clock, no socket.
//!
//! A message sent at iteration `s` with lateness `L` and jitter `J` may be absorbed from the point
//! `s + L` on and must be absorbed by the point `s + L + J`. The points of iteration `k` are its
//! start (point `k`, messages sent before `k`), after `begin` (point `k`) and after `step`
//! (point `k + 1`, messages sent up to `k`); `end` needs every message whose last point has come.
//! With instant delivery this reproduces the engine exactly (tests/decentralized_driver.rs).

use std::collections::{BTreeMap, BTreeSet};

use crate::algo::Real;

use super::node::{DecentralizedNode, GossipMessage, Incoming, Outgoing, Reduction};

/// A message that arrived and waits for its point.
#[derive(Debug, Clone)]
struct Arrived<T> {
    lateness: u64,
    message: GossipMessage<T>,
}

/// Why the driver refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    /// The sender is not this run's node or the message is this node's own.
    #[error("message from node {from}, which is not a peer of node {to}")]
    NotAPeer {
        /// Claimed sender.
        from: usize,
        /// This node.
        to: usize,
    },
    /// The parameter vector has the wrong length.
    #[error("message of {got} values from node {from}, the model has {want}")]
    WrongSize {
        /// Sender.
        from: usize,
        /// Values received.
        got: usize,
        /// Values expected.
        want: usize,
    },
    /// A value (or the weight) is NaN or infinite.
    #[error("message from node {from} for iteration {iteration} holds non-finite values")]
    NotFinite {
        /// Sender.
        from: usize,
        /// Its iteration.
        iteration: u64,
    },
    /// The iteration is further ahead than any honest peer can be.
    #[error("message from node {from} for iteration {iteration}, this node is at {at}")]
    TooFarAhead {
        /// Sender.
        from: usize,
        /// Its iteration.
        iteration: u64,
        /// This node's iteration.
        at: u64,
    },
}

/// What happened to the messages of one node so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverCounts {
    /// Messages absorbed.
    pub absorbed: u64,
    /// Messages absorbed after their last point (their sender had been given up on).
    pub absorbed_late: u64,
    /// Expected messages given up on (their sender counted as absent).
    pub given_up: u64,
    /// Late copies discarded because the node had already made up for them.
    pub discarded: u64,
}

/// How far ahead of this node a peer's message may be before it is refused.
pub const MAX_AHEAD: u64 = 10_000;

/// One node and its mailbox (see the module docs).
pub struct NodeDriver<T> {
    id: usize,
    nodes: usize,
    dim: usize,
    node: Box<dyn DecentralizedNode<T>>,
    k: u64,
    arrived: BTreeMap<(u64, usize), Arrived<T>>,
    /// Expected messages not yet absorbed or given up: (sent iteration, from) → timing.
    expected: BTreeMap<(u64, usize), Incoming>,
    /// Given up on; a late copy is absorbed unless the node made up for it.
    given_up: BTreeMap<(u64, usize), bool>,
    /// Absorbed already (a duplicate is ignored).
    done: BTreeSet<(u64, usize)>,
    counts: DriverCounts,
}

impl<T: Real> NodeDriver<T> {
    /// Node `id` of `nodes`, its parameters of `dim` values, starting at iteration `k0`.
    pub fn new(
        id: usize,
        nodes: usize,
        dim: usize,
        node: Box<dyn DecentralizedNode<T>>,
        k0: u64,
    ) -> Self {
        NodeDriver {
            id,
            nodes,
            dim,
            node,
            k: k0,
            arrived: BTreeMap::new(),
            expected: BTreeMap::new(),
            given_up: BTreeMap::new(),
            done: BTreeSet::new(),
            counts: DriverCounts::default(),
        }
    }

    /// The current iteration.
    pub fn iteration(&self) -> u64 {
        self.k
    }

    /// The node core.
    pub fn node(&self) -> &dyn DecentralizedNode<T> {
        self.node.as_ref()
    }

    /// Counters of absorbed, late, given-up and discarded messages.
    pub fn counts(&self) -> DriverCounts {
        self.counts
    }

    /// Takes a message from the network (any time). Checks it; keeps it until its point.
    pub fn receive(
        &mut self,
        lateness: u64,
        message: GossipMessage<T>,
    ) -> Result<(), ReceiveError> {
        let from = message.from;
        if from >= self.nodes || from == self.id {
            return Err(ReceiveError::NotAPeer { from, to: self.id });
        }
        if message.x.len() != self.dim {
            return Err(ReceiveError::WrongSize {
                from,
                got: message.x.len(),
                want: self.dim,
            });
        }
        if !message.weight.to_f64().is_finite()
            || message.x.iter().any(|&v| !v.to_f64().is_finite())
        {
            return Err(ReceiveError::NotFinite {
                from,
                iteration: message.iteration,
            });
        }
        if message.iteration > self.k.saturating_add(MAX_AHEAD) {
            return Err(ReceiveError::TooFarAhead {
                from,
                iteration: message.iteration,
                at: self.k,
            });
        }
        let key = (message.iteration, from);
        if self.done.contains(&key) {
            return Ok(());
        }
        if let Some(&made_up) = self.given_up.get(&key) {
            if made_up {
                self.counts.discarded += 1;
                self.given_up.remove(&key);
                self.done.insert(key);
                return Ok(());
            }
        }
        self.arrived.insert(key, Arrived { lateness, message });
        Ok(())
    }

    /// Absorbs, in (iteration, sender) order, every arrived message sent at most at `sent` whose
    /// first point is at most `point`, and every one whose sender was given up on.
    fn absorb_ready(&mut self, point: u64, sent: u64) {
        let ready: Vec<(u64, usize)> = self
            .arrived
            .iter()
            .filter(|(key, a)| {
                self.given_up.contains_key(key)
                    || (key.0 <= sent && key.0.saturating_add(a.lateness) <= point)
            })
            .map(|(key, _)| *key)
            .collect();
        for key in ready {
            if let Some(a) = self.arrived.remove(&key) {
                self.node.absorb(&a.message);
                self.counts.absorbed += 1;
                if self.given_up.remove(&key).is_some() {
                    self.counts.absorbed_late += 1;
                }
                self.expected.remove(&key);
                self.done.insert(key);
            }
        }
    }

    /// Starts the iteration: absorbs what is due, calls the core's `begin`, registers the
    /// messages this iteration brings. Returns what to send.
    pub fn begin(&mut self) -> Vec<Outgoing<T>> {
        let k = self.k;
        self.absorb_ready(k, k.saturating_sub(1));
        let out = self.node.begin(k);
        for inc in self.node.incoming(k) {
            let key = (k, inc.from);
            if !self.done.contains(&key) {
                self.expected.insert(key, inc);
            }
        }
        self.absorb_ready(k, k);
        out
    }

    /// The point the gradient of this iteration is computed at.
    pub fn eval_point(&self) -> &[T] {
        self.node.eval_point()
    }

    /// True when the gradient must be replaced by its exact mean over the nodes (AR-SGD).
    pub fn reduces_gradients(&self) -> bool {
        self.node.reduces_gradients()
    }

    /// Applies the gradient; returns what to send. Absorbs what is due after the step.
    pub fn step(&mut self, grad: &[T], lr: f64) -> Vec<Outgoing<T>> {
        let out = self.node.step(self.k, grad, lr);
        self.absorb_ready(self.k + 1, self.k);
        out
    }

    /// The messages `end` still needs, as (sent iteration, sender): absorbs what arrived first.
    /// With `all`, every expected message sent so far (an exact average must see all the mass).
    pub fn missing(&mut self, all: bool) -> Vec<(u64, usize)> {
        let k = self.k;
        self.absorb_ready(k + 1, k);
        self.expected
            .iter()
            .filter(|(&(s, _), inc)| s <= k && (all || s + inc.lateness + inc.jitter <= k + 1))
            .map(|(&key, _)| key)
            .collect()
    }

    /// Stops waiting for the message of `from` sent at `iteration`: the sender counts as absent
    /// for it (see [`DecentralizedNode::absent`]).
    pub fn give_up(&mut self, iteration: u64, from: usize) {
        if self.expected.remove(&(iteration, from)).is_some() {
            let made_up = self.node.absent(from, iteration);
            self.given_up.insert((iteration, from), made_up);
            self.counts.given_up += 1;
        }
    }

    /// Ends the iteration (call once [`missing`](Self::missing) is empty or given up on).
    /// Returns the exact average the node needs now, if any; the iteration advances either way.
    pub fn end(&mut self, lr: f64, loss: &mut dyn FnMut(&[T]) -> f64) -> Option<Reduction> {
        let r = self.node.end(self.k, lr, loss);
        self.k += 1;
        self.prune();
        r
    }

    /// Applies an exact average (the mean of the present nodes' `params()` and, when requested,
    /// `buffer()`s).
    pub fn apply_reduction(&mut self, r: Reduction, params: &[T], buffers: Option<&[T]>, lr: f64) {
        self.node.apply_reduction(r, params, buffers, lr);
    }

    /// Forgets bookkeeping of iterations long past (kept for [`MAX_AHEAD`] iterations).
    fn prune(&mut self) {
        let horizon = self.k.saturating_sub(MAX_AHEAD);
        self.done = self.done.split_off(&(horizon, 0));
    }
}
