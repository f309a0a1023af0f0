//! The server's checkpoint file: the core snapshot (parameters, algorithm state, per-worker
//! bookkeeping, counters) with what it must match to be resumed, written atomically in a
//! checksummed envelope with the previous generation kept (`run::generations`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::run::{generations, RunDir};
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
    /// The bytes [`Checkpoint::save`] writes (before the checksummed envelope).
    pub fn encode(&self) -> Result<Vec<u8>> {
        rmp_serde::to_vec_named(self).context("cannot encode the checkpoint")
    }

    /// Writes the checkpoint into `dir` atomically and durably, keeping the previous one.
    pub fn save(&self, dir: &RunDir) -> Result<()> {
        generations::save(dir, CHECKPOINT_FILE, &self.encode()?)
    }

    /// Reads `dir`'s newest usable checkpoint (the previous generation when the newest is
    /// damaged) and checks it belongs to this model and algorithm and holds finite values.
    pub fn load(dir: &Path, layout_hash: u64, algorithm: &str) -> Result<Self> {
        let loaded = generations::load(dir, CHECKPOINT_FILE, |bytes| {
            Self::decode(bytes, layout_hash, algorithm)
        })?;
        if let Some(why) = &loaded.fell_back {
            tracing::warn!(
                "the newest checkpoint is unusable ({why}); resuming from the previous one, {}",
                loaded.path.display()
            );
        }
        Ok(loaded.value)
    }
}

impl Checkpoint {
    /// One generation's bytes (inside the envelope), decoded and checked against this run.
    pub fn decode(bytes: &[u8], layout_hash: u64, algorithm: &str) -> Result<Checkpoint> {
        let cp: Checkpoint =
            rmp_serde::from_slice(bytes).context("not a lagom checkpoint (corrupt?)")?;
        if cp.version != CHECKPOINT_VERSION {
            bail!(
                "format version {}, this lagom reads version {CHECKPOINT_VERSION}",
                cp.version
            );
        }
        if cp.layout_hash != layout_hash {
            bail!(
            "it belongs to a model with layout {:016x}, the configured model has {layout_hash:016x}",
            cp.layout_hash
        );
        }
        if cp.algorithm != algorithm {
            bail!(
                "it was written by algorithm {}, the configuration says {algorithm}",
                cp.algorithm
            );
        }
        if !(cp.wall_s.is_finite() && cp.wall_s >= 0.0) {
            bail!("its run time {} is not a duration", cp.wall_s);
        }
        for (name, v) in &cp.core.algorithm.vectors {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                bail!("its vector `{name}` holds a non-finite value at index {i}");
            }
        }
        Ok(cp)
    }
}
