//! A node's mailbox: the messages that arrived and wait for their point, the messages the node
//! still expects, and the ones given up on. Pure bookkeeping for [`NodeDriver`](super::NodeDriver).
//!
//! A message sent at iteration `s` with lateness `L` and jitter `J` may be absorbed from the point
//! `s + L` on and must be absorbed by the point `s + L + J`. The points of iteration `k` are its
//! start (point `k`, messages sent before `k`) and the end of its step (point `k + 1`, messages
//! sent up to `k`): a message sent at iteration `s` is never absorbed before the receiver's own
//! step of `s`, however early it arrives (adapt-then-combine mixes the stepped parameters).
//! At a point, nothing is absorbed until every message due there has arrived or been given up
//! on; then all are absorbed in (iteration, sender) order, the order they were sent in. So the
//! node's arithmetic never depends on the order in which the network brought its messages.

use std::collections::{BTreeMap, BTreeSet};

use crate::algo::Real;

use super::node::{DecentralizedNode, GossipMessage, Incoming};

/// How many iterations of bookkeeping of absorbed messages are kept (to recognise duplicates).
pub const MAX_AHEAD: u64 = 10_000;

/// Slack added to the look-ahead window (see [`look_ahead`]).
pub const LOOK_AHEAD_SLACK: u64 = 64;

/// How far ahead of this node (in iterations) a message of lateness `lateness` and jitter
/// `jitter` may be, in a run of `nodes`: a peer waits for its own in-peers' messages, so while
/// nobody is given up on, a chain of at most `nodes` waits keeps any peer within
/// `nodes · (lateness + jitter + 1)` iterations; the slack covers scheduling noise. A peer
/// further ahead has given this node up as absent, and its message is refused (lost, as to an
/// absent node).
pub fn look_ahead(nodes: usize, lateness: u64, jitter: u64) -> u64 {
    (nodes as u64)
        .saturating_mul(lateness.saturating_add(jitter).saturating_add(1))
        .saturating_add(LOOK_AHEAD_SLACK)
}

/// How many messages may wait in a mailbox before a new one is refused (a node hears from at
/// most a few peers per iteration; this bounds what a peer racing ahead can make it store).
pub const MAX_WAITING: usize = 4_096;

/// Why the mailbox refused a message.
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
    /// The sender does not send to this node at that iteration (the topology says who does).
    #[error("message from node {from} for iteration {iteration}, which node {to} does not hear from then")]
    NotAnInPeer {
        /// Claimed sender.
        from: usize,
        /// This node.
        to: usize,
        /// Its iteration.
        iteration: u64,
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
    /// The iteration is further ahead than a peer that waits for the others can be
    /// ([`look_ahead`]).
    #[error("message from node {from} for iteration {iteration}, this node is at {at}")]
    TooFarAhead {
        /// Sender.
        from: usize,
        /// Its iteration.
        iteration: u64,
        /// This node's iteration.
        at: u64,
    },
    /// The mailbox holds [`MAX_WAITING`] messages already.
    #[error("message from node {from} refused: {MAX_WAITING} messages wait already")]
    Full {
        /// Sender.
        from: usize,
    },
}

/// What happened to the messages of one node so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverCounts {
    /// Messages absorbed.
    pub absorbed: u64,
    /// Wire bytes of the messages absorbed.
    pub absorbed_bytes: u64,
    /// Messages absorbed after their last point (their sender had been given up on).
    pub absorbed_late: u64,
    /// Expected messages given up on (their sender counted as absent).
    pub given_up: u64,
    /// Late copies discarded because the node had already made up for them.
    pub discarded: u64,
    /// Messages this node addressed to an absent peer, or one whose send queue was full, and
    /// took back (counted by the driver).
    pub kept_for_absent: u64,
}

/// A message that arrived and waits for its point.
#[derive(Debug, Clone)]
struct Arrived<T> {
    lateness: u64,
    message: GossipMessage<T>,
}

/// The mailbox of node `id` (see the module docs).
pub struct Mailbox<T> {
    id: usize,
    nodes: usize,
    dim: usize,
    arrived: BTreeMap<(u64, usize), Arrived<T>>,
    /// Expected messages not yet absorbed or given up: (sent iteration, from) → timing.
    expected: BTreeMap<(u64, usize), Incoming>,
    /// Given up on; a late copy is absorbed unless the node made up for it (`true`).
    given_up: BTreeMap<(u64, usize), bool>,
    /// Absorbed already (a duplicate is ignored); pruned after [`MAX_AHEAD`] iterations.
    done: BTreeSet<(u64, usize)>,
    counts: DriverCounts,
}

