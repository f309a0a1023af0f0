//! The one line a run prints when it ends, for every kind of run, from its summary alone.

use super::{RunDetails, Summary};

/// A consensus distance for people (`n/a` when it was not finite).
fn distance(d: Option<f64>) -> String {
    d.map_or("n/a".to_string(), |d| format!("{d:.3e}"))
}

impl Summary {
    /// What the run did, in one line: algorithm, size, time, result (the caller adds where the
    /// results are).
    pub fn headline(&self) -> String {
        let diverged = format!(
            "{}{}",
            if self.diverged { ", DIVERGED" } else { "" },
            self.stopped_by
                .as_ref()
                .map_or(String::new(), |s| format!(", stopped by {s}"))
        );
        let loss = self
            .final_loss
            .map_or("non-finite".to_string(), |l| format!("{l:.4e}"));
        let acc = match self.details.final_test_accuracy() {
            Some(a) if a.is_finite() => format!("{:.2} %", 100.0 * a),
            _ => "n/a".to_string(),
        };
        // A simulated model also has a test accuracy; an analytic objective only its loss.
        let sim_acc = self
            .details
            .final_test_accuracy()
            .map_or(String::new(), |_| format!(", test accuracy {acc}"));
        match &self.details {
            RunDetails::DecentralizedSim(d) => format!(
                "{} ({} nodes): {} iterations in {:.1} virtual s ({:.2} ms each), final loss {loss}\
                 {sim_acc}, {:.0} bytes sent per node and iteration, consensus distance {}{diverged}",
                self.algorithm,
                self.workers,
                self.updates,
                self.wall_s,
                d.iteration_s * 1e3,
                d.bytes_sent_per_node_iteration,
                distance(d.consensus_distance),
            ),
            RunDetails::Sim(_) => format!(
                "{} ({}, {} workers): {} updates in {:.1} virtual s, final loss {loss}{sim_acc}, \
                 staleness mean {:.2} max {}{diverged}",
                self.algorithm,
                self.scheduler,
                self.workers,
                self.updates,
                self.wall_s,
                self.staleness.mean,
                self.staleness.max,
            ),
            RunDetails::Train(d) => format!(
                "{} on {}: {} steps ({:.2} epochs) in {:.1} s, test accuracy {acc}, {:.0} \
                 images/s{diverged}",
                d.model, d.dataset, self.updates, d.epochs, self.wall_s, d.images_per_s,
            ),
            RunDetails::Rendezvous(d) => format!(
                "{} ({} nodes): {} iterations in {:.1} s ({:.1} ms each), test accuracy {acc}, \
                 {:.0} bytes sent per node and iteration, consensus distance {}{diverged}",
                self.algorithm,
                self.workers,
                self.updates,
                self.wall_s,
                d.iteration_s * 1e3,
                d.bytes_sent_per_node_iteration,
                distance(d.consensus_distance),
            ),
            RunDetails::Server(_) => format!(
                "{} ({}, {} workers): {} updates in {:.1} s, test accuracy {acc}, staleness mean \
                 {:.2}{diverged}",
                self.algorithm,
                self.scheduler,
                self.workers,
                self.updates,
                self.wall_s,
                self.staleness.mean,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::Summary;
    use crate::run::details::{
        DecentralizedSimDetails, RendezvousDetails, RunDetails, ServerDetails, TrainDetails,
    };
    use crate::server::StalenessHistogram;

    fn summary(kind: &str, scheduler: &str, details: RunDetails) -> Summary {
        Summary {
            kind: kind.into(),
            algorithm: "sgp".into(),
            scheduler: scheduler.into(),
            workers: 4,
            updates: 600,
            wall_s: 12.5,
            final_loss: None,
            diverged: true,
            staleness: StalenessHistogram::default().summary(),
            per_worker: Vec::new(),
            gradients_rejected: BTreeMap::new(),
            seed: 1,
            stopped_by: None,
            details,
        }
    }

    fn rendezvous() -> RendezvousDetails {
        RendezvousDetails {
            batch_size: 32,
            bytes_received_per_node_iteration: 814182.0,
            bytes_sent_per_node_iteration: 814182.0,
            consensus_distance: Some(0.25),
            dataset: "fashion-mnist".into(),
            exact_averages: 0,
            final_test_accuracy: Some(0.863),
            iteration_s: 0.015,
            messages_absorbed_late: 0,
            messages_refused: 0,
            messages_given_up: 0,
            model: "cnn".into(),
            params: 100,
            theta_mean: None,
        }
    }

    #[test]
    fn each_kind_of_run_says_what_matters_for_it() {
        let mut calm = summary(
            "server",
            "decentralized",
            RunDetails::Rendezvous(rendezvous()),
        );
        calm.diverged = false;
        assert_eq!(
            calm.headline(),
            "sgp (4 nodes): 600 iterations in 12.5 s (15.0 ms each), test accuracy 86.30 %, \
             814182 bytes sent per node and iteration, consensus distance 2.500e-1"
        );
        calm.stopped_by = Some("SIGTERM".into());
        assert!(calm.headline().ends_with(", stopped by SIGTERM"));
        let sim = RunDetails::DecentralizedSim(DecentralizedSimDetails {
            bytes_received_per_node_iteration: 1.0,
            bytes_sent_per_node_iteration: 1.0,
            consensus_distance: None,
            dim: 3,
            exact_averages: 0,
            iteration_s: 0.01,
            objective: "quadratic".into(),
            slow_steps: 0,
            final_test_accuracy: None,
            final_train_loss: None,
            theta_mean: None,
        });
        let line = summary("sim", "decentralized", sim).headline();
        assert!(
            line.contains("virtual s") && line.ends_with(", DIVERGED"),
            "{line}"
        );
        assert!(line.contains("final loss non-finite"), "{line}");
        assert!(line.contains("consensus distance n/a"), "{line}");
        let server = RunDetails::Server(ServerDetails {
            applied_before_start: 0,
            applied_by_incarnation: Vec::new(),
            batch_size: 32,
            dataset: "fashion-mnist".into(),
            final_test_accuracy: None,
            gradients_applied: 600,
            gradients_received: 600,
            gradients_rejected_total: 0,
            model: "cnn".into(),
            params: 100,
        });
        let line = summary("server", "async", server).headline();
        assert!(
            line.contains("(async, 4 workers)") && line.contains("test accuracy n/a"),
            "{line}"
        );
        let train = RunDetails::Train(TrainDetails {
            batch_size: 32,
            dataset: "fashion-mnist".into(),
            device: "cpu".into(),
            epochs: 1.5,
            fast_kernels: false,
            final_test_accuracy: 0.9,
            final_test_loss: Some(0.3),
            images_per_s: 1000.0,
            model: "cnn".into(),
            params: 100,
        });
        let line = summary("train", "local", train).headline();
        assert!(
            line.starts_with("cnn on fashion-mnist: 600 steps (1.50 epochs)")
                && line.contains("test accuracy 90.00 %"),
            "{line}"
        );
    }
}
