//! `ServerCore`: Algorithm 1's server loop as a state machine. It validates every gradient
//! (membership, incarnation, sequence number, index, size, finiteness) before the algorithm sees
//! it, so a bad or repeated gradient never changes what the server has learned.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use crate::algo::vector::all_finite;
use crate::algo::{AlgorithmError, LrSchedule, Real, Scheduler, ServerAlgorithm, Update};

use super::membership::WorkerRecord;
use super::staleness::StalenessHistogram;

/// Settings of the server core.
#[derive(Debug, Clone)]
pub struct ServerCoreConfig {
    /// The number of worker slots K (worker ids are `0..K`).
    pub workers: usize,
    /// When parameters go back to workers.
    pub scheduler: Scheduler,
    /// Stop after this many applied updates (`None`: run until told otherwise).
    pub max_updates: Option<u64>,
    /// The learning rate as a function of the update counter.
    pub lr: LrSchedule,
}

/// A gradient as it arrives from a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct GradientIn<T> {
    /// The sending worker's slot.
    pub worker: usize,
    /// The sender's incarnation.
    pub incarnation: u64,
    /// The sender's sequence number, increasing within an incarnation.
    pub seq: u64,
    /// The index of the parameters it was computed on.
    pub ite: u64,
    /// The gradient.
    pub grad: Vec<T>,
}

/// The incarnation a process that has none yet claims; the core never issues it.
pub const NEW_PROCESS: u64 = 0;

/// An input to the server core.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<T> {
    /// A worker (re)joined and needs parameters. The core issues incarnations: the slot's
    /// record holds the one in force afterwards.
    Join {
        /// Slot id.
        worker: usize,
        /// [`NEW_PROCESS`] for a new process; else the incarnation this process was issued
        /// before its connection broke (kept when it is the slot's current one, so sequence
        /// numbers carry on; refused when a later process holds the slot; any other value is
        /// treated as a new process).
        incarnation: u64,
    },
    /// A worker left or was declared gone.
    Leave {
        /// Slot id.
        worker: usize,
    },
    /// A gradient arrived.
    Gradient(GradientIn<T>),
    /// Synchronous scheduler: start the first round with the workers present now, without waiting
    /// for all K (the shell sends it after a start-up timeout).
    StartWithPresent,
}

/// Why a gradient or a join was refused. The state of the algorithm is unchanged by it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RejectReason {
    /// The id is not a slot of this cluster.
    #[error("worker {worker} is not a slot of this cluster (0..{workers})")]
    UnknownWorker {
        /// The id.
        worker: usize,
        /// K.
        workers: usize,
    },
    /// The worker is not a member (never joined, or left).
    #[error("worker has not joined")]
    NotJoined,
    /// The message comes from an older (or never announced) incarnation of the worker.
    #[error("incarnation {got} is not the current incarnation {current}")]
    WrongIncarnation {
        /// The message's incarnation.
        got: u64,
        /// The slot's current incarnation.
        current: u64,
    },
    /// A gradient with this sequence number was already seen: it is never applied twice.
    #[error("duplicate gradient: sequence {seq} ≤ last seen {last}")]
    Duplicate {
        /// The message's sequence number.
        seq: u64,
        /// The last sequence number seen from this incarnation.
        last: u64,
    },
    /// The gradient was computed on parameters the worker does not hold.
    #[error("gradient computed on index {got}, but the worker holds {expected:?}")]
    UnexpectedIndex {
        /// The index in the message.
        got: u64,
        /// The index the server sent it.
        expected: Option<u64>,
    },
    /// Wrong number of elements.
    #[error("gradient has {got} elements, the model has {expected}")]
    WrongSize {
        /// Elements received.
        got: usize,
        /// Elements expected.
        expected: usize,
    },
    /// NaN or infinity in the gradient.
    #[error("gradient contains NaN or infinite values")]
    NonFinite,
    /// The algorithm refused it (an invariant would break).
    #[error("algorithm refused the gradient: {0}")]
    Algorithm(AlgorithmError),
    /// Training is over.
    #[error("training has stopped")]
    Stopped,
}

/// Every rejection code, for reading counters back from a checkpoint.
pub const REJECT_CODES: [&str; 9] = [
    "unknown-worker",
    "not-joined",
    "wrong-incarnation",
    "duplicate",
    "unexpected-index",
    "wrong-size",
    "non-finite",
    "algorithm",
    "stopped",
];

