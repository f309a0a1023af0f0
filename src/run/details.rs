//! What each kind of run adds to `summary.json`, one type per kind.
//!
//! The fields of a kind sit beside the common ones in the file (flattened), in sorted order, so
//! the file reads the same as when they were a string-keyed map. Reading a summary back tries the
//! kinds in order, unknown fields refused, so it comes back as the kind that wrote it.

use serde::{Deserialize, Serialize};

/// The kind-specific part of a [`Summary`](super::Summary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RunDetails {
    /// The decentralized rendezvous (`--role server` with a decentralized algorithm).
    Rendezvous(RendezvousDetails),
    /// `lagom sim`, decentralized family.
    DecentralizedSim(DecentralizedSimDetails),
    /// The parameter server.
    Server(ServerDetails),
    /// `lagom train`.
    Train(TrainDetails),
    /// `lagom sim`, parameter-server family.
    Sim(SimDetails),
}

/// `lagom sim`, parameter-server family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimDetails {
    /// The objective's dimension.
    pub dim: usize,
    /// The objective's name.
    pub objective: String,
    /// A model's final test accuracy (absent for analytic objectives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_test_accuracy: Option<f64>,
    /// A model's mean mini-batch loss over the last evaluation window (absent for analytic
    /// objectives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_train_loss: Option<f64>,
}

/// `lagom sim`, decentralized family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecentralizedSimDetails {
    /// Gossip bytes received per node and iteration.
    pub bytes_received_per_node_iteration: f64,
    /// Gossip bytes sent per node and iteration.
    pub bytes_sent_per_node_iteration: f64,
    /// Mean squared distance of the nodes from their average at the end (`null` if not finite).
    pub consensus_distance: Option<f64>,
    /// The objective's dimension.
    pub dim: usize,
    /// Exact averages taken (all-reduce, SlowMo's outer steps, …).
    pub exact_averages: u64,
    /// Virtual seconds per iteration.
    pub iteration_s: f64,
    /// The objective's name.
    pub objective: String,
    /// Steps of the outer (slow) optimizer.
    pub slow_steps: u64,
    /// A model's final test accuracy at the node average (absent for analytic objectives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_test_accuracy: Option<f64>,
    /// A model's mean mini-batch loss over the last evaluation window (absent for analytic
    /// objectives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_train_loss: Option<f64>,
    /// PC-ASGD's mean θ (absent for other algorithms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theta_mean: Option<f64>,
}

/// `lagom train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainDetails {
    /// Examples per step.
    pub batch_size: usize,
    /// The data set's name.
    pub dataset: String,
    /// The compute device, in words.
    pub device: String,
    /// Passes over the training set.
    pub epochs: f64,
    /// Whether the fast CPU kernels were used.
    pub fast_kernels: bool,
    /// The final test accuracy.
    pub final_test_accuracy: f64,
    /// The final test loss (`null` if not finite).
    pub final_test_loss: Option<f64>,
    /// Images per second of compute.
    pub images_per_s: f64,
    /// The model's name.
    pub model: String,
    /// Its parameter count.
    pub params: usize,
}

/// The served model, as the server and the rendezvous describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFacts {
    /// Examples per step of each worker.
    pub batch_size: usize,
    /// The data set's name.
    pub dataset: String,
    /// The model's name.
    pub model: String,
    /// Its parameter count.
    pub params: usize,
}

/// Gradients applied from one incarnation of one worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncarnationApplied {
    /// Gradients applied.
    pub applied: u64,
    /// The incarnation.
    pub incarnation: u64,
    /// Its slot.
    pub worker: usize,
}

/// The parameter server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerDetails {
    /// Updates in the checkpoint the run resumed from (0 for a fresh run).
    pub applied_before_start: u64,
    /// Per worker and incarnation, in (worker, incarnation) order.
    pub applied_by_incarnation: Vec<IncarnationApplied>,
    /// Examples per step of each worker.
    pub batch_size: usize,
    /// The data set's name.
    pub dataset: String,
    /// The final test accuracy (`null` when never evaluated).
    pub final_test_accuracy: Option<f64>,
    /// Gradients applied in this process.
    pub gradients_applied: u64,
    /// Gradients received in this process.
    pub gradients_received: u64,
    /// Gradients refused, all reasons.
    pub gradients_rejected_total: u64,
    /// The model's name.
    pub model: String,
    /// Its parameter count.
    pub params: usize,
}

/// The decentralized rendezvous.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RendezvousDetails {
    /// Examples per step of each node.
    pub batch_size: usize,
    /// Gossip bytes received per node and iteration.
    pub bytes_received_per_node_iteration: f64,
    /// Gossip bytes sent per node and iteration.
    pub bytes_sent_per_node_iteration: f64,
    /// Mean squared distance of the nodes from their average at the last report.
    pub consensus_distance: Option<f64>,
    /// The data set's name.
    pub dataset: String,
    /// Exact averages taken.
    pub exact_averages: u64,
    /// The final test accuracy (`null` when never evaluated).
    pub final_test_accuracy: Option<f64>,
    /// Seconds per iteration.
    pub iteration_s: f64,
    /// Messages absorbed after their iteration.
    pub messages_absorbed_late: u64,
    /// Messages given up after the deadline.
    pub messages_given_up: u64,
    /// Peer messages the nodes refused.
    pub messages_refused: u64,
    /// The model's name.
    pub model: String,
    /// Its parameter count.
    pub params: usize,
    /// PC-ASGD's mean θ at the last report (absent for other algorithms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theta_mean: Option<f64>,
}

impl RunDetails {
    /// The final test accuracy, where the run kind measures one.
    pub fn final_test_accuracy(&self) -> Option<f64> {
        match self {
            RunDetails::Rendezvous(d) => d.final_test_accuracy,
            RunDetails::Server(d) => d.final_test_accuracy,
            RunDetails::Train(d) => Some(d.final_test_accuracy),
            RunDetails::DecentralizedSim(d) => d.final_test_accuracy,
            RunDetails::Sim(d) => d.final_test_accuracy,
        }
    }

    /// The mean mini-batch loss of the run's last evaluation window, where the run reports one
    /// (a simulated model).
    pub fn final_train_loss(&self) -> Option<f64> {
        match self {
            RunDetails::DecentralizedSim(d) => d.final_train_loss,
            RunDetails::Sim(d) => d.final_train_loss,
            _ => None,
        }
    }
}
