//! The rendezvous of a decentralized run, as a pure state machine: membership and peer addresses,
//! the go signal, the exact averages the nodes ask for (AR-SGD's gradients, Local SGD's and
//! SlowMo's parameters, buffers when synchronised), and the periodic reports that become the
//! run's evaluations, metrics and checkpoints. Events in, messages and reports out; no sockets.
//!
//! An average or a report of iteration `k` waits for every present worker that started at or
//! before `k`; a worker that leaves stops being waited for, and what is pending completes without
//! it (mean over the workers that contributed, in slot order).

use std::collections::BTreeMap;

use crate::decen::{consensus_distance, node_mean};
use crate::proto::{Message, NodeStats, ReduceKind};

/// A present worker.
#[derive(Debug, Clone)]
struct Member {
    incarnation: u64,
    addr: String,
    /// The first iteration it runs.
    from: u64,
}

/// One node's report: its counters and parameters.
type NodeReport = (NodeStats, Vec<f32>);

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum RendezvousAction {
    /// Send `message` to `worker`.
    Send {
        /// The slot.
        worker: usize,
        /// The message.
        message: Message,
    },
    /// Every present worker has reported iteration `iteration`: evaluate and record.
    Report(RoundReport),
}

/// The nodes' reports of one iteration, combined.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundReport {
    /// Iterations completed.
    pub iteration: u64,
    /// The mean of the reporting nodes' parameters (what is evaluated and checkpointed).
    pub params: Vec<f32>,
    /// `sqrt(mean_i ‖z_i − z̄‖²)` over the reporting nodes.
    pub consensus_distance: f64,
    /// Nodes that reported.
    pub nodes: usize,
    /// Mean training loss over nodes.
    pub loss: f64,
    /// Algorithm bytes sent per node and iteration since the previous report.
    pub bytes_sent_per_node_iteration: f64,
    /// Algorithm bytes received per node and iteration.
    pub bytes_received_per_node_iteration: f64,
    /// Mean wall-clock seconds per iteration over nodes.
    pub iteration_s: f64,
    /// Mean share of that time spent computing.
    pub compute_share: f64,
    /// Sum of the push-sum weights (n when no mass is missing or in flight).
    pub weight_sum: f64,
    /// Messages given up on since the previous report, over all nodes.
    pub given_up: u64,
    /// Messages absorbed late since the previous report.
    pub absorbed_late: u64,
    /// PC-ASGD's mean θ, if reported.
    pub theta: Option<f64>,
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
}

/// Totals over the whole run, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunTotals {
    /// Node-iterations counted.
    pub node_iterations: u64,
    /// Algorithm bytes sent.
    pub bytes_sent: u64,
    /// Algorithm bytes received.
    pub bytes_received: u64,
    /// Sum of the nodes' wall-clock seconds.
    pub wall_s: f64,
    /// Exact averages completed.
    pub averages: u64,
    /// Messages given up on.
    pub given_up: u64,
    /// Messages absorbed late.
    pub absorbed_late: u64,
}

/// The rendezvous (see the module docs).
pub struct RendezvousCore {
    dim: usize,
    members: Vec<Option<Member>>,
    started: bool,
    progress: u64,
    params: Vec<f32>,
    reductions: BTreeMap<(u64, ReduceKind), Vec<Option<Vec<f32>>>>,
    reports: BTreeMap<u64, Vec<Option<NodeReport>>>,
    completed: Vec<u64>,
    totals: RunTotals,
}

impl RendezvousCore {
    /// A run of `n` slots starting at iteration `iteration` from `params`.
    pub fn new(n: usize, params: Vec<f32>, iteration: u64) -> Self {
        RendezvousCore {
            dim: params.len(),
            members: vec![None; n],
            started: false,
            progress: iteration,
            params,
            reductions: BTreeMap::new(),
            reports: BTreeMap::new(),
            completed: vec![0; n],
            totals: RunTotals::default(),
        }
    }

    /// Iterations each slot completed (as reported).
    pub fn completed(&self) -> &[u64] {
        &self.completed
    }

    /// Run totals so far.
    pub fn totals(&self) -> RunTotals {
        self.totals
    }

    /// The latest combined parameters (the start point, then each report's mean).
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    fn peers(&self) -> Vec<Option<String>> {
        self.members
            .iter()
            .map(|m| m.as_ref().map(|m| m.addr.clone()))
            .collect()
    }

