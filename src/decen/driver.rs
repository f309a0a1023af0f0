//! One node of a decentralized run as a sans-IO state machine: the only place that runs the
//! order of an iteration's protocol steps (see [`node`](super::node)). Inputs come in (a message
//! arrived, a gradient, losses or an exact average is ready, membership changed, the next
//! iteration may start); [`poll`](NodeDriver::poll) is handed the current time and returns the
//! actions that follow (send to a peer, compute a gradient or losses here, ask for an average,
//! wait until, the iteration is complete). No clock, no socket, no thread: the in-process cluster
//! and the networked worker execute the very same actions.
//!
//! A wait for a peer's message is bounded: a sender that is not present is given up on at once,
//! a present one after `peer_wait_s` (it then counts as absent, see
//! [`DecentralizedNode::absent`]).

use crate::algo::Real;

use super::mailbox::{DriverCounts, Mailbox, ReceiveError};
use super::node::{
    DecentralizedNode, GossipMessage, Outgoing, ReduceKind, Reduction, LOSS_NOT_COMPUTED,
    LOSS_POINTS,
};

/// What the shell must do for the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverAction<T> {
    /// Send this message to its receiver.
    Send(Outgoing<T>),
    /// Compute the node's stochastic gradient at `point` and hand it to
    /// [`on_gradient`](NodeDriver::on_gradient).
    ComputeGradient {
        /// The iteration.
        iteration: u64,
        /// The parameters to compute it at.
        point: Vec<T>,
    },
    /// Compute the local mini-batch loss at each point (`+∞` where it fails) and hand them to
    /// [`on_losses`](NodeDriver::on_losses).
    ComputeLosses {
        /// The iteration.
        iteration: u64,
        /// The points, in the order the losses must come back in.
        points: Vec<Vec<T>>,
    },
    /// Send this node's part of an exact average to the rendezvous; the mean goes to
    /// [`on_reduced`](NodeDriver::on_reduced).
    Reduce {
        /// The iteration.
        iteration: u64,
        /// What is averaged.
        kind: ReduceKind,
        /// This node's part.
        values: Vec<T>,
    },
    /// Nothing more happens before this time unless an input comes: poll again then.
    WaitUntil(f64),
    /// These senders' messages of `iteration` are no longer waited for (they count as absent).
    GaveUp {
        /// The iteration they were sent at.
        iteration: u64,
        /// The senders.
        senders: Vec<usize>,
    },
    /// The iteration is complete: `completed` iterations are done. Call
    /// [`start`](NodeDriver::start) for the next one.
    Completed {
        /// Iterations done.
        completed: u64,
        /// The exact average applied at its end, if any.
        reduction: Option<Reduction>,
    },
}

/// An input that came at the wrong time or in the wrong shape (the input is dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The driver does not wait for this input now.
    #[error("{what} for iteration {iteration} not expected now (node {node} is at {at})")]
    Unexpected {
        /// What it was.
        what: &'static str,
        /// Its iteration.
        iteration: u64,
        /// This node.
        node: usize,
        /// This node's iteration.
        at: u64,
    },
    /// The vector has the wrong length.
    #[error("{what} of {got} values; expected {want}")]
    WrongSize {
        /// What it was.
        what: &'static str,
        /// Values received.
        got: usize,
        /// Values expected.
        want: usize,
    },
}

/// Where in the iteration the driver is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Between iterations: waits for `start`.
    Idle,
    /// Starts the iteration at the next poll.
    Begin,
    /// Waits for the gradient.
    Gradient,
    /// Waits for the exact mean of the gradients.
    GradientMean,
    /// Waits for the messages the step needs, until the deadline once set.
    Peers(Option<f64>),
    /// Waits for the losses at the loss points.
    Losses,
    /// Waits for the mean over the nodes of the losses at their loss points.
    LossMean,
    /// Waits for every message sent so far before an exact average, until the deadline.
    Flush(Reduction, Option<f64>),
    /// Waits for the exact average.
    Average(Reduction),
    /// Stopped from outside: does nothing more.
    Stopped,
}

/// One node and its mailbox (see the module docs).
pub struct NodeDriver<T> {
    id: usize,
    dim: usize,
    node: Box<dyn DecentralizedNode<T>>,
    mailbox: Mailbox<T>,
    present: Vec<bool>,
    /// Messages addressed to an absent peer and taken back.
    kept_for_absent: u64,
    peer_wait_s: f64,
    k: u64,
    lr: f64,
    phase: Phase,
    gradient: Option<Vec<T>>,
    losses: Option<Vec<f64>>,
    reduced: Option<Vec<T>>,
}

