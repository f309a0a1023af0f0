//! The rendezvous of a decentralized run, as a pure state machine: membership and peer addresses,
//! the go signal, the exact averages the nodes ask for (AR-SGD's gradients, Local SGD's and
//! SlowMo's parameters, buffers when synchronised), and the periodic reports that become the
//! run's evaluations, metrics and checkpoints. Events in, actions out; no sockets, no wire
//! format: the network shell turns actions into messages, the in-process cluster hands them
//! straight to the nodes' drivers.
//!
//! An average or a report of iteration `k` waits for every present worker that started at or
//! before `k`; a worker that leaves stops being waited for, and what is pending completes without
//! it (mean over the workers that contributed, in slot order).
//!
//! Nothing a worker sends can grow it without bound or move the run for the others: a member
//! names only iterations between its start and [`MAX_LEAD`] past what it has completed (an honest
//! worker reports every iteration, so it never goes further); its progress only grows, one
//! window at a time; at most [`MAX_PENDING`] iterations of averages or reports are pending, each
//! one part per slot, and a pending one that every present member has passed by more than the
//! window is dropped. Every process that joins gets a fresh incarnation from here, which its peers
//! check when it dials them.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::node::ReduceKind;
use super::node_mean;
use super::report::{combine_reports, NodeStats, RoundReport, RunTotals};
use crate::algo::Real;

/// How many distinct iterations of averages or reports may be pending at once; a part beyond
/// that is refused (an honest run has at most a few pending).
pub const MAX_PENDING: usize = 64;

/// How far past its completed iterations a member may name an iteration (progress, an average's
/// part, a report). Honest workers name at most one past.
pub const MAX_LEAD: u64 = 16;

/// A present member as its peers see it: where it takes their connections and which process it
/// is (a peer that dials with another incarnation is a process that was replaced).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerEntry {
    /// `HOST:PORT` of its peer endpoint.
    pub addr: String,
    /// Its incarnation, issued by the rendezvous.
    pub incarnation: u64,
}

/// A present worker.
#[derive(Debug, Clone)]
struct Member {
    incarnation: u64,
    addr: String,
    /// The first iteration it runs.
    from: u64,
}

/// One node's report: its counters and parameters.
type NodeReport<T> = (NodeStats, Vec<T>);

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum RendezvousAction<T> {
    /// Tell `worker` to start at `iteration` from `params`, with the peers' addresses.
    Start {
        /// The slot.
        worker: usize,
        /// Its first iteration.
        iteration: u64,
        /// Every slot's address and incarnation (`None`: absent).
        peers: Vec<Option<PeerEntry>>,
        /// The parameters to start from.
        params: Vec<T>,
        /// The live peer's shared state (see [`RendezvousCore::with_shared_state`]); empty when
        /// the worker starts from the initial or the combined parameters.
        shared: Vec<T>,
    },
    /// Tell `worker` who is present now.
    Members {
        /// The slot.
        worker: usize,
        /// Every slot's address and incarnation (`None`: absent).
        peers: Vec<Option<PeerEntry>>,
    },
    /// Hand `worker` the result of an exact average.
    Reduced {
        /// The slot.
        worker: usize,
        /// The iteration it belongs to.
        iteration: u64,
        /// What was averaged.
        kind: ReduceKind,
        /// How many workers it averages.
        contributors: usize,
        /// The mean, laid out as the parts were: one vector shared by every contributor's action
        /// of this average (a shell converts it for the wire once, not once per worker).
        values: Arc<Vec<T>>,
    },
    /// Every present worker has reported iteration `iteration`: evaluate and record.
    Report(RoundReport<T>),
    /// Ask `worker` (a live peer) for its state after its current iteration, for `joiner`,
    /// which rejoined; if none comes within `net.round_timeout_s`, call
    /// [`RendezvousCore::state_timed_out`].
    RequestState {
        /// The live peer asked.
        worker: usize,
        /// The slot that waits for the state.
        joiner: usize,
    },
}

impl<T> RendezvousAction<T> {
    /// The slot this action addresses (`None` for a report).
    pub fn worker(&self) -> Option<usize> {
        match self {
            RendezvousAction::Start { worker, .. }
            | RendezvousAction::Members { worker, .. }
            | RendezvousAction::Reduced { worker, .. }
            | RendezvousAction::RequestState { worker, .. } => Some(*worker),
            RendezvousAction::Report(_) => None,
        }
    }
}

