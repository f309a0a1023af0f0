//! One worker's compute, without any actor or thread: the model engine, this worker's shard of
//! the training set with its sampler and augmentation stream, and the last mini-batch (for a loss
//! on the same batch). The compute actor of a worker process and the in-process check that the
//! simulator's cores match the network's both compute with it, so their gradients are the same.

use anyhow::{anyhow, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::Engine;
use crate::algo::vector::axpy;
use crate::data::{Batch, Dataset, Sampler};

/// What one gradient step gave.
#[derive(Debug, Clone)]
pub struct WorkerGradient {
    /// The gradient (plus weight decay).
    pub grad: Vec<f32>,
    /// Mean loss of the mini-batch.
    pub loss: f32,
    /// Examples in the mini-batch.
    pub samples: u32,
}

/// Seed stream of the workers' augmentation draws.
const AUGMENT_STREAM: u64 = 0x5752_4b41;

/// The seed of worker `worker`'s augmentation stream in a run seeded with `seed`.
pub fn augment_seed(seed: u64, worker: usize) -> u64 {
    seed ^ AUGMENT_STREAM ^ (worker as u64).wrapping_mul(0x9e37_79b9)
}

/// A worker's model, shard and sampler (see the module docs).
#[derive(Clone)]
pub struct WorkerCompute {
    engine: Engine,
    /// Shared, not copied, when the compute is cloned (an actix sync actor's factory clones it).
    train: std::sync::Arc<Dataset>,
    sampler: Sampler,
    augment: Option<ChaCha8Rng>,
    batch_size: usize,
    last_batch: Option<Batch>,
}

impl WorkerCompute {
    /// Draws mini-batches of `batch_size` from `train` with `sampler`, augmented from the seed
    /// `augment_seed` when given.
    pub fn new(
        engine: Engine,
        train: Dataset,
        sampler: Sampler,
        augment_seed: Option<u64>,
        batch_size: usize,
    ) -> Self {
        Self::sharing(
            engine,
            std::sync::Arc::new(train),
            sampler,
            augment_seed,
            batch_size,
        )
    }

    /// [`WorkerCompute::new`] over a training set shared with others (the simulator's workers
    /// draw from one copy; `sampler` then yields indexes of `train` itself).
    pub fn sharing(
        engine: Engine,
        train: std::sync::Arc<Dataset>,
        sampler: Sampler,
        augment_seed: Option<u64>,
        batch_size: usize,
    ) -> Self {
        WorkerCompute {
            engine,
            train,
            sampler,
            augment: augment_seed.map(ChaCha8Rng::seed_from_u64),
            batch_size,
            last_batch: None,
        }
    }

    /// The gradient at `params` on the next mini-batch, plus `weight_decay × params`.
    pub fn gradient(&mut self, params: &[f32], weight_decay: f64) -> Result<WorkerGradient> {
        self.engine.set_params(params)?;
        let indices = self.sampler.next_batch(self.batch_size);
        let batch = self.train.batch(&indices, self.augment.as_mut())?;
        let out = self.engine.gradient(&batch)?;
        self.last_batch = Some(batch);
        let mut grad = out.grad;
        if weight_decay != 0.0 {
            axpy(&mut grad, weight_decay as f32, params);
        }
        Ok(WorkerGradient {
            grad,
            loss: out.loss as f32,
            samples: out.samples as u32,
        })
    }

    /// The loss at `params` on the mini-batch of the last gradient.
    pub fn loss(&mut self, params: &[f32]) -> Result<f64> {
        let batch = self
            .last_batch
            .as_ref()
            .ok_or_else(|| anyhow!("no mini-batch yet to evaluate a loss on"))?;
        self.engine.set_params(params)?;
        self.engine.loss(batch)
    }
}
