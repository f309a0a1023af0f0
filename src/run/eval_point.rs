//! The figures every kind of `eval` line has in common, under one name, for tables and plots.

use super::event::Eval;
use crate::server::AppliedStats;

/// One evaluation of any run kind.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalPoint {
    /// Updates (or iterations) evaluated.
    pub updates: u64,
    /// Seconds since the start (virtual for `lagom sim`).
    pub t_s: f64,
    /// Test accuracy, where there is a model.
    pub test_accuracy: Option<f64>,
    /// The evaluated loss: a model's test loss, or the analytic objective.
    pub loss: Option<f64>,
    /// Mean mini-batch loss of the window, where reported.
    pub train_loss: Option<f64>,
    /// The window's applied gradients (parameter-server runs).
    pub applied: Option<AppliedStats>,
    /// Mean squared distance of the nodes from their average (decentralized runs).
    pub consensus_distance: Option<f64>,
    /// Bytes sent per node and iteration over the window (decentralized runs).
    pub bytes_sent_per_node_iteration: Option<f64>,
}

impl Eval {
    /// This line's figures.
    pub fn point(&self) -> EvalPoint {
        let mut p = EvalPoint {
            updates: 0,
            t_s: 0.0,
            test_accuracy: None,
            loss: None,
            train_loss: None,
            applied: None,
            consensus_distance: None,
            bytes_sent_per_node_iteration: None,
        };
        match self {
            Eval::Server(s) => {
                (p.updates, p.t_s) = (s.updates, s.t_s);
                p.test_accuracy = Some(s.test_accuracy);
                p.loss = s.test_loss;
                p.applied = Some(s.applied.clone());
            }
            Eval::Rendezvous(r) => {
                (p.updates, p.t_s) = (r.updates, r.t_s);
                p.test_accuracy = r.test_accuracy;
                p.loss = r.test_loss;
                p.train_loss = r.train_loss;
                p.consensus_distance = r.consensus_distance;
                p.bytes_sent_per_node_iteration = Some(r.bytes_sent_per_node_iteration);
            }
            Eval::Sim(s) => {
                (p.updates, p.t_s) = (s.updates, s.t_s);
                p.test_accuracy = s.test_accuracy;
                p.loss = s.loss;
                p.train_loss = s.train_loss;
                p.applied = Some(s.applied.clone());
            }
            Eval::DecentralizedSim(d) => {
                (p.updates, p.t_s) = (d.updates, d.t_s);
                p.test_accuracy = d.test_accuracy;
                p.loss = d.loss;
                p.train_loss = d.train_loss;
                p.consensus_distance = d.consensus_distance;
                p.bytes_sent_per_node_iteration = Some(d.bytes_sent_per_node_iteration);
            }
            Eval::Train(t) => {
                (p.updates, p.t_s) = (t.updates, t.t_s);
                p.test_accuracy = Some(t.test_accuracy);
                p.loss = t.test_loss;
            }
        }
        p
    }
}

/// The `eval` lines of a `metrics.jsonl` text, as points (other lines and lines that do not
/// parse are skipped).
pub fn eval_points(metrics: &str) -> Vec<EvalPoint> {
    metrics
        .lines()
        .filter_map(|l| match serde_json::from_str::<super::RunEvent>(l) {
            Ok(super::RunEvent::Eval(e)) => Some(e.point()),
            _ => None,
        })
        .collect()
}