/// Why a worker's message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RendezvousError {
    /// The vector has the wrong length.
    #[error("{what} of {got} values for iteration {iteration}; expected {want}")]
    WrongSize {
        /// What it was.
        what: &'static str,
        /// Its iteration.
        iteration: u64,
        /// Values received.
        got: usize,
        /// Values expected.
        want: usize,
    },
    /// NaN or infinite values.
    #[error("{what} for iteration {iteration} holds non-finite values")]
    NotFinite {
        /// What it was.
        what: &'static str,
        /// Its iteration.
        iteration: u64,
    },
    /// The worker is not a present member.
    #[error("worker {0} is not a member of the run")]
    NotAMember(usize),
    /// The iteration is before the member's start or too far past its progress ([`MAX_LEAD`]).
    #[error("{what} for iteration {iteration} refused: worker {worker} may name {first}..={last}")]
    OutOfWindow {
        /// What it was.
        what: &'static str,
        /// The sender.
        worker: usize,
        /// Its iteration.
        iteration: u64,
        /// The first iteration it may name.
        first: u64,
        /// The last iteration it may name.
        last: u64,
    },
    /// Too many iterations are pending already (see [`MAX_PENDING`]).
    #[error("{what} for iteration {iteration} refused: {MAX_PENDING} iterations are pending")]
    TooManyPending {
        /// What it was.
        what: &'static str,
        /// Its iteration.
        iteration: u64,
    },
}

impl RendezvousError {
    /// A stable code for metrics (`rejected` events).
    pub fn code(&self) -> &'static str {
        match self {
            RendezvousError::WrongSize { .. } => "wrong-size",
            RendezvousError::NotFinite { .. } => "non-finite",
            RendezvousError::NotAMember(_) => "not-a-member",
            RendezvousError::OutOfWindow { .. } => "out-of-window",
            RendezvousError::TooManyPending { .. } => "too-many-pending",
        }
    }
}

/// The rendezvous (see the module docs).
pub struct RendezvousCore<T> {
    dim: usize,
    members: Vec<Option<Member>>,
    /// The last incarnation issued per slot.
    issued: Vec<u64>,
    started: bool,
    progress: u64,
    params: Vec<T>,
    reductions: BTreeMap<(u64, ReduceKind), Vec<Option<Vec<T>>>>,
    reports: BTreeMap<u64, Vec<Option<NodeReport<T>>>>,
    completed: Vec<u64>,
    totals: RunTotals,
    /// Rejoined slots waiting for a live peer's state: joiner → the peer asked.
    awaiting_state: BTreeMap<usize, usize>,
    /// Length of the shared part of a peer's state (0: parameters only).
    shared_len: usize,
}

impl<T: Real> RendezvousCore<T> {
    /// A run of `n` slots starting at iteration `iteration` from `params`.
    pub fn new(n: usize, params: Vec<T>, iteration: u64) -> Self {
        RendezvousCore {
            dim: params.len(),
            members: vec![None; n],
            issued: vec![0; n],
            started: false,
            progress: iteration,
            params,
            reductions: BTreeMap::new(),
            reports: BTreeMap::new(),
            completed: vec![0; n],
            totals: RunTotals::default(),
            awaiting_state: BTreeMap::new(),
            shared_len: 0,
        }
    }

    /// A peer's state carries, besides its parameters, `len` values of state every node holds
    /// alike (SlowMo's anchor and slow momentum: `2 × dim`); a state without exactly these is
    /// refused, and a joiner started from a peer's state is handed them.
    pub fn with_shared_state(mut self, len: usize) -> Self {
        self.shared_len = len;
        self
    }

    /// Iterations each slot completed (as reported).
    pub fn completed(&self) -> &[u64] {
        &self.completed
    }

    /// The furthest iteration a member reported having completed (the start point before any).
    pub fn progress(&self) -> u64 {
        self.progress
    }

    /// The present members a pending average or report waits for (in slot order).
    pub fn waiting_for(&self) -> Vec<usize> {
        self.present()
            .filter(|&w| {
                self.reductions
                    .iter()
                    .any(|((it, _), s)| self.runs(w, *it) && s[w].is_none())
                    || self
                        .reports
                        .iter()
                        .any(|(it, s)| self.runs(w, *it) && s[w].is_none())
            })
            .collect()
    }

    /// True when slot `w` is a member that runs iteration `it` (a rejoined slot still waiting
    /// for a live peer's state runs nothing yet: averages and reports do not wait for it).
    fn runs(&self, w: usize, it: u64) -> bool {
        matches!(&self.members[w], Some(m) if m.from <= it) && !self.awaiting_state.contains_key(&w)
    }

    /// How many iterations of averages and reports are pending.
    pub fn pending(&self) -> usize {
        self.reductions.len() + self.reports.len()
    }

    /// Run totals so far.
    pub fn totals(&self) -> RunTotals {
        self.totals
    }