impl RejectReason {
    /// A short stable name for counting rejections by reason.
    pub fn code(&self) -> &'static str {
        match self {
            RejectReason::UnknownWorker { .. } => "unknown-worker",
            RejectReason::NotJoined => "not-joined",
            RejectReason::WrongIncarnation { .. } => "wrong-incarnation",
            RejectReason::Duplicate { .. } => "duplicate",
            RejectReason::UnexpectedIndex { .. } => "unexpected-index",
            RejectReason::WrongSize { .. } => "wrong-size",
            RejectReason::NonFinite => "non-finite",
            RejectReason::Algorithm(_) => "algorithm",
            RejectReason::Stopped => "stopped",
        }
    }
}

/// An output of the server core, for the shell to carry out in order. `P` is the form the
/// parameters to send take ([`ParamsForm`]): `Vec<T>` unless the shell chose another.
#[derive(Debug, Clone, PartialEq)]
pub enum Action<P> {
    /// Send these parameters, tagged with `index`, to `worker`.
    SendParams {
        /// Destination slot.
        worker: usize,
        /// The parameter index (`t` of `w_t`).
        index: u64,
        /// The parameters (SMEGA²: the estimate), in the shell's form.
        params: P,
    },
    /// A gradient was applied as iteration `t`.
    Applied {
        /// The worker it came from.
        worker: usize,
        /// The iteration that applied it.
        t: u64,
        /// `t − ite`.
        staleness: u64,
        /// The learning rate it was applied with (the schedule's value times the algorithm's
        /// factor).
        lr: f64,
    },
    /// A gradient or join was refused.
    Rejected {
        /// The sender.
        worker: usize,
        /// Why.
        reason: RejectReason,
    },
    /// The configured number of updates is reached: tell every worker to stop.
    Stop,
}

