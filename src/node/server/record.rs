//! What the server actor records beyond metrics: checkpoints a restarted server resumes from,
//! and the summary of the run when it ends.

use actix::{AsyncContext, Context, Handler, Message as ActixMessage};

use super::actor::{Checkpointing, ServerActor};
use super::checkpoint::{Checkpoint, CHECKPOINT_FILE, CHECKPOINT_VERSION};
use crate::run::event::{CheckpointWritten, ClusterEnd, End};
use crate::run::{CheckpointWriter, WriteDone};
use crate::run::{IncarnationApplied, PerWorker, RunDetails, RunEvent, ServerDetails, Summary};

/// A checkpoint write finished on the writer's thread.
#[derive(ActixMessage)]
#[rtype(result = "()")]
pub struct CheckpointDone {
    /// The update count it holds.
    pub updates: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl Handler<CheckpointDone> for ServerActor {
    type Result = ();

    fn handle(&mut self, msg: CheckpointDone, _: &mut Context<Self>) {
        match msg.error {
            // After the end event nothing more is recorded (the final checkpoint has its own).
            None if self.done.is_some() => self.record_checkpoint(msg.updates),
            None => {}
            Some(e) => tracing::error!("checkpoint failed (training goes on): {e}"),
        }
    }
}

impl ServerActor {
    /// Starts the thread that writes this server's checkpoints (if checkpointing is on).
    pub(super) fn start_checkpoint_writer(&mut self, ctx: &mut Context<Self>) {
        let Some(c) = &mut self.checkpointing else {
            return;
        };
        let addr = ctx.address();
        let done: WriteDone = Box::new(move |updates, result: anyhow::Result<()>| {
            let error = result.err().map(|e| format!("{e:#}"));
            addr.do_send(CheckpointDone { updates, error });
        });
        match CheckpointWriter::start(c.dir.clone(), CHECKPOINT_FILE, done) {
            Ok(writer) => c.writer = Some(writer),
            Err(e) => tracing::error!("no checkpoint writer thread ({e:#}); writing inline"),
        }
    }

    fn snapshot(&self, c: &Checkpointing) -> Checkpoint {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            layout_hash: c.layout_hash,
            algorithm: self.info.algorithm.clone(),
            received: self.received,
            wall_s: self.started.elapsed().as_secs_f64(),
            core: self.core.snapshot(),
        }
    }

    /// Hands a checkpoint of now to the writer thread (written here when there is none); a
    /// failure is logged, not fatal.
    pub(super) fn checkpoint(&mut self) {
        let Some(c) = &self.checkpointing else {
            return;
        };
        let Some(writer) = &c.writer else {
            if let Err(e) = self.write_final_checkpoint() {
                tracing::error!("checkpoint failed (training goes on): {e:#}");
            }
            return;
        };
        match self.snapshot(c).encode() {
            Ok(bytes) => {
                if !writer.submit(self.core.updates(), bytes) {
                    tracing::debug!("a checkpoint not yet written was replaced by a newer one");
                }
            }
            Err(e) => tracing::error!("checkpoint failed (training goes on): {e:#}"),
        }
    }

    /// Records a checkpoint of `updates` in the metrics, once per update count.
    fn record_checkpoint(&mut self, updates: u64) {
        let Some(c) = &mut self.checkpointing else {
            return;
        };
        if c.recorded == Some(updates) {
            return;
        }
        c.recorded = Some(updates);
        let event = RunEvent::Checkpoint(CheckpointWritten {
            t_s: self.t_s(),
            updates,
        });
        self.write_now(event);
    }

    /// Waits for the writer's queued checkpoints, then writes one here and records it — unless
    /// the writer has just put this very state on disk (the same update count), which is then
    /// recorded instead of written twice (a second write would also push the previous
    /// generation out for a copy of the newest).
    fn write_final_checkpoint(&mut self) -> anyhow::Result<()> {
        let on_disk = match self.checkpointing.as_mut().and_then(|c| c.writer.take()) {
            Some(writer) => writer.finish(),
            None => None,
        };
        let Some(c) = &self.checkpointing else {
            return Ok(());
        };
        let updates = self.core.updates();
        if on_disk != Some(updates) {
            self.snapshot(c).save(&c.dir)?;
        }
        self.record_checkpoint(updates);
        Ok(())
    }

    /// Writes the final checkpoint, the `end` event and sends the summary (once; later calls do
    /// nothing).
    pub(super) fn finish(&mut self) {
        if self.done.is_none() {
            return;
        }
        self.progress.finish();
        if let Err(e) = self.write_final_checkpoint() {
            tracing::error!("the final checkpoint failed: {e:#}");
        }
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
