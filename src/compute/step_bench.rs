//! One training step — forward, backward, optimizer, parameters written back — on a fixed
//! random batch: what `lagom bench` and the criterion benchmark time.

use anyhow::Result;
use candle_core::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Engine;
use crate::algo::LocalSgd;
use crate::data::Batch;
use crate::kernels::CpuKernels;
use crate::model::{ActivationMemory, InputSpec, ModelName, Network};

/// A model, its optimizer and a batch, ready to step again and again.
pub struct StepBench {
    engine: Engine,
    optimizer: LocalSgd<f32>,
    params: Vec<f32>,
    batch: Batch,
}

impl StepBench {
    /// `model` for `input` on `device` with `kernels`, a seeded random batch of `batch_size`
    /// examples and SGD with momentum 0.9 (what `benches/torch_resnet20.py` runs).
    pub fn new(
        model: ModelName,
        input: InputSpec,
        batch_size: usize,
        device: &Device,
        kernels: CpuKernels,
        seed: u64,
    ) -> Result<Self> {
        let engine = Engine::new(Network::with_kernels(model, input, device, seed, kernels)?);
        let params = engine.params()?;
        let batch = random_batch(input, batch_size, &mut ChaCha8Rng::seed_from_u64(seed));
        Ok(StepBench {
            optimizer: LocalSgd::new(params.len(), 0.9, false, 0.0),
            engine,
            params,
            batch,
        })
    }

    /// The same bench with training steps holding activations as `activations` says.
    pub fn with_activations(self, activations: ActivationMemory) -> Self {
        StepBench {
            engine: self.engine.with_activations(activations),
            ..self
        }
    }

    /// One step at learning rate 0.01; returns the loss before the step.
    pub fn step(&mut self) -> Result<f64> {
        let out = self.engine.gradient(&self.batch)?;
        self.optimizer.step(&mut self.params, &out.grad, 0.01);
        self.engine.set_params(&self.params)?;
        if let Device::Cuda(_) = self.engine.network().device() {
            self.engine.network().device().synchronize()?;
        }
        Ok(out.loss)
    }

    /// Number of trainable parameters.
    pub fn params(&self) -> usize {
        self.params.len()
    }
}

/// `batch_size` images of `input`'s shape with values uniform in [-2, 2) and uniform labels.
pub(crate) fn random_batch(input: InputSpec, batch_size: usize, rng: &mut impl Rng) -> Batch {
    let len = batch_size * input.channels * input.height * input.width;
    Batch {
        images: (0..len).map(|_| rng.random_range(-2.0f32..2.0)).collect(),
        labels: (0..batch_size)
            .map(|_| rng.random_range(0..input.classes as u32))
            .collect(),
        shape: (input.channels, input.height, input.width),
    }
}