    /// The latest combined parameters (the start point, then each report's mean).
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// Every slot's address and incarnation (`None`: absent, or rejoined and not started yet —
    /// a message sent to it then would be lost, so its peers keep counting it absent).
    fn peers(&self) -> Vec<Option<PeerEntry>> {
        self.members
            .iter()
            .enumerate()
            .map(|(w, m)| {
                m.as_ref()
                    .filter(|_| !self.awaiting_state.contains_key(&w))
                    .map(|m| PeerEntry {
                        addr: m.addr.clone(),
                        incarnation: m.incarnation,
                    })
            })
            .collect()
    }

    fn present(&self) -> impl Iterator<Item = usize> + '_ {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.as_ref().map(|_| i))
    }

    fn broadcast_members(&self, except: Option<usize>) -> Vec<RendezvousAction<T>> {
        let peers = self.peers();
        self.present()
            .filter(|&w| Some(w) != except)
            .map(|worker| RendezvousAction::Members {
                worker,
                peers: peers.clone(),
            })
            .collect()
    }

    fn start(&self, worker: usize, iteration: u64) -> RendezvousAction<T> {
        RendezvousAction::Start {
            worker,
            iteration,
            peers: self.peers(),
            params: self.params.clone(),
            shared: Vec::new(),
        }
    }

    /// A new process of worker `worker` joined, taking peers at `addr`; returns the incarnation
    /// issued to it (larger than any before in the slot) and what to do. Before the run starts it
    /// waits for the others; after, the live peer furthest ahead is asked for its state (the
    /// joiner starts from it, see [`Self::on_state`]) — or, with no other member, it starts at
    /// the furthest iteration reached from the latest combined parameters — and the others learn
    /// its address. A slot outside the run is ignored (incarnation 0, nothing to do).
    pub fn join(&mut self, worker: usize, addr: String) -> (u64, Vec<RendezvousAction<T>>) {
        let Some(issued) = self.issued.get_mut(worker) else {
            return (0, Vec::new());
        };
        *issued = issued.saturating_add(1);
        let incarnation = *issued;
        let from = self.progress;
        self.members[worker] = Some(Member {
            incarnation,
            addr,
            from,
        });
        self.completed[worker] = self.completed[worker].max(from);
        if !self.started {
            if self.present().count() < self.members.len() {
                return (incarnation, Vec::new());
            }
            self.started = true;
            return (
                incarnation,
                self.present().map(|w| self.start(w, from)).collect(),
            );
        }
        let donor = self
            .present()
            .filter(|&w| w != worker && !self.awaiting_state.contains_key(&w))
            .max_by_key(|&w| (self.completed[w], std::cmp::Reverse(w)));
        let mut out = match donor {
            Some(donor) => {
                self.awaiting_state.insert(worker, donor);
                vec![RendezvousAction::RequestState {
                    worker: donor,
                    joiner: worker,
                }]
            }
            None => vec![self.start(worker, from)],
        };
        // Until it starts, the others count it absent (its old self included), and what waited
        // for its old self no longer waits.
        out.extend(self.broadcast_members(Some(worker)));
        out.extend(self.complete());
        (incarnation, out)
    }

    /// Live peer `worker`'s state after `iteration` iterations, asked for by
    /// [`RendezvousAction::RequestState`]: every slot waiting for it starts there from `params`
    /// and `shared` (what it no longer runs stops waiting for it). An unasked or late state
    /// changes nothing.
    pub fn on_state(
        &mut self,
        worker: usize,
        iteration: u64,
        params: Vec<T>,
        shared: Vec<T>,
    ) -> Result<Vec<RendezvousAction<T>>, RendezvousError> {
        self.check(worker, "a state", iteration, &params, self.dim)?;
        self.check(
            worker,
            "a state's shared part",
            iteration,
            &shared,
            self.shared_len,
        )?;
        // The peer completed `iteration` iterations: as good as its progress.
        self.progress = self.progress.max(iteration);
        self.completed[worker] = self.completed[worker].max(iteration);
        let joiners = self.waiting_on(worker);
        let mut out = Vec::new();
        for joiner in joiners {
            self.awaiting_state.remove(&joiner);
            out.extend(
                self.start_joiner(joiner, iteration, Some((params.clone(), shared.clone())))
                    .unwrap_or_default(),
            );
        }
        out.extend(self.complete());
        Ok(out)
    }

    /// The state asked for `joiner` did not come in time: it starts at the furthest iteration
    /// reached from the latest combined parameters.
    pub fn state_timed_out(&mut self, joiner: usize) -> Vec<RendezvousAction<T>> {
        if self.awaiting_state.remove(&joiner).is_none() {
            return Vec::new();
        }
        let mut out = self
            .start_joiner(joiner, self.progress, None)
            .unwrap_or_default();
        out.extend(self.complete());
        out
    }

    /// Starts member `joiner` at `iteration` (at least where it joined) from a peer's parameters
    /// and shared state (else the latest combined parameters), and tells the others it is present.
    fn start_joiner(
        &mut self,
        joiner: usize,
        iteration: u64,
        state: Option<(Vec<T>, Vec<T>)>,
    ) -> Option<Vec<RendezvousAction<T>>> {
        let member = self.members.get_mut(joiner)?.as_mut()?;
        member.from = member.from.max(iteration);
        let from = member.from;
        self.completed[joiner] = self.completed[joiner].max(from);
        let mut start = self.start(joiner, from);
        if let (Some((p, s)), RendezvousAction::Start { params, shared, .. }) = (state, &mut start)
        {
            *params = p;
            *shared = s;
        }
        let mut out = vec![start];
        out.extend(self.broadcast_members(Some(joiner)));
        Some(out)
    }

    /// The rejoined slots waiting for `donor`'s state.
    fn waiting_on(&self, donor: usize) -> Vec<usize> {
        self.awaiting_state
            .iter()
            .filter(|(_, &d)| d == donor)
            .map(|(&joiner, _)| joiner)
            .collect()
    }

    /// Rejoined slots still waiting for a live peer's state.
    pub fn awaiting_state(&self) -> usize {
        self.awaiting_state.len()
    }

    /// Worker `worker`'s incarnation `incarnation` left: it is no longer waited for.
    pub fn leave(&mut self, worker: usize, incarnation: u64) -> Vec<RendezvousAction<T>> {
        match self.members.get(worker) {
            Some(Some(m)) if m.incarnation == incarnation => self.members[worker] = None,
            _ => return Vec::new(),
        }
        self.awaiting_state.remove(&worker);
        let orphans = self.waiting_on(worker);
        let mut out = self.broadcast_members(None);
        for joiner in orphans {
            out.extend(self.state_timed_out(joiner));
        }
        out.extend(self.complete());
        out
    }

    /// A worker completed `iteration` iterations (monotone: a smaller value changes nothing).
    /// What every present member has passed by more than [`MAX_LEAD`] stops being pending.
    pub fn on_progress(
        &mut self,
        worker: usize,
        iteration: u64,
    ) -> Result<Vec<RendezvousAction<T>>, RendezvousError> {
        self.in_window(worker, "progress", iteration)?;
        self.progress = self.progress.max(iteration);
        self.completed[worker] = self.completed[worker].max(iteration);
        let passed = self
            .present()
            .map(|w| self.completed[w])
            .min()
            .unwrap_or(0)
            .saturating_sub(MAX_LEAD);
        self.reductions.retain(|(it, _), _| *it >= passed);
        self.reports.retain(|it, _| *it >= passed);
        Ok(self.complete())
    }

    /// Refuses an iteration outside what member `worker` may name now.
    fn in_window(
        &self,
        worker: usize,
        what: &'static str,
        iteration: u64,
    ) -> Result<(), RendezvousError> {
        let Some(Some(member)) = self.members.get(worker) else {
            return Err(RendezvousError::NotAMember(worker));
        };
        let (first, last) = (member.from, self.completed[worker].saturating_add(MAX_LEAD));
        if iteration < first || iteration > last {
            return Err(RendezvousError::OutOfWindow {
                what,
                worker,
                iteration,
                first,
                last,
            });
        }
        Ok(())
    }

    fn check(
        &self,
        worker: usize,
        what: &'static str,
        iteration: u64,
        values: &[T],
        want: usize,
    ) -> Result<(), RendezvousError> {
        self.in_window(worker, what, iteration)?;
        if values.len() != want {
            return Err(RendezvousError::WrongSize {
                what,
                iteration,
                got: values.len(),
                want,
            });
        }
        if values.iter().any(|&v| !v.to_f64().is_finite()) {
            return Err(RendezvousError::NotFinite { what, iteration });
        }
        Ok(())
    }

    /// A worker's part of the exact average `kind` of `iteration`.
    pub fn on_reduce(
        &mut self,
        worker: usize,
        iteration: u64,
        kind: ReduceKind,
        values: Vec<T>,
    ) -> Result<Vec<RendezvousAction<T>>, RendezvousError> {
        let what = "an average's part";
        self.check(worker, what, iteration, &values, kind.len(self.dim))?;
        let key = (iteration, kind);
        if !self.reductions.contains_key(&key) && self.reductions.len() >= MAX_PENDING {
            return Err(RendezvousError::TooManyPending { what, iteration });
        }
        let n = self.members.len();
        self.reductions.entry(key).or_insert_with(|| vec![None; n])[worker] = Some(values);
        Ok(self.complete())
    }

    /// A worker's report after `iteration` iterations.
    pub fn on_report(
        &mut self,
        worker: usize,
        iteration: u64,
        stats: NodeStats,
        params: Vec<T>,
    ) -> Result<Vec<RendezvousAction<T>>, RendezvousError> {
        let what = "a report";
        self.check(worker, what, iteration, &params, self.dim)?;
        if !self.reports.contains_key(&iteration) && self.reports.len() >= MAX_PENDING {
            return Err(RendezvousError::TooManyPending { what, iteration });
        }
        let n = self.members.len();
        self.progress = self.progress.max(iteration);
        self.completed[worker] = self.completed[worker].max(iteration);
        self.reports
            .entry(iteration)
            .or_insert_with(|| vec![None; n])[worker] = Some((stats, params));
        Ok(self.complete())
    }

    /// True when every present worker that runs `iteration` has a value in `slots`.
    fn all_in<V>(&self, iteration: u64, slots: &[Option<V>]) -> bool {
        let waiting = (0..self.members.len())
            .zip(slots)
            .any(|(w, s)| self.runs(w, iteration) && s.is_none());
        !waiting && slots.iter().any(Option::is_some)
    }

    /// Completes every average and report that no longer waits for anyone.
    fn complete(&mut self) -> Vec<RendezvousAction<T>> {
        let mut out = Vec::new();
        let ready: Vec<(u64, ReduceKind)> = self
            .reductions
            .iter()
            .filter(|((it, _), slots)| self.all_in(*it, slots))
            .map(|(key, _)| *key)
            .collect();
        for key in ready {
            let Some(slots) = self.reductions.remove(&key) else {
                continue;
            };
            let contributors: Vec<usize> =
                (0..slots.len()).filter(|&i| slots[i].is_some()).collect();
            let vectors: Vec<Vec<T>> = slots.into_iter().flatten().collect();
            let mean = Arc::new(node_mean(&vectors));
            self.totals.averages += 1;
            for worker in contributors {
                if self.members[worker].is_some() {
                    out.push(RendezvousAction::Reduced {
                        worker,
                        iteration: key.0,
                        kind: key.1,
                        contributors: vectors.len(),
                        values: Arc::clone(&mean),
                    });
                }
            }
        }
        let ready: Vec<u64> = self
            .reports
            .iter()
            .filter(|(it, slots)| self.all_in(**it, slots))
            .map(|(it, _)| *it)
            .collect();
        for iteration in ready {
            if let Some(slots) = self.reports.remove(&iteration) {
                let reports = slots.into_iter().flatten().collect();
                let report = combine_reports(iteration, reports, &mut self.totals);
                self.params.clone_from(&report.params);
                out.push(RendezvousAction::Report(report));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sends(actions: &[RendezvousAction<f32>]) -> Vec<(usize, &'static str)> {
        actions
            .iter()
            .filter_map(|a| {
                let kind = match a {
                    RendezvousAction::Start { .. } => "start",
                    RendezvousAction::Members { .. } => "members",
                    RendezvousAction::Reduced { .. } => "reduced",
                    RendezvousAction::RequestState { .. } => "state-request",
                    RendezvousAction::Report(_) => return None,
                };
                a.worker().map(|w| (w, kind))
            })
            .collect()
    }

    #[test]
    fn the_run_starts_when_every_slot_is_present_and_a_rejoiner_starts_at_the_front() {
        let mut rv = RendezvousCore::<f32>::new(3, vec![0.5; 4], 0);
        assert_eq!(rv.join(0, "a:1".into()), (1, Vec::new()));
        assert!(rv.join(2, "c:1".into()).1.is_empty());
        let (_, out) = rv.join(1, "b:1".into());
        assert_eq!(sends(&out), vec![(0, "start"), (1, "start"), (2, "start")]);
        rv.on_progress(0, 7).unwrap();
        let out = rv.leave(1, 1);
        assert_eq!(sends(&out), vec![(0, "members"), (2, "members")]);
        let (incarnation, out) = rv.join(1, "b:2".into());
        assert_eq!(
            incarnation, 2,
            "a new process of the slot gets a new incarnation"
        );
        // The live peer furthest ahead (worker 0, at 7) is asked for its state.
        assert_eq!(
            out[0],
            RendezvousAction::RequestState {
                worker: 0,
                joiner: 1
            }
        );
        assert_eq!(sends(&out[1..]), vec![(0, "members"), (2, "members")]);
        // Until it starts, the others see the slot absent (its old process is gone).
        assert!(
            matches!(&out[1], RendezvousAction::Members { peers, .. } if peers[1].is_none()),
            "{out:?}"
        );
        let out = rv.on_state(0, 8, vec![3.0; 4], vec![]).unwrap();
        match &out[0] {
            RendezvousAction::Start {
                worker: 1,
                iteration: 8,
                params,
                ..
            } => assert_eq!(params, &vec![3.0; 4], "the peer's state, not the mean"),
            other => panic!("{other:?}"),
        }
        // Once started, the others learn its new address.
        assert_eq!(sends(&out[1..]), vec![(0, "members"), (2, "members")]);
        assert!(
            matches!(&out[1], RendezvousAction::Members { peers, .. } if peers[1].as_ref().is_some_and(|p| p.addr == "b:2")),
            "{out:?}"
        );
        assert_eq!(rv.awaiting_state(), 0);
        assert!(
            rv.on_state(0, 9, vec![3.0; 4], vec![]).unwrap().is_empty(),
            "unasked"
        );
        // An old incarnation leaving does not remove the new one.
        assert!(rv.leave(1, 1).is_empty());
    }

    #[test]
    fn an_average_waits_for_every_present_worker_and_completes_when_one_leaves() {
        let mut rv = RendezvousCore::<f32>::new(3, vec![0.0; 2], 0);
        for w in 0..3 {
            rv.join(w, format!("h:{w}"));
        }
        assert!(rv
            .on_reduce(0, 4, ReduceKind::Params, vec![1.0, 2.0])
            .unwrap()
            .is_empty());
        assert!(rv
            .on_reduce(2, 4, ReduceKind::Params, vec![3.0, 6.0])
            .unwrap()
            .is_empty());
        let out = rv.leave(1, 1);
        let reduced: Vec<_> = out
            .iter()
            .filter_map(|a| match a {
                RendezvousAction::Reduced {
                    worker,
                    values,
                    contributors,
                    ..
                } => Some((*worker, values.to_vec(), *contributors)),
                _ => None,
            })
            .collect();
        assert_eq!(
            reduced,
            vec![(0, vec![2.0, 4.0], 2), (2, vec![2.0, 4.0], 2)]
        );
        // One mean for every contributor: the shell converts it for the wire once.
        let means: Vec<&Arc<Vec<f32>>> = out
            .iter()
            .filter_map(|a| match a {
                RendezvousAction::Reduced { values, .. } => Some(values),
                _ => None,
            })
            .collect();
        assert!(Arc::ptr_eq(means[0], means[1]), "the mean is shared");
    }

    #[test]
    fn reports_combine_into_the_mean_model_consensus_and_per_iteration_costs() {
        let mut rv = RendezvousCore::<f32>::new(2, vec![0.0; 2], 0);
        rv.join(0, "a".into());
        rv.join(1, "b".into());
        let stats = |sent| NodeStats {
            iterations: 10,
            loss: 1.0,
            weight: 1.0,
            bytes_sent: sent,
            bytes_received: 500,
            wall_s: 2.0,
            compute_s: 1.0,
            ..NodeStats::default()
        };
        assert!(rv
            .on_report(0, 10, stats(1000), vec![1.0, 0.0])
            .unwrap()
            .is_empty());
        let out = rv.on_report(1, 10, stats(3000), vec![3.0, 0.0]).unwrap();
        let [RendezvousAction::Report(r)] = out.as_slice() else {
            panic!("{out:?}");
        };
        assert_eq!(r.params, vec![2.0, 0.0]);
        assert_eq!(r.consensus_distance, 1.0);
        assert_eq!(r.bytes_sent_per_node_iteration, 200.0);
        assert_eq!(r.bytes_received_per_node_iteration, 50.0);
        assert_eq!(r.iteration_s, 0.2);
        assert_eq!(r.compute_share, 0.5);
        assert_eq!(r.weight_sum, 2.0);
        assert_eq!(rv.params(), &[2.0, 0.0]);
    }

    #[test]
    fn bad_parts_are_refused_and_change_nothing() {
        let mut rv = RendezvousCore::<f32>::new(2, vec![0.0; 2], 0);
        rv.join(0, "a".into());
        rv.join(1, "b".into());
        assert!(matches!(
            rv.on_reduce(0, 1, ReduceKind::ParamsAndBuffers, vec![1.0; 2]),
            Err(RendezvousError::WrongSize {
                got: 2,
                want: 4,
                ..
            })
        ));
        assert!(matches!(
            rv.on_reduce(0, 1, ReduceKind::Gradients, vec![f32::NAN, 0.0]),
            Err(RendezvousError::NotFinite { .. })
        ));
        rv.leave(1, 1);
        assert_eq!(
            rv.on_report(1, 1, NodeStats::default(), vec![0.0; 2]),
            Err(RendezvousError::NotAMember(1))
        );
        let out = rv
            .on_reduce(0, 1, ReduceKind::Gradients, vec![1.0, 1.0])
            .unwrap();
        assert_eq!(sends(&out), vec![(0, "reduced")]);
    }

    #[test]
    fn a_member_names_only_iterations_in_its_window_and_parts_everyone_passed_are_dropped() {
        let mut rv = RendezvousCore::<f32>::new(2, vec![0.0; 2], 0);
        rv.join(0, "a".into());
        rv.join(1, "b".into());
        let far = MAX_LEAD + 1;
        for err in [
            rv.on_reduce(0, far, ReduceKind::Params, vec![1.0; 2])
                .expect_err("far future"),
            rv.on_report(0, far, NodeStats::default(), vec![1.0; 2])
                .expect_err("far future"),
            rv.on_progress(0, far).expect_err("a jump"),
            rv.on_progress(0, u64::MAX).expect_err("a jump"),
        ] {
            assert!(matches!(err, RendezvousError::OutOfWindow { .. }), "{err}");
        }
        assert_eq!(rv.progress(), 0, "nothing refused moved the run");
        // A part within the window waits for worker 1, which never sends it.
        assert!(rv
            .on_reduce(0, 5, ReduceKind::Params, vec![1.0; 2])
            .unwrap()
            .is_empty());
        assert_eq!(rv.pending(), 1);
        // Progress is monotone and moves one window at a time.
        for it in 1..=5 + MAX_LEAD {
            rv.on_progress(0, it).unwrap();
            rv.on_progress(1, it).unwrap();
        }
        rv.on_progress(0, 2).unwrap();
        assert_eq!(rv.completed(), &[5 + MAX_LEAD, 5 + MAX_LEAD]);
        assert_eq!(rv.pending(), 1, "not yet passed by more than the window");
        rv.on_progress(0, 6 + MAX_LEAD).unwrap();
        rv.on_progress(1, 6 + MAX_LEAD).unwrap();
        assert_eq!(rv.pending(), 0, "everyone passed it: dropped");
        // A rejoining process starts at the front, and may not name what came before.
        rv.leave(1, 1);
        let (_, out) = rv.join(1, "b2".into());
        assert!(matches!(
            out[0],
            RendezvousAction::RequestState { worker: 0, .. }
        ));
        let out = rv.state_timed_out(1);
        assert!(
            matches!(out[0], RendezvousAction::Start { iteration, .. } if iteration == 6 + MAX_LEAD)
        );
        assert!(matches!(
            rv.on_reduce(1, 3, ReduceKind::Params, vec![1.0; 2]),
            Err(RendezvousError::OutOfWindow { first, .. }) if first == 6 + MAX_LEAD
        ));
    }

    #[test]
    fn a_worker_racing_ahead_cannot_make_the_rendezvous_store_more_than_max_pending_iterations() {
        let mut rv = RendezvousCore::<f32>::new(2, vec![0.0; 3], 0);
        rv.join(0, "a".into());
        rv.join(1, "b".into());
        // Worker 1 never sends, so every part of worker 0 stays pending.
        for it in 0..MAX_PENDING as u64 {
            rv.on_progress(0, it).expect("one step");
            assert!(rv
                .on_reduce(0, it, ReduceKind::Params, vec![1.0; 3])
                .expect("within the bound")
                .is_empty());
        }
        // A part for an iteration already pending is still taken; a new iteration is refused.
        assert!(rv
            .on_reduce(0, MAX_PENDING as u64 - 1, ReduceKind::Params, vec![2.0; 3])
            .is_ok());
        let err = rv
            .on_reduce(0, MAX_PENDING as u64, ReduceKind::Params, vec![1.0; 3])
            .expect_err("over the bound");
        assert!(
            matches!(err, RendezvousError::TooManyPending { .. }),
            "{err}"
        );
        // The pending averages still complete once the other worker sends.
        let out = rv
            .on_reduce(1, 0, ReduceKind::Params, vec![3.0; 3])
            .expect("a part");
        assert_eq!(sends(&out), vec![(0, "reduced"), (1, "reduced")]);
    }

    #[test]
    fn a_rejoiner_waits_for_a_live_peers_state_and_falls_back_to_the_mean_when_it_cannot_come() {
        let mut rv = RendezvousCore::<f32>::new(3, vec![0.5; 2], 0);
        for w in 0..3 {
            rv.join(w, format!("h:{w}"));
        }
        for it in 1..=4 {
            for w in 0..3 {
                rv.on_progress(w, it).unwrap();
            }
        }
        rv.on_progress(2, 5).unwrap();
        // Worker 0's process dies with an average of iteration 5 waiting for it; a new process
        // of slot 0 joins before the old one is noticed gone.
        rv.on_reduce(1, 5, ReduceKind::Params, vec![1.0; 2])
            .unwrap();
        rv.on_reduce(2, 5, ReduceKind::Params, vec![1.0; 2])
            .unwrap();
        assert_eq!(rv.waiting_for(), vec![0]);
        let (_, out) = rv.join(0, "h:0b".into());
        assert_eq!(
            out[0],
            RendezvousAction::RequestState {
                worker: 2,
                joiner: 0
            },
            "the peer furthest ahead is asked"
        );
        assert!(
            out.iter().any(|a| matches!(
                a,
                RendezvousAction::Reduced {
                    iteration: 5,
                    contributors: 2,
                    ..
                }
            )),
            "what waited for the old process completes: {out:?}"
        );
        assert_eq!(rv.awaiting_state(), 1);
        // Averages and reports do not wait for a joiner that has not started.
        rv.on_report(1, 6, NodeStats::default(), vec![1.0; 2])
            .unwrap();
        let out = rv
            .on_report(2, 6, NodeStats::default(), vec![1.0; 2])
            .unwrap();
        assert!(
            out.iter().any(
                |a| matches!(a, RendezvousAction::Report(r) if r.iteration == 6 && r.nodes == 2)
            ),
            "{out:?}"
        );
        assert!(rv.waiting_for().is_empty());
        let out = rv.on_state(2, 7, vec![2.0, 4.0], vec![]).unwrap();
        assert!(
            matches!(&out[0], RendezvousAction::Start { worker: 0, iteration: 7, params, .. } if params == &vec![2.0, 4.0]),
            "{out:?}"
        );
        // Once started at 7, an average of iteration 7 waits for it.
        rv.on_reduce(1, 7, ReduceKind::Params, vec![1.0; 2])
            .unwrap();
        rv.on_reduce(2, 7, ReduceKind::Params, vec![1.0; 2])
            .unwrap();
        assert_eq!(rv.waiting_for(), vec![0]);
        rv.on_reduce(0, 7, ReduceKind::Params, vec![1.0; 2])
            .unwrap();
        // The peer asked leaves before answering: the joiner starts from the mean at the front.
        rv.leave(1, 1);
        let (_, out) = rv.join(1, "h:1b".into());
        assert!(matches!(
            out[0],
            RendezvousAction::RequestState {
                worker: 0,
                joiner: 1
            }
        ));
        let out = rv.leave(0, 2);
        assert!(
            out.iter().any(|a| matches!(a, RendezvousAction::Start { worker: 1, iteration: 7, params, .. } if params == rv.params())),
            "{out:?}"
        );
        assert_eq!(rv.awaiting_state(), 0);
        // A state that is malformed or outside the sender's window is refused.
        let (_, out) = rv.join(0, "h:0c".into());
        assert!(matches!(
            out[0],
            RendezvousAction::RequestState {
                worker: 1,
                joiner: 0
            }
        ));
        assert!(rv.on_state(1, 7, vec![1.0; 3], vec![]).is_err());
        assert!(rv
            .on_state(1, 7 + MAX_LEAD + 1, vec![1.0; 2], vec![])
            .is_err());
        assert!(rv.on_state(1, 7, vec![f32::NAN; 2], vec![]).is_err());
        assert_eq!(
            rv.awaiting_state(),
            1,
            "worker 0 still waits for worker 1's state"
        );
    }

    #[test]
    fn a_joiner_gets_the_peers_shared_state_exactly_and_a_bad_one_is_refused() {
        // SlowMo: the anchor and the slow momentum (2 × dim) travel with the parameters.
        let mut rv = RendezvousCore::<f32>::new(2, vec![0.0; 2], 0).with_shared_state(4);
        for w in 0..2 {
            rv.join(w, format!("h:{w}"));
        }
        for w in 0..2 {
            rv.on_progress(w, 5).unwrap();
        }
        rv.leave(1, 1);
        let (_, out) = rv.join(1, "h:1b".into());
        assert!(matches!(
            out[0],
            RendezvousAction::RequestState {
                worker: 0,
                joiner: 1
            }
        ));
        // Wrong length, or a non-finite value, in the shared part: refused, still waiting.
        assert!(rv.on_state(0, 6, vec![1.0; 2], vec![1.0; 3]).is_err());
        assert!(rv.on_state(0, 6, vec![1.0; 2], vec![]).is_err());
        assert!(rv
            .on_state(0, 6, vec![1.0; 2], vec![1.0, f32::INFINITY, 0.0, 0.0])
            .is_err());
        assert_eq!(rv.awaiting_state(), 1);
        let out = rv
            .on_state(0, 6, vec![1.0, 2.0], vec![3.0, 4.0, 5.0, 6.0])
            .unwrap();
        assert!(
            matches!(&out[0], RendezvousAction::Start { worker: 1, iteration: 6, params, shared, .. }
                if params == &vec![1.0, 2.0] && shared == &vec![3.0, 4.0, 5.0, 6.0]),
            "{out:?}"
        );
        // A start from the combined parameters (no live peer) has no shared state.
        rv.leave(0, 1);
        rv.leave(1, 2);
        let (_, out) = rv.join(0, "h:0b".into());
        assert!(
            matches!(&out[0], RendezvousAction::Start { worker: 0, shared, .. } if shared.is_empty()),
            "{out:?}"
        );
    }
}
