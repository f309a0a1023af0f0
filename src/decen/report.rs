//! What the nodes of a decentralized run report to the rendezvous, and how one iteration's
//! reports combine into the run's record: the mean model, its consensus distance and the
//! per-node-iteration costs.

use serde::{Deserialize, Serialize};

use super::{consensus_distance, node_mean};
use crate::algo::Real;

/// A decentralized worker's counters over the iterations since its previous report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    /// Iterations counted.
    pub iterations: u64,
    /// Mean training loss of its mini-batches.
    pub loss: f64,
    /// Its push-sum weight now.
    pub weight: f64,
    /// Frame bytes it sent for the algorithm (gossip and exact averages).
    pub bytes_sent: u64,
    /// Frame bytes it received for the algorithm.
    pub bytes_received: u64,
    /// Wall-clock seconds of those iterations.
    pub wall_s: f64,
    /// Seconds of gradient computation.
    pub compute_s: f64,
    /// Seconds spent waiting for peers and averages.
    pub wait_s: f64,
    /// Expected messages given up on (sender absent).
    pub given_up: u64,
    /// Messages absorbed after they had been given up on.
    pub absorbed_late: u64,
    /// PC-ASGD's mean θ (`None` for the other algorithms).
    pub theta: Option<f64>,
    /// Messages from peers it refused (not a neighbour's at that iteration, outside its window,
    /// duplicated, malformed); absent from older workers' reports (0).
    #[serde(default)]
    pub refused: u64,
}

/// The nodes' reports of one iteration, combined.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundReport<T> {
    /// Iterations completed.
    pub iteration: u64,
    /// The mean of the reporting nodes' parameters (what is evaluated and checkpointed).
    pub params: Vec<T>,
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
    /// Peer messages the nodes refused since the previous report.
    pub refused: u64,
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
    /// Peer messages the nodes refused.
    pub refused: u64,
}

/// Combines the reports of iteration `iteration` (in slot order) into the run's record, adding
/// their counters to `totals`.
pub fn combine_reports<T: Real>(
    iteration: u64,
    reports: Vec<(NodeStats, Vec<T>)>,
    totals: &mut RunTotals,
) -> RoundReport<T> {
    let (stats, params): (Vec<NodeStats>, Vec<Vec<T>>) = reports.into_iter().unzip();
    let nodes = stats.len();
    let mean = node_mean(&params);
    let consensus = consensus_distance(&params);
    let iterations = saturating_sum(stats.iter().map(|s| s.iterations));
    let sent = saturating_sum(stats.iter().map(|s| s.bytes_sent));
    let received = saturating_sum(stats.iter().map(|s| s.bytes_received));
    let wall: f64 = stats.iter().map(|s| s.wall_s).sum();
    let compute: f64 = stats.iter().map(|s| s.compute_s).sum();
    let given_up = saturating_sum(stats.iter().map(|s| s.given_up));
    let absorbed_late = saturating_sum(stats.iter().map(|s| s.absorbed_late));
    let refused = saturating_sum(stats.iter().map(|s| s.refused));
    let thetas: Vec<f64> = stats.iter().filter_map(|s| s.theta).collect();
    totals.node_iterations = totals.node_iterations.saturating_add(iterations);
    totals.bytes_sent = totals.bytes_sent.saturating_add(sent);
    totals.bytes_received = totals.bytes_received.saturating_add(received);
    totals.wall_s += wall;
    totals.given_up = totals.given_up.saturating_add(given_up);
    totals.absorbed_late = totals.absorbed_late.saturating_add(absorbed_late);
    totals.refused = totals.refused.saturating_add(refused);
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
        refused,
        theta: (!thetas.is_empty()).then(|| thetas.iter().sum::<f64>() / thetas.len() as f64),
    }
}

/// The sum of worker-reported counters, saturating (a worker controls them).
fn saturating_sum(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0, u64::saturating_add)
}
