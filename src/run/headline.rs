//! The one line a run prints when it ends, for every kind of run, from its summary alone.

use super::Summary;

impl Summary {
    /// A kind-specific field as a number (`NaN` when absent or not a number).
    fn number(&self, key: &str) -> f64 {
        self.extra
            .get(key)
            .and_then(|v| v.as_f64())
            .unwrap_or(f64::NAN)
    }

    /// True for a run of the decentralized family.
    pub fn is_decentralized(&self) -> bool {
        self.scheduler == "decentralized"
    }

    /// What the run did, in one line: algorithm, size, time, result (the caller adds where the
    /// results are).
    pub fn headline(&self) -> String {
        let diverged = if self.diverged { ", DIVERGED" } else { "" };
        let loss = self
            .final_loss
            .map_or("non-finite".to_string(), |l| format!("{l:.4e}"));
        let acc = match self.number("final_test_accuracy") {
            a if a.is_finite() => format!("{:.2} %", 100.0 * a),
            _ => "n/a".to_string(),
        };
        match (self.kind.as_str(), self.is_decentralized()) {
            ("sim", true) => format!(
                "{} ({} nodes): {} iterations in {:.1} virtual s ({:.2} ms each), final loss {loss}, \
                 {:.0} bytes sent per node and iteration, consensus distance {:.3e}{diverged}",
                self.algorithm,
                self.workers,
                self.updates,
                self.wall_s,
                self.number("iteration_s") * 1e3,
                self.number("bytes_sent_per_node_iteration"),
                self.number("consensus_distance"),
            ),
            ("sim", false) => format!(
                "{} ({}, {} workers): {} updates in {:.1} virtual s, final loss {loss}, staleness \
                 mean {:.2} max {}{diverged}",
                self.algorithm,
                self.scheduler,
                self.workers,
                self.updates,
                self.wall_s,
                self.staleness.mean,
                self.staleness.max,
            ),
            ("train", _) => format!(
                "{} on {}: {} steps ({:.2} epochs) in {:.1} s, test accuracy {acc}, {:.0} \
                 images/s{diverged}",
                self.extra.get("model").and_then(|v| v.as_str()).unwrap_or("?"),
                self.extra.get("dataset").and_then(|v| v.as_str()).unwrap_or("?"),
                self.updates,
                self.number("epochs"),
                self.wall_s,
                self.number("images_per_s"),
            ),
            (_, true) => format!(
                "{} ({} nodes): {} iterations in {:.1} s ({:.1} ms each), test accuracy {acc}, \
                 {:.0} bytes sent per node and iteration, consensus distance {:.3e}",
                self.algorithm,
                self.workers,
                self.updates,
                self.wall_s,
                self.number("iteration_s") * 1e3,
                self.number("bytes_sent_per_node_iteration"),
                self.number("consensus_distance"),
            ),
            (_, false) => format!(
                "{} ({}, {} workers): {} updates in {:.1} s, test accuracy {acc}, staleness mean \
                 {:.2}",
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

    use serde_json::json;

    use super::Summary;
    use crate::server::StalenessHistogram;

    fn summary(kind: &str, scheduler: &str, extra: &[(&str, serde_json::Value)]) -> Summary {
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
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    #[test]
    fn each_kind_of_run_says_what_matters_for_it() {
        let decen = [
            ("iteration_s", json!(0.015)),
            ("bytes_sent_per_node_iteration", json!(814182.0)),
            ("consensus_distance", json!(0.25)),
            ("final_test_accuracy", json!(0.863)),
        ];
        let line = summary("server", "decentralized", &decen).headline();
        assert_eq!(
            line,
            "sgp (4 nodes): 600 iterations in 12.5 s (15.0 ms each), test accuracy 86.30 %, \
             814182 bytes sent per node and iteration, consensus distance 2.500e-1"
        );
        let line = summary("sim", "decentralized", &decen).headline();
        assert!(
            line.contains("virtual s") && line.ends_with(", DIVERGED"),
            "{line}"
        );
        assert!(line.contains("final loss non-finite"), "{line}");
        let line = summary("server", "async", &[]).headline();
        assert!(
            line.contains("(async, 4 workers)") && line.contains("test accuracy n/a"),
            "{line}"
        );
        let train = [("model", json!("cnn")), ("dataset", json!("fashion-mnist"))];
        let line = summary("train", "sync", &train).headline();
        assert!(
            line.starts_with("cnn on fashion-mnist: 600 steps"),
            "{line}"
        );
    }
}