/// Turns the parameters the algorithm dispatches (borrowed from it, or computed for the send)
/// into the form a [`Action::SendParams`] carries — e.g. straight into a network shell's wire
/// encoding, without copying them first.
pub type ParamsForm<T, P> = Box<dyn Fn(Cow<'_, [T]>) -> P + Send>;

/// The parameter server as a state machine over one algorithm; `P` is the form of the
/// parameters it sends (a `Vec<T>` by default).
pub struct ServerCore<T: Real, P = Vec<T>> {
    pub(super) config: ServerCoreConfig,
    pub(super) algorithm: Box<dyn ServerAlgorithm<T>>,
    pub(super) params_form: ParamsForm<T, P>,
    pub(super) dim: usize,
    pub(super) t: u64,
    pub(super) waiting: BTreeSet<usize>,
    /// No gradient has been applied since the last broadcast (the spec's "C is empty" at a
    /// round's first gradient; a worker that joins mid-round waits in C without closing it).
    pub(super) round_fresh: bool,
    pub(super) started: bool,
    pub(super) stopped: bool,
    pub(super) workers: Vec<WorkerRecord>,
    pub(super) staleness: StalenessHistogram,
    pub(super) rejected: BTreeMap<&'static str, u64>,
}

impl<T: Real> ServerCore<T> {
    /// A server at iteration 0 with no members, sending parameters as `Vec<T>`.
    pub fn new(config: ServerCoreConfig, algorithm: Box<dyn ServerAlgorithm<T>>) -> Self {
        Self::with_params_form(
            config,
            algorithm,
            Box::new(|values: Cow<'_, [T]>| values.into_owned()),
        )
    }
}

impl<T: Real, P> ServerCore<T, P> {
    /// A server at iteration 0 with no members, sending parameters in the form `params_form`
    /// makes of them.
    pub fn with_params_form(
        config: ServerCoreConfig,
        algorithm: Box<dyn ServerAlgorithm<T>>,
        params_form: ParamsForm<T, P>,
    ) -> Self {
        let dim = algorithm.params().len();
        let workers = vec![WorkerRecord::default(); config.workers];
        ServerCore {
            config,
            algorithm,
            params_form,
            dim,
            t: 0,
            waiting: BTreeSet::new(),
            round_fresh: true,
            started: false,
            stopped: false,
            workers,
            staleness: StalenessHistogram::default(),
            rejected: BTreeMap::new(),
        }
    }

    /// The master parameters `w_t`.
    pub fn params(&self) -> &[T] {
        self.algorithm.params()
    }

    /// The update budget (`None`: unbounded).
    pub fn max_updates(&self) -> Option<u64> {
        self.config.max_updates
    }

    /// Applied updates so far (the current iteration `t`).
    pub fn updates(&self) -> u64 {
        self.t
    }

    /// Whether the stop condition was reached.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The scheduler in force.
    pub fn scheduler(&self) -> Scheduler {
        self.config.scheduler
    }

    /// The weight decay workers must add to their gradients.
    pub fn worker_weight_decay(&self) -> f64 {
        self.algorithm.worker_weight_decay()
    }

    /// The learning rate the next update will be scheduled with.
    pub fn current_lr(&self) -> f64 {
        self.config.lr.at(self.t)
    }

    /// Per-slot records, indexed by worker id.
    pub fn workers(&self) -> &[WorkerRecord] {
        &self.workers
    }

    /// Staleness of every applied gradient.
    pub fn staleness(&self) -> &StalenessHistogram {
        &self.staleness
    }

    /// The workers a synchronous round waits for now: members holding the round's parameters
    /// that have not delivered (empty for the asynchronous scheduler, which waits for nobody).
    pub fn round_waits_for(&self) -> Vec<usize> {
        if self.config.scheduler != Scheduler::Sync || !self.started || self.stopped {
            return Vec::new();
        }
        self.workers
            .iter()
            .enumerate()
            .filter(|(k, r)| r.alive && r.outstanding.is_some() && !self.waiting.contains(k))
            .map(|(k, _)| k)
            .collect()
    }

    /// Rejection counts by [`RejectReason::code`].
    pub fn rejections(&self) -> &BTreeMap<&'static str, u64> {
        &self.rejected
    }

    /// Ends training now (the shell's time budget ran out): every later gradient is refused.
    pub fn stop(&mut self) -> Vec<Action<P>> {
        if self.stopped {
            return Vec::new();
        }
        self.stopped = true;
        vec![Action::Stop]
    }

    /// Feeds one event and returns what to do, in order.
    pub fn handle(&mut self, event: Event<T>) -> Vec<Action<P>> {
        let mut actions = Vec::new();
        match event {
            Event::Join {
                worker,
                incarnation,
            } => self.on_join(worker, incarnation, &mut actions),
            Event::Leave { worker } => self.on_leave(worker, &mut actions),
            Event::Gradient(g) => self.on_gradient(g, &mut actions),
            Event::StartWithPresent => {
                if !self.started && !self.waiting.is_empty() {
                    self.release_round(&mut actions);
                }
            }
        }
        actions
    }

    fn reject(&mut self, worker: usize, reason: RejectReason, actions: &mut Vec<Action<P>>) {
        *self.rejected.entry(reason.code()).or_insert(0) += 1;
        if let Some(record) = self.workers.get_mut(worker) {
            record.rejected += 1;
        }
        actions.push(Action::Rejected { worker, reason });
    }

    fn on_join(&mut self, worker: usize, incarnation: u64, actions: &mut Vec<Action<P>>) {
        let workers = self.workers.len();
        let Some(record) = self.workers.get_mut(worker) else {
            self.reject(
                worker,
                RejectReason::UnknownWorker { worker, workers },
                actions,
            );
            return;
        };
        let issued_before = incarnation != NEW_PROCESS && incarnation <= record.incarnation;
        if issued_before && incarnation < record.incarnation {
            // A process the slot has since been given to another one: it is superseded.
            let current = record.incarnation;
            self.reject(
                worker,
                RejectReason::WrongIncarnation {
                    got: incarnation,
                    current,
                },
                actions,
            );
            return;
        }
        if !issued_before {
            // A new process (or one whose incarnation this server never issued): the next
            // incarnation, whatever it claimed, so no claim can take the slot from its owner.
            record.incarnation = record.incarnation.saturating_add(1);
            record.last_seq = None;
        }
        record.alive = true;
        record.outstanding = None;
        record.joins += 1;
        if self.stopped {
            actions.push(Action::Stop);
            return;
        }
        self.wait_for_params(worker, actions);
    }

    fn on_leave(&mut self, worker: usize, actions: &mut Vec<Action<P>>) {
        let Some(record) = self.workers.get_mut(worker) else {
            return;
        };
        record.alive = false;
        record.outstanding = None;
        self.waiting.remove(&worker);
        if self.config.scheduler == Scheduler::Sync && self.started && self.round_complete() {
            self.release_round(actions);
        }
    }

    fn on_gradient(&mut self, g: GradientIn<T>, actions: &mut Vec<Action<P>>) {
        let worker = g.worker;
        if let Err(reason) = self.check_sender(&g) {
            self.reject(worker, reason, actions);
            return;
        }
        if self.stopped {
            self.reject(worker, RejectReason::Stopped, actions);
            return;
        }
        // The sender is a member and this is a new message: from here on the worker's outstanding
        // parameters are used up, whatever becomes of the gradient.
        let record = &mut self.workers[worker];
        record.last_seq = Some(g.seq);
        record.outstanding = None;
        let verdict = if g.grad.len() != self.dim {
            Err(RejectReason::WrongSize {
                got: g.grad.len(),
                expected: self.dim,
            })
        } else if !all_finite(&g.grad) {
            Err(RejectReason::NonFinite)
        } else {
            let scheduled_lr = self.config.lr.at(self.t);
            let round_start = match self.config.scheduler {
                Scheduler::Async => true,
                Scheduler::Sync => self.round_fresh,
            };
            let update = Update {
                worker,
                t: self.t,
                ite: g.ite,
                grad: &g.grad,
                round_start,
                lr: T::of(scheduled_lr),
            };
            let staleness = update.staleness();
            self.algorithm
                .apply(&update)
                .map(|applied| (staleness, scheduled_lr * applied.lr_factor))
                .map_err(RejectReason::Algorithm)
        };
        match verdict {
            Ok((staleness, lr)) => {
                let t = self.t;
                self.t += 1;
                self.round_fresh = false;
                self.staleness.record(staleness);
                let record = &mut self.workers[worker];
                record.applied += 1;
                record.staleness_sum += staleness;
                actions.push(Action::Applied {
                    worker,
                    t,
                    staleness,
                    lr,
                });
            }
            Err(reason) => self.reject(worker, reason, actions),
        }
        if self.config.max_updates.is_some_and(|max| self.t >= max) {
            self.stopped = true;
            actions.push(Action::Stop);
            return;
        }
        self.wait_for_params(worker, actions);
    }

    /// Membership, incarnation, sequence and index checks; nothing is changed.
    fn check_sender(&self, g: &GradientIn<T>) -> Result<(), RejectReason> {
        let workers = self.workers.len();
        let record = self
            .workers
            .get(g.worker)
            .ok_or(RejectReason::UnknownWorker {
                worker: g.worker,
                workers,
            })?;
        if record.joins == 0 {
            return Err(RejectReason::NotJoined);
        }
        if g.incarnation != record.incarnation {
            return Err(RejectReason::WrongIncarnation {
                got: g.incarnation,
                current: record.incarnation,
            });
        }
        if !record.alive {
            return Err(RejectReason::NotJoined);
        }
        if let Some(last) = record.last_seq {
            if g.seq <= last {
                return Err(RejectReason::Duplicate { seq: g.seq, last });
            }
        }
        if record.outstanding != Some(g.ite) || g.ite > self.t {
            return Err(RejectReason::UnexpectedIndex {
                got: g.ite,
                expected: record.outstanding,
            });
        }
        Ok(())
    }

    /// Puts `worker` in the waiting set and runs the scheduler.
    fn wait_for_params(&mut self, worker: usize, actions: &mut Vec<Action<P>>) {
        self.waiting.insert(worker);
        match self.config.scheduler {
            Scheduler::Async => self.release_round(actions),
            Scheduler::Sync => {
                let everyone_joined = self.workers.iter().all(|r| r.alive);
                if (self.started || everyone_joined) && self.round_complete() {
                    self.release_round(actions);
                }
            }
        }
    }

    /// Synchronous rule: every live worker is waiting.
    fn round_complete(&self) -> bool {
        !self.waiting.is_empty()
            && self
                .workers
                .iter()
                .enumerate()
                .all(|(k, r)| !r.alive || self.waiting.contains(&k))
    }

    /// Sends `w_t` (index `t`) to every waiting worker and empties the waiting set.
    fn release_round(&mut self, actions: &mut Vec<Action<P>>) {
        self.started = true;
        self.round_fresh = true;
        let index = self.t;
        for worker in std::mem::take(&mut self.waiting) {
            let params = match self.algorithm.dispatch_view(worker) {
                Ok(values) => (self.params_form)(values),
                Err(e) => {
                    self.reject(worker, RejectReason::Algorithm(e), actions);
                    continue;
                }
            };
            self.workers[worker].outstanding = Some(index);
            actions.push(Action::SendParams {
                worker,
                index,
                params,
            });
        }
    }
}
