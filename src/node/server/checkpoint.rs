//! The server's checkpoint file: the core snapshot (parameters, algorithm state, per-worker
//! bookkeeping, counters) with what it must match to be resumed, written atomically.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::run::RunDir;
use crate::server::CoreSnapshot;

/// The checkpoint's file name in the run directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.msgpack";
/// Version of the checkpoint format.
pub const CHECKPOINT_VERSION: u32 = 1;

/// One checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version.
    pub version: u32,
    /// Layout hash of the model the parameters belong to.
    pub layout_hash: u64,
    /// The algorithm's configuration name.
    pub algorithm: String,
    /// Gradients received so far.
    pub received: u64,
    /// Wall-clock seconds of the run so far.
    pub wall_s: f64,
    /// The core.
    pub core: CoreSnapshot<f32>,
}

impl Checkpoint {
    /// Writes the checkpoint into `dir` atomically and durably.
    pub fn save(&self, dir: &RunDir) -> Result<()> {
        let bytes = rmp_serde::to_vec_named(self).context("cannot encode the checkpoint")?;
        dir.write_atomically(CHECKPOINT_FILE, &bytes)
    }

    /// Reads `dir`'s checkpoint and checks it belongs to this model and algorithm.
    pub fn load(dir: &Path, layout_hash: u64, algorithm: &str) -> Result<Self> {
        let path = dir.join(CHECKPOINT_FILE);
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "cannot read the checkpoint {} (run without --resume to start afresh)",
                path.display()
            )
        })?;
        let cp: Checkpoint = rmp_serde::from_slice(&bytes)
            .with_context(|| format!("{} is not a lagom checkpoint (corrupt?)", path.display()))?;
        if cp.version != CHECKPOINT_VERSION {
            bail!(
                "{} has format version {}, this lagom reads version {CHECKPOINT_VERSION}",
                path.display(),
                cp.version
            );
        }
        if cp.layout_hash != layout_hash {
            bail!(
                "{} belongs to a model with layout {:016x}, the configured model has {layout_hash:016x}",
                path.display(),
                cp.layout_hash
            );
        }
        if cp.algorithm != algorithm {
            bail!(
                "{} was written by algorithm {}, the configuration says {algorithm}",
                path.display(),
                cp.algorithm
            );
        }
        Ok(cp)
    }
}
