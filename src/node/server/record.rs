//! What the server actor records beyond metrics: checkpoints a restarted server resumes from,
//! and the summary of the run when it ends.

use super::actor::ServerActor;
use super::checkpoint::{Checkpoint, CHECKPOINT_VERSION};
use crate::run::event::{CheckpointWritten, ClusterEnd, End};
use crate::run::{IncarnationApplied, PerWorker, RunDetails, RunEvent, ServerDetails, Summary};

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
                let event = RunEvent::Checkpoint(CheckpointWritten {
                    t_s: self.t_s(),
                    updates: self.core.updates(),
                });
                self.write_now(event);
            }
            Err(e) => tracing::error!("checkpoint failed (training goes on): {e:#}"),
        }
    }

    /// Writes the final checkpoint, the `end` event and sends the summary (once; later calls do
    /// nothing).
    pub(super) fn finish(&mut self) {
        if self.done.is_none() {
            return;
        }
        self.progress.finish();
        self.checkpoint();
        let wall_s = self.t_s();
        let applied = self.core.updates();
        let final_eval = self.last_eval.map(|(_, e)| e);
        let event = RunEvent::End(End::Cluster(ClusterEnd {
            t_s: wall_s,
            updates: applied,
            test_accuracy: final_eval.map(|e| e.accuracy),
        }));
        self.write(event);
        if let Err(e) = self.metrics.flush() {
            tracing::error!("cannot flush metrics: {e:#}");
        }
        let rejected: u64 = self.core.rejections().values().sum();
        let per_worker = PerWorker::from_records(self.core.workers(), &self.info.speeds);
        let facts = &self.info.facts;
        let details = RunDetails::Server(ServerDetails {
            applied_before_start: self.applied_at_start,
            applied_by_incarnation: self
                .applied_by_incarnation
                .iter()
                .map(|(&(worker, incarnation), &applied)| IncarnationApplied {
                    applied,
                    incarnation,
                    worker,
                })
                .collect(),
            batch_size: facts.batch_size,
            dataset: facts.dataset.clone(),
            final_test_accuracy: final_eval.map(|e| e.accuracy),
            gradients_applied: applied,
            gradients_received: self.received,
            gradients_rejected_total: rejected,
            model: facts.model.clone(),
            params: facts.params,
        });
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
            stopped_by: self.stopped_by.clone(),
            details,
        };
        if let Some(done) = self.done.take() {
            let _ = done.send(summary);
        }
    }
}