    fn present(&self) -> impl Iterator<Item = usize> + '_ {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.as_ref().map(|_| i))
    }

    fn broadcast_members(&self, except: Option<usize>) -> Vec<RendezvousAction> {
        let peers = self.peers();
        self.present()
            .filter(|&w| Some(w) != except)
            .map(|worker| RendezvousAction::Send {
                worker,
                message: Message::Members {
                    peers: peers.clone(),
                },
            })
            .collect()
    }

    /// Worker `worker` (incarnation `incarnation`) joined, taking peers at `addr`. Before the run
    /// starts it waits for the others; after, it starts at the furthest iteration reached from
    /// the latest combined parameters, and the others learn its address.
    pub fn join(&mut self, worker: usize, incarnation: u64, addr: String) -> Vec<RendezvousAction> {
        let from = self.progress;
        self.members[worker] = Some(Member {
            incarnation,
            addr,
            from,
        });
        if !self.started {
            if self.present().count() < self.members.len() {
                return Vec::new();
            }
            self.started = true;
            let peers = self.peers();
            return self
                .present()
                .map(|worker| RendezvousAction::Send {
                    worker,
                    message: Message::Start {
                        iteration: from,
                        peers: peers.clone(),
                        params: self.params.clone(),
                    },
                })
                .collect();
        }
        let mut out = vec![RendezvousAction::Send {
            worker,
            message: Message::Start {
                iteration: from,
                peers: self.peers(),
                params: self.params.clone(),
            },
        }];
        out.extend(self.broadcast_members(Some(worker)));
        out
    }

    /// Worker `worker`'s incarnation `incarnation` left: it is no longer waited for.
    pub fn leave(&mut self, worker: usize, incarnation: u64) -> Vec<RendezvousAction> {
        match &self.members[worker] {
            Some(m) if m.incarnation == incarnation => self.members[worker] = None,
            _ => return Vec::new(),
        }
        let mut out = self.broadcast_members(None);
        out.extend(self.complete());
        out
    }

    /// A worker completed `iteration` iterations.
    pub fn on_progress(&mut self, worker: usize, iteration: u64) {
        self.progress = self.progress.max(iteration);
        if let Some(c) = self.completed.get_mut(worker) {
            *c = (*c).max(iteration);
        }
    }

    fn check(
        &self,
        worker: usize,
        what: &'static str,
        iteration: u64,
        values: &[f32],
        want: usize,
    ) -> Result<(), RendezvousError> {
        if self.members.get(worker).is_none_or(|m| m.is_none()) {
            return Err(RendezvousError::NotAMember(worker));
        }
        if values.len() != want {
            return Err(RendezvousError::WrongSize {
                what,
                iteration,
                got: values.len(),
                want,
            });
        }
        if values.iter().any(|v| !v.is_finite()) {
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
        values: Vec<f32>,
    ) -> Result<Vec<RendezvousAction>, RendezvousError> {
        let want = match kind {
            ReduceKind::ParamsAndBuffers => 2 * self.dim,
            _ => self.dim,
        };
        self.check(worker, "an average's part", iteration, &values, want)?;
        let n = self.members.len();
        self.reductions
            .entry((iteration, kind))
            .or_insert_with(|| vec![None; n])[worker] = Some(values);
        Ok(self.complete())
    }

    /// A worker's report after `iteration` iterations.
    pub fn on_report(
        &mut self,
        worker: usize,
        iteration: u64,
        stats: NodeStats,
        params: Vec<f32>,
    ) -> Result<Vec<RendezvousAction>, RendezvousError> {
        self.check(worker, "a report", iteration, &params, self.dim)?;
        self.on_progress(worker, iteration);
        let n = self.members.len();
        self.reports
            .entry(iteration)
            .or_insert_with(|| vec![None; n])[worker] = Some((stats, params));
        Ok(self.complete())
    }

    /// True when every present worker that runs `iteration` has a value in `slots`.
    fn all_in<V>(&self, iteration: u64, slots: &[Option<V>]) -> bool {
        let waiting = self
            .members
            .iter()
            .zip(slots)
            .any(|(m, s)| matches!(m, Some(m) if m.from <= iteration) && s.is_none());
        !waiting && slots.iter().any(Option::is_some)
    }

    /// Completes every average and report that no longer waits for anyone.
    fn complete(&mut self) -> Vec<RendezvousAction> {
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
            let vectors: Vec<Vec<f32>> = slots.into_iter().flatten().collect();
            let mean = node_mean(&vectors);
            self.totals.averages += 1;
            for worker in contributors {
                if self.members[worker].is_some() {
                    out.push(RendezvousAction::Send {
                        worker,
                        message: Message::Reduced {
                            iteration: key.0,
                            kind: key.1,
                            contributors: vectors.len() as u32,
                            values: mean.clone(),
                        },
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
                out.push(RendezvousAction::Report(self.combine(iteration, slots)));
            }
        }
        out
    }

    fn combine(
        &mut self,
        iteration: u64,
        slots: Vec<Option<(NodeStats, Vec<f32>)>>,
    ) -> RoundReport {
        let (stats, params): (Vec<NodeStats>, Vec<Vec<f32>>) = slots.into_iter().flatten().unzip();
        let nodes = stats.len();
        let mean = node_mean(&params);
        let consensus = consensus_distance(&params);
        self.params.clone_from(&mean);
        let iterations: u64 = stats.iter().map(|s| s.iterations).sum();
        let sent: u64 = stats.iter().map(|s| s.bytes_sent).sum();
        let received: u64 = stats.iter().map(|s| s.bytes_received).sum();
        let wall: f64 = stats.iter().map(|s| s.wall_s).sum();
        let compute: f64 = stats.iter().map(|s| s.compute_s).sum();
        let given_up: u64 = stats.iter().map(|s| s.given_up).sum();
        let absorbed_late: u64 = stats.iter().map(|s| s.absorbed_late).sum();
        let thetas: Vec<f64> = stats.iter().filter_map(|s| s.theta).collect();
        self.totals.node_iterations += iterations;
        self.totals.bytes_sent += sent;
        self.totals.bytes_received += received;
        self.totals.wall_s += wall;
        self.totals.given_up += given_up;
        self.totals.absorbed_late += absorbed_late;
        let per = iterations.max(1) as f64;
        RoundReport {
            iteration,
            params: mean,
            consensus_distance: consensus,
            nodes,
            loss: stats.iter().map(|s| s.loss).sum::<f64>() / nodes.max(1) as f64,
            bytes_sent_per_node_iteration: sent as f64 / per,
            bytes_received_per_node_iteration: received as f64 / per,
            iteration_s: wall / per,
            compute_share: if wall > 0.0 { compute / wall } else { 0.0 },
            weight_sum: stats.iter().map(|s| s.weight).sum(),
            given_up,
            absorbed_late,
            theta: (!thetas.is_empty()).then(|| thetas.iter().sum::<f64>() / thetas.len() as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sends(actions: &[RendezvousAction]) -> Vec<(usize, &'static str)> {
        actions
            .iter()
            .filter_map(|a| match a {
                RendezvousAction::Send { worker, message } => Some((*worker, message.kind())),
                RendezvousAction::Report(_) => None,
            })
            .collect()
    }

    #[test]
    fn the_run_starts_when_every_slot_is_present_and_a_rejoiner_starts_at_the_front() {
        let mut rv = RendezvousCore::new(3, vec![0.5; 4], 0);
        assert!(rv.join(0, 1, "a:1".into()).is_empty());
        assert!(rv.join(2, 1, "c:1".into()).is_empty());
        let out = rv.join(1, 1, "b:1".into());
        assert_eq!(sends(&out), vec![(0, "start"), (1, "start"), (2, "start")]);
        rv.on_progress(0, 7);
        let out = rv.leave(1, 1);
        assert_eq!(sends(&out), vec![(0, "members"), (2, "members")]);
        let out = rv.join(1, 2, "b:2".into());
        match &out[0] {
            RendezvousAction::Send {
                worker: 1,
                message: Message::Start { iteration, .. },
            } => assert_eq!(*iteration, 7),
            other => panic!("{other:?}"),
        }
        assert_eq!(sends(&out[1..]), vec![(0, "members"), (2, "members")]);
        // An old incarnation leaving does not remove the new one.
        assert!(rv.leave(1, 1).is_empty());
    }

    #[test]
    fn an_average_waits_for_every_present_worker_and_completes_when_one_leaves() {
        let mut rv = RendezvousCore::new(3, vec![0.0; 2], 0);
        for w in 0..3 {
            rv.join(w, 1, format!("h:{w}"));
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
                RendezvousAction::Send {
                    worker,
                    message:
                        Message::Reduced {
                            values,
                            contributors,
                            ..
                        },
                } => Some((*worker, values.clone(), *contributors)),
                _ => None,
            })
            .collect();
        assert_eq!(
            reduced,
            vec![(0, vec![2.0, 4.0], 2), (2, vec![2.0, 4.0], 2)]
        );
    }

    #[test]
    fn reports_combine_into_the_mean_model_consensus_and_per_iteration_costs() {
        let mut rv = RendezvousCore::new(2, vec![0.0; 2], 0);
        rv.join(0, 1, "a".into());
        rv.join(1, 1, "b".into());
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
        let mut rv = RendezvousCore::new(2, vec![0.0; 2], 0);
        rv.join(0, 1, "a".into());
        rv.join(1, 1, "b".into());
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
}