impl<T: Real> NodeDriver<T> {
    /// Node `id` of `nodes`, parameters of `dim` values, at iteration `k0`, every peer present;
    /// a present peer's message is waited for at most `peer_wait_s` seconds.
    pub fn new(
        id: usize,
        nodes: usize,
        dim: usize,
        node: Box<dyn DecentralizedNode<T>>,
        k0: u64,
        peer_wait_s: f64,
    ) -> Self {
        NodeDriver {
            id,
            dim,
            node,
            mailbox: Mailbox::new(id, nodes, dim),
            present: vec![true; nodes],
            kept_for_absent: 0,
            peer_wait_s,
            k: k0,
            lr: 0.0,
            phase: Phase::Idle,
            gradient: None,
            losses: None,
            reduced: None,
        }
    }

    /// The current iteration (iterations completed).
    pub fn iteration(&self) -> u64 {
        self.k
    }

    /// The node core.
    pub fn node(&self) -> &dyn DecentralizedNode<T> {
        self.node.as_ref()
    }

    /// Counters of absorbed, late, given-up and discarded messages.
    pub fn counts(&self) -> DriverCounts {
        DriverCounts {
            kept_for_absent: self.kept_for_absent,
            ..self.mailbox.counts()
        }
    }

    /// True between iterations (after `Completed`, before `start`).
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle
    }

    /// How many messages arrived and are not absorbed yet.
    pub fn waiting(&self) -> usize {
        self.mailbox.waiting()
    }

    /// The numerators and weights of messages that arrived and are not absorbed yet.
    pub fn waiting_mass(&self) -> (Vec<T>, T) {
        self.mailbox.waiting_mass()
    }

    /// Input: start the next iteration with learning rate `lr` (ignored unless idle).
    pub fn start(&mut self, lr: f64) {
        if self.phase == Phase::Idle {
            self.lr = lr;
            self.phase = Phase::Begin;
        }
    }

    /// Input: a message from the network (any time). Checks it; keeps it until its point.
    pub fn receive(
        &mut self,
        lateness: u64,
        message: GossipMessage<T>,
    ) -> Result<(), ReceiveError> {
        let incoming = self.node.incoming(message.iteration);
        self.mailbox.receive(self.k, lateness, message, &incoming)
    }

    /// Input: a message of this node's that the shell could not send (its peer's queue is full);
    /// the node takes it back as for an absent peer ([`DecentralizedNode::unsent`]).
    pub fn take_back(&mut self, message: &GossipMessage<T>) {
        self.node.unsent(message);
        self.kept_for_absent += 1;
    }

    /// Input: which slots are present now (a missing sender is given up on at once).
    pub fn set_present(&mut self, present: &[bool]) {
        for (p, &q) in self.present.iter_mut().zip(present) {
            *p = q;
        }
    }

    /// Input: the gradient asked for by `ComputeGradient` of `iteration`.
    pub fn on_gradient(&mut self, iteration: u64, grad: Vec<T>) -> Result<(), InputError> {
        self.expecting("a gradient", iteration, self.phase == Phase::Gradient)?;
        self.sized("a gradient", grad.len(), self.dim)?;
        self.gradient = Some(grad);
        Ok(())
    }

    /// Input: the losses asked for by `ComputeLosses` of `iteration`, one per point.
    pub fn on_losses(&mut self, iteration: u64, losses: Vec<f64>) -> Result<(), InputError> {
        self.expecting("losses", iteration, self.phase == Phase::Losses)?;
        if self.node.reduces_losses() {
            self.sized("losses", losses.len(), LOSS_POINTS)?;
        }
        self.losses = Some(losses);
        Ok(())
    }

    /// Input: the exact average asked for by `Reduce` of `iteration`.
    pub fn on_reduced(
        &mut self,
        iteration: u64,
        kind: ReduceKind,
        values: Vec<T>,
    ) -> Result<(), InputError> {
        let waited = match self.phase {
            Phase::GradientMean => kind == ReduceKind::Gradients,
            Phase::LossMean => kind == ReduceKind::Losses,
            Phase::Average(r) => kind == r.kind(),
            _ => false,
        };
        self.expecting("an exact average", iteration, waited)?;
        self.sized("an exact average", values.len(), kind.len(self.dim))?;
        self.reduced = Some(values);
        Ok(())
    }

    /// Input: the run stopped; the driver does nothing more.
    pub fn stop(&mut self) {
        self.phase = Phase::Stopped;
    }

    fn expecting(&self, what: &'static str, iteration: u64, ok: bool) -> Result<(), InputError> {
        if ok && iteration == self.k {
            return Ok(());
        }
        Err(InputError::Unexpected {
            what,
            iteration,
            node: self.id,
            at: self.k,
        })
    }

    fn sized(&self, what: &'static str, got: usize, want: usize) -> Result<(), InputError> {
        if got == want {
            Ok(())
        } else {
            Err(InputError::WrongSize { what, got, want })
        }
    }

    /// Runs the iteration as far as the inputs allow at time `now` (seconds, any origin the
    /// shell keeps to); returns what the shell must do. Stops after `Completed`.
    pub fn poll(&mut self, now: f64) -> Vec<DriverAction<T>> {
        let mut out = Vec::new();
        loop {
            let next = match self.phase {
                Phase::Idle | Phase::Stopped => None,
                Phase::Begin => Some(self.begin(&mut out)),
                Phase::Gradient => self
                    .gradient
                    .take()
                    .map(|g| self.gradient_ready(g, &mut out)),
                Phase::GradientMean => self.reduced.take().map(|g| self.step(g, &mut out)),
                Phase::Peers(deadline) => {
                    Some(match self.wait_for_peers(false, deadline, now, &mut out) {
                        Some(()) => self.losses_needed(&mut out),
                        None => Phase::Peers(deadline.or(Some(now + self.peer_wait_s))),
                    })
                }
                Phase::Losses => self.losses.take().map(|l| self.losses_ready(l, &mut out)),
                Phase::LossMean => self.reduced.take().map(|mean| {
                    let mean: Vec<f64> = mean.iter().map(|&v| Real::to_f64(v)).collect();
                    self.end(&mean, &mut out)
                }),
                Phase::Flush(r, deadline) => {
                    match self.wait_for_peers(true, deadline, now, &mut out) {
                        Some(()) => Some(self.request_average(r, &mut out)),
                        None => Some(Phase::Flush(r, deadline.or(Some(now + self.peer_wait_s)))),
                    }
                }
                Phase::Average(r) => self
                    .reduced
                    .take()
                    .map(|v| self.apply_average(r, &v, &mut out)),
            };
            match next {
                Some(phase) if phase != self.phase => self.phase = phase,
                Some(phase) => {
                    if let Phase::Peers(Some(d)) | Phase::Flush(_, Some(d)) = phase {
                        out.push(DriverAction::WaitUntil(d));
                    }
                    return out;
                }
                None => return out,
            }
            if self.phase == Phase::Idle {
                return out;
            }
        }
    }

    /// Sends what the node addressed to present peers; a message for an absent peer is handed
    /// back to the node ([`DecentralizedNode::unsent`]: push-sum keeps its mass instead of losing
    /// it to a peer that is not there).
    fn send_all(&mut self, out: &mut Vec<DriverAction<T>>, messages: Vec<Outgoing<T>>) {
        for m in messages {
            if self.present.get(m.to).copied().unwrap_or(false) {
                out.push(DriverAction::Send(m));
            } else {
                self.node.unsent(&m.message);
                self.kept_for_absent += 1;
            }
        }
    }

    /// Absorbs what is due, begins, registers the messages this iteration brings.
    fn begin(&mut self, out: &mut Vec<DriverAction<T>>) -> Phase {
        let k = self.k;
        self.mailbox
            .absorb_ready(self.node.as_mut(), k, k.saturating_sub(1));
        let sent = self.node.begin(k);
        self.mailbox.expect(k, self.node.incoming(k));
        self.send_all(out, sent);
        out.push(DriverAction::ComputeGradient {
            iteration: k,
            point: self.node.eval_point().to_vec(),
        });
        Phase::Gradient
    }

    fn gradient_ready(&mut self, grad: Vec<T>, out: &mut Vec<DriverAction<T>>) -> Phase {
        if self.node.reduces_gradients() {
            out.push(DriverAction::Reduce {
                iteration: self.k,
                kind: ReduceKind::Gradients,
                values: grad,
            });
            return Phase::GradientMean;
        }
        self.step(grad, out)
    }

    /// Steps; what is due after the step is absorbed once it has all arrived.
    fn step(&mut self, grad: Vec<T>, out: &mut Vec<DriverAction<T>>) -> Phase {
        let sent = self.node.step(self.k, &grad, self.lr);
        self.send_all(out, sent);
        Phase::Peers(None)
    }

    /// Gives up on absent senders, and on every sender once `deadline` passed; when nothing due
    /// is still on its way, absorbs what is due (everything sent so far with `all`) in
    /// (iteration, sender) order and returns `Some(())`.
    fn wait_for_peers(
        &mut self,
        all: bool,
        deadline: Option<f64>,
        now: f64,
        out: &mut Vec<DriverAction<T>>,
    ) -> Option<()> {
        let k = self.k;
        let expired = deadline.is_some_and(|d| now >= d);
        let mut gave_up: Vec<(u64, usize)> = Vec::new();
        let mut waiting = false;
        for (s, from) in self.mailbox.missing(k, all) {
            if expired || !self.present.get(from).copied().unwrap_or(false) {
                self.mailbox.give_up(self.node.as_mut(), s, from);
                gave_up.push((s, from));
            } else {
                waiting = true;
            }
        }
        let mut iterations: Vec<u64> = gave_up.iter().map(|g| g.0).collect();
        iterations.dedup();
        for iteration in iterations {
            let senders = gave_up
                .iter()
                .filter(|g| g.0 == iteration)
                .map(|g| g.1)
                .collect();
            out.push(DriverAction::GaveUp { iteration, senders });
        }
        if waiting {
            return None;
        }
        let point = if all { u64::MAX } else { k + 1 };
        self.mailbox.absorb_ready(self.node.as_mut(), point, k);
        Some(())
    }

    /// Asks for the losses `end` needs, or ends at once when it needs none.
    fn losses_needed(&mut self, out: &mut Vec<DriverAction<T>>) -> Phase {
        let points = self.node.loss_points(self.k, self.lr);
        if points.is_empty() {
            return self.end(&[], out);
        }
        out.push(DriverAction::ComputeLosses {
            iteration: self.k,
            points,
        });
        Phase::Losses
    }

    /// Ends with the node's own losses, or sends them to be averaged over the nodes first (a
    /// loss that is not finite goes as [`LOSS_NOT_COMPUTED`], any other at most that).
    fn losses_ready(&mut self, losses: Vec<f64>, out: &mut Vec<DriverAction<T>>) -> Phase {
        if !self.node.reduces_losses() {
            return self.end(&losses, out);
        }
        let values = losses
            .iter()
            .map(|&l| {
                T::of(if l.is_finite() {
                    l.min(LOSS_NOT_COMPUTED)
                } else {
                    LOSS_NOT_COMPUTED
                })
            })
            .collect();
        out.push(DriverAction::Reduce {
            iteration: self.k,
            kind: ReduceKind::Losses,
            values,
        });
        Phase::LossMean
    }

    fn end(&mut self, losses: &[f64], out: &mut Vec<DriverAction<T>>) -> Phase {
        match self.node.end(self.k, self.lr, losses) {
            Some(r) => Phase::Flush(r, None),
            None => self.complete(None, out),
        }
    }

    fn request_average(&mut self, r: Reduction, out: &mut Vec<DriverAction<T>>) -> Phase {
        let mut values = self.node.params();
        if r.buffers {
            values.extend_from_slice(self.node.buffer());
        }
        out.push(DriverAction::Reduce {
            iteration: self.k,
            kind: r.kind(),
            values,
        });
        Phase::Average(r)
    }

    fn apply_average(&mut self, r: Reduction, mean: &[T], out: &mut Vec<DriverAction<T>>) -> Phase {
        let (params, buffers) = if r.buffers {
            (&mean[..self.dim], Some(&mean[self.dim..]))
        } else {
            (mean, None)
        };
        self.node.apply_reduction(r, params, buffers, self.lr);
        self.complete(Some(r), out)
    }

    fn complete(&mut self, reduction: Option<Reduction>, out: &mut Vec<DriverAction<T>>) -> Phase {
        self.k += 1;
        self.mailbox.prune(self.k);
        out.push(DriverAction::Completed {
            completed: self.k,
            reduction,
        });
        Phase::Idle
    }
}
