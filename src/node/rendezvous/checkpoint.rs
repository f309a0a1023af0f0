//! The checkpoint of a decentralized run: the last combined (mean) model and its iteration, which
//! `--resume` restarts the rendezvous from; checksummed, with the previous generation kept.

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::run::{generations, RunDir};

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

impl DecenCheckpoint {
    /// Writes it atomically into `dir`, keeping the previous one.
    pub fn save(&self, dir: &RunDir) -> Result<()> {
        let bytes = rmp_serde::to_vec_named(self).context("cannot encode the checkpoint")?;
        generations::save(dir, DECEN_CHECKPOINT_FILE, &bytes)
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
            let cp: DecenCheckpoint =
                rmp_serde::from_slice(bytes).context("not a lagom checkpoint (corrupt?)")?;
            cp.check(layout_hash, params_len, algorithm)?;
            Ok(cp)
        })?;
        if let Some(why) = &loaded.fell_back {
            tracing::warn!(
                "the newest checkpoint is unusable ({why}); resuming from the previous one, {}",
                loaded.path.display()
            );
        }
        Ok(loaded.value)
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
