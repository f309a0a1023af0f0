//! The checkpoint of a decentralized run: the last combined (mean) model and its iteration, which
//! `--resume` restarts the rendezvous from; checksummed, with the previous generation kept, and
//! written on a thread of its own so the rendezvous never waits for the disk.

use std::sync::{Arc, Mutex};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::actor::RendezvousActor;
use crate::decen::RoundReport;
use crate::run::event::CheckpointWritten;
use crate::run::{generations, CheckpointWriter, RunDir, RunEvent};

/// The checkpoint of a decentralized run: the last combined model and its iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecenCheckpoint {
    /// Format version.
    pub version: u32,
    /// Layout hash of the model.
    pub layout_hash: u64,
    /// The algorithm's configuration name.
    pub algorithm: String,
    /// Iterations completed.
    pub iteration: u64,
    /// Wall-clock seconds of the run so far.
    pub wall_s: f64,
    /// The mean of the nodes' parameters at `iteration`.
    pub params: Vec<f32>,
}

/// The checkpoint's file name in the run directory.
pub const DECEN_CHECKPOINT_FILE: &str = "decen-checkpoint.msgpack";

impl RendezvousActor {
    /// Queues the checkpoint of report `r` (the combined model) and records finished writes.
    pub(super) fn checkpoint_report(&mut self, r: &RoundReport<f32>) {
        if let (Some(cps), Some((_, layout_hash))) = (&self.checkpoints, &self.setup.checkpoint) {
            cps.submit(&DecenCheckpoint {
                version: 1,
                layout_hash: *layout_hash,
                algorithm: self.setup.algorithm.clone(),
                iteration: r.iteration,
                wall_s: self.started.elapsed().as_secs_f64(),
                params: r.params.clone(),
            });
        }
        self.record_checkpoints();
    }

    /// Writes a `checkpoint` event for every checkpoint written since the last look.
    pub(super) fn record_checkpoints(&mut self) {
        let finished = self.checkpoints.as_ref().map(|c| c.take_finished());
        for (iteration, error) in finished.into_iter().flatten() {
            match error {
                None => self.write(RunEvent::Checkpoint(CheckpointWritten {
                    t_s: self.t_s(),
                    updates: iteration,
                })),
                Some(e) => tracing::error!("checkpoint failed (training goes on): {e}"),
            }
        }
    }
}

/// A checkpoint write that finished: its iteration, and why it failed if it did.
type FinishedWrite = (u64, Option<String>);

/// Writes a run's checkpoints on a thread of its own ([`CheckpointWriter`]) and keeps what it
/// finished for the actor to record.
pub struct DecenCheckpoints {
    writer: Option<CheckpointWriter>,
    dir: RunDir,
    /// Writes finished since the last look: (iteration, why it failed).
    finished: Arc<Mutex<Vec<FinishedWrite>>>,
}

impl DecenCheckpoints {
    /// Checkpoints into `dir` (written inline if no thread can be started).
    pub fn start(dir: RunDir) -> Self {
        let finished = Arc::new(Mutex::new(Vec::new()));
        let sink = finished.clone();
        let done = Box::new(move |iteration, result: Result<()>| {
            if let Ok(mut f) = sink.lock() {
                f.push((iteration, result.err().map(|e| format!("{e:#}"))));
            }
        });
        let writer = CheckpointWriter::start(dir.clone(), DECEN_CHECKPOINT_FILE, done)
            .map_err(|e| tracing::error!("no checkpoint writer thread ({e:#}); writing inline"))
            .ok();
        DecenCheckpoints {
            writer,
            dir,
            finished,
        }
    }

    /// Queues `cp` (written here when there is no writer thread).
    pub fn submit(&self, cp: &DecenCheckpoint) {
        let result = cp.encode().and_then(|bytes| match &self.writer {
            Some(w) => {
                w.submit(cp.iteration, bytes);
                Ok(())
            }
            None => generations::save(&self.dir, DECEN_CHECKPOINT_FILE, &bytes),
        });
        if self.writer.is_none() {
            if let Ok(mut f) = self.finished.lock() {
                f.push((cp.iteration, result.err().map(|e| format!("{e:#}"))));
            }
        } else if let Err(e) = result {
            tracing::error!("checkpoint failed (training goes on): {e:#}");
        }
    }

    /// The writes finished since the last call: (iteration, why it failed).
    pub fn take_finished(&self) -> Vec<(u64, Option<String>)> {
        self.finished
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default()
    }

    /// Waits until every queued checkpoint is on disk (the writer thread stops).
    pub fn finish(&mut self) {
        if let Some(w) = self.writer.take() {
            w.finish();
        }
    }
}

impl DecenCheckpoint {
    /// The bytes [`DecenCheckpoint::save`] writes (before the checksummed envelope).
    pub fn encode(&self) -> Result<Vec<u8>> {
        rmp_serde::to_vec_named(self).context("cannot encode the checkpoint")
    }

    /// Writes it atomically into `dir`, keeping the previous one.
    pub fn save(&self, dir: &RunDir) -> Result<()> {
        generations::save(dir, DECEN_CHECKPOINT_FILE, &self.encode()?)
    }

    /// Reads `dir`'s newest usable checkpoint (the previous generation when the newest is
    /// damaged) and checks it belongs to this model (`params_len` finite parameters) and
    /// algorithm.
    pub fn load(
        dir: &std::path::Path,
        layout_hash: u64,
        params_len: usize,
        algorithm: &str,
    ) -> Result<Self> {
        let loaded = generations::load(dir, DECEN_CHECKPOINT_FILE, |bytes| {
            Self::decode(bytes, layout_hash, params_len, algorithm)
        })?;
        if let Some(why) = &loaded.fell_back {
            tracing::warn!(
                "the newest checkpoint is unusable ({why}); resuming from the previous one, {}",
                loaded.path.display()
            );
        }
        Ok(loaded.value)
    }

    /// One generation's bytes (inside the envelope), decoded and checked against this run.
    pub fn decode(
        bytes: &[u8],
        layout_hash: u64,
        params_len: usize,
        algorithm: &str,
    ) -> Result<Self> {
        let cp: DecenCheckpoint =
            rmp_serde::from_slice(bytes).context("not a lagom checkpoint (corrupt?)")?;
        cp.check(layout_hash, params_len, algorithm)?;
        Ok(cp)
    }

    fn check(&self, layout_hash: u64, params_len: usize, algorithm: &str) -> Result<()> {
        if self.version != 1 || self.layout_hash != layout_hash || self.algorithm != algorithm {
            bail!(
                "version {}, layout {:016x}, algorithm {}: not this run's (layout \
                 {layout_hash:016x}, algorithm {algorithm})",
                self.version,
                self.layout_hash,
                self.algorithm
            );
        }
        if self.params.len() != params_len {
            bail!(
                "{} parameters, the model has {params_len}",
                self.params.len()
            );
        }
        if let Some(i) = self.params.iter().position(|x| !x.is_finite()) {
            bail!("parameter {i} is not finite");
        }
        if !(self.wall_s.is_finite() && self.wall_s >= 0.0) {
            bail!("its run time {} is not a duration", self.wall_s);
        }
        Ok(())
    }
}