impl<T: Real> Mailbox<T> {
    /// The mailbox of node `id` of `nodes`, for parameters of `dim` values.
    pub fn new(id: usize, nodes: usize, dim: usize) -> Self {
        Mailbox {
            id,
            nodes,
            dim,
            arrived: BTreeMap::new(),
            expected: BTreeMap::new(),
            given_up: BTreeMap::new(),
            done: BTreeSet::new(),
            counts: DriverCounts::default(),
        }
    }

    /// Counters so far.
    pub fn counts(&self) -> DriverCounts {
        self.counts
    }

    /// Checks a message from the network and keeps it until its point (the node is at `k`;
    /// `incoming` says whom it hears from at the message's iteration, and with what timing).
    pub fn receive(
        &mut self,
        k: u64,
        lateness: u64,
        message: GossipMessage<T>,
        incoming: &[Incoming],
    ) -> Result<(), ReceiveError> {
        let from = message.from;
        if from >= self.nodes || from == self.id {
            return Err(ReceiveError::NotAPeer { from, to: self.id });
        }
        let Some(timing) = incoming.iter().find(|i| i.from == from) else {
            return Err(ReceiveError::NotAnInPeer {
                from,
                to: self.id,
                iteration: message.iteration,
            });
        };
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
        let window = look_ahead(self.nodes, timing.lateness, timing.jitter);
        if message.iteration > k.saturating_add(window) {
            return Err(ReceiveError::TooFarAhead {
                from,
                iteration: message.iteration,
                at: k,
            });
        }
        let key = (message.iteration, from);
        if self.done.contains(&key) {
            return Ok(());
        }
        if self.given_up.get(&key) == Some(&true) {
            self.counts.discarded += 1;
            self.given_up.remove(&key);
            self.done.insert(key);
            return Ok(());
        }
        if !self.arrived.contains_key(&key) && self.arrived.len() >= MAX_WAITING {
            return Err(ReceiveError::Full { from });
        }
        self.arrived.insert(key, Arrived { lateness, message });
        Ok(())
    }

    /// Absorbs into `node`, in (iteration, sender) order, every arrived message sent at most at
    /// `sent` whose first point is at most `point` (every one sent at most at `sent` with
    /// `point = u64::MAX`), and every one whose sender was given up on.
    pub fn absorb_ready(&mut self, node: &mut dyn DecentralizedNode<T>, point: u64, sent: u64) {
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
                node.absorb(&a.message);
                self.counts.absorbed += 1;
                self.counts.absorbed_bytes += a.message.wire_bytes();
                if self.given_up.remove(&key).is_some() {
                    self.counts.absorbed_late += 1;
                }
                self.expected.remove(&key);
                self.done.insert(key);
            }
        }
    }

    /// Registers the messages iteration `k` brings (those not absorbed already).
    pub fn expect(&mut self, k: u64, incoming: Vec<Incoming>) {
        for inc in incoming {
            let key = (k, inc.from);
            if !self.done.contains(&key) {
                self.expected.insert(key, inc);
            }
        }
    }

    /// Expected messages sent at most at `k` that have not arrived, as (sent iteration, sender):
    /// with `all`, every one; else those whose last point `s + L + J` is at most `k + 1`.
    pub fn missing(&self, k: u64, all: bool) -> Vec<(u64, usize)> {
        self.expected
            .iter()
            .filter(|(&(s, _), inc)| s <= k && (all || s + inc.lateness + inc.jitter <= k + 1))
            .map(|(&key, _)| key)
            .filter(|key| !self.arrived.contains_key(key))
            .collect()
    }

    /// Stops waiting for the message of `from` sent at `iteration`; the node decides whether it
    /// makes up for it (see [`DecentralizedNode::absent`]).
    pub fn give_up(&mut self, node: &mut dyn DecentralizedNode<T>, iteration: u64, from: usize) {
        if self.expected.remove(&(iteration, from)).is_some() {
            let made_up = node.absent(from, iteration);
            self.given_up.insert((iteration, from), made_up);
            self.counts.given_up += 1;
        }
    }

    /// Forgets bookkeeping of iterations long past (the node is at `k`).
    pub fn prune(&mut self, k: u64) {
        let horizon = k.saturating_sub(MAX_AHEAD);
        self.done = self.done.split_off(&(horizon, 0));
    }

    /// How many messages arrived and wait for their point.
    pub fn waiting(&self) -> usize {
        self.arrived.len()
    }

    /// The sums of the numerators and weights of the messages that arrived and wait.
    pub fn waiting_mass(&self) -> (Vec<T>, T) {
        let mut x = vec![T::zero(); self.dim];
        let mut w = T::zero();
        for a in self.arrived.values() {
            for (s, &v) in x.iter_mut().zip(&a.message.x) {
                *s = *s + v;
            }
            w = w + a.message.weight;
        }
        (x, w)
    }
}
