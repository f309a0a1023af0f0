//! The checkpoint of a decentralized run: the last combined (mean) model and its iteration, which
//! `--resume` restarts the rendezvous from.

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::run::RunDir;

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
    /// Writes it atomically into `dir`.
    pub fn save(&self, dir: &RunDir) -> Result<()> {
        let bytes = rmp_serde::to_vec_named(self).context("cannot encode the checkpoint")?;
        dir.write_atomically(DECEN_CHECKPOINT_FILE, &bytes)
    }

    /// Reads `dir`'s checkpoint and checks it belongs to this model and algorithm.
    pub fn load(dir: &std::path::Path, layout_hash: u64, algorithm: &str) -> Result<Self> {
        let path = dir.join(DECEN_CHECKPOINT_FILE);
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "cannot read the checkpoint {} (run without --resume to start afresh)",
                path.display()
            )
        })?;
        let cp: DecenCheckpoint = rmp_serde::from_slice(&bytes)
            .with_context(|| format!("{} is not a lagom checkpoint (corrupt?)", path.display()))?;
        if cp.version != 1 || cp.layout_hash != layout_hash || cp.algorithm != algorithm {
            bail!(
                "{} (version {}, layout {:016x}, algorithm {}) does not belong to this run (layout {layout_hash:016x}, algorithm {algorithm})",
                path.display(),
                cp.version,
                cp.layout_hash,
                cp.algorithm
            );
        }
        Ok(cp)
    }
}
