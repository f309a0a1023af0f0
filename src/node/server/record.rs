//! What the server actor records beyond metrics: checkpoints a restarted server resumes from,
//! and the summary of the run when it ends.

use serde_json::json;

use super::actor::ServerActor;
use super::checkpoint::{Checkpoint, CHECKPOINT_VERSION};
use crate::run::{PerWorker, Summary};

impl ServerActor {
    /// Writes a checkpoint now (if checkpointing is on); a failure is logged, not fatal.
    pub(super) fn checkpoint(&mut self) {
        let Some(c) = &self.checkpointing else {
            return;
        };
        let cp = Checkpoint {
            version: CHECKPOINT_VERSION,
            layout_hash: c.layout_hash,
            algorithm: self.info.algorithm.clone(),
            received: self.received,
            wall_s: self.started.elapsed().as_secs_f64(),
            core: self.core.snapshot(),
        };
        match cp.save(&c.dir) {
            Ok(()) => {
                let event = json!({
                    "event": "checkpoint", "t_s": self.t_s(), "updates": self.core.updates(),
                });
                self.write_now(event);
            }
            Err(e) => tracing::error!("checkpoint failed (training goes on): {e:#}"),
        }
    }

    pub(super) fn finish(&mut self) {
        self.progress.finish();
        self.checkpoint();
        let wall_s = self.t_s();
        let applied = self.core.updates();
        let final_eval = self.last_eval.map(|(_, e)| e);
        let event = json!({
            "event": "end", "t_s": wall_s, "updates": applied,
            "test_accuracy": final_eval.map(|e| e.accuracy),
        });
        self.write(event);
        if let Err(e) = self.metrics.flush() {
            tracing::error!("cannot flush metrics: {e:#}");
        }
        let rejected: u64 = self.core.rejections().values().sum();
        let per_worker = PerWorker::from_records(self.core.workers(), &self.info.speeds);
        let mut extra = self.info.extra.clone();
        extra.insert(
            "final_test_accuracy".into(),
            json!(final_eval.map(|e| e.accuracy)),
        );
        extra.insert("gradients_received".into(), json!(self.received));
        extra.insert("gradients_applied".into(), json!(applied));
        extra.insert("gradients_rejected_total".into(), json!(rejected));
        extra.insert("applied_before_start".into(), json!(self.applied_at_start));
        let by_incarnation: Vec<_> = self
            .applied_by_incarnation
            .iter()
            .map(|(&(worker, incarnation), &applied)| {
                json!({"worker": worker, "incarnation": incarnation, "applied": applied})
            })
            .collect();
        extra.insert("applied_by_incarnation".into(), json!(by_incarnation));
        let summary = Summary {
            kind: "server".into(),
            algorithm: self.info.algorithm.clone(),
            scheduler: self.info.scheduler.clone(),
            workers: self.peers.len(),
            updates: applied,
            wall_s,
            final_loss: final_eval.and_then(|e| e.loss.is_finite().then_some(e.loss)),
            diverged: self.policy.diverged().is_some(),
            staleness: self.core.staleness().summary(),
            per_worker,
            gradients_rejected: self
                .core
                .rejections()
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            seed: self.info.seed,
            extra,
        };
        if let Some(done) = self.done.take() {
            let _ = done.send(summary);
        }
    }
}
