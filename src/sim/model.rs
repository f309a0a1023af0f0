//! `[sim] objective = "model"`: the virtual workers' gradients are real forward/backward passes
//! of `[model]` on `[data]`. Each worker draws from its own shard with its own sampler and
//! augmentation stream — the very [`WorkerCompute`] a worker process runs, built with the same
//! seeds — so a gradient here equals the one a real worker computes at the same parameters.
//! The workers share one copy of the training set and one network (its variables are shared by
//! clones, and every gradient loads the parameters it is computed at first), so the memory is one
//! model and one data set plus the K parameter copies the simulator holds. Evaluation is the
//! server's: batch-norm statistics recomputed from `model.bn_batches` training batches, then the
//! test set.

use std::sync::Arc;

use anyhow::{Context, Result};

use super::source::{Evaluation, GradientSource};
use super::SimSetup;
use crate::compute::{augment_seed, keep_freed_tensor_buffers, Engine, WorkerCompute};
use crate::data::{self, Batch, Dataset, Sampler};
use crate::model::{InputSpec, Network};
use crate::train::bn_batches;

/// K workers' compute over one model and one training set, and the server's evaluator.
pub struct ModelSource {
    workers: Vec<WorkerCompute>,
    evaluator: Engine,
    test: Dataset,
    calibration: Vec<Batch>,
    eval_batch_size: usize,
    initial: Vec<f32>,
}

impl ModelSource {
    /// Loads `[data]`, builds `[model]` on `[compute]`'s device and `workers` workers' compute.
    pub fn build(setup: &SimSetup, workers: usize) -> Result<Self> {
        keep_freed_tensor_buffers();
        let seed = setup.seed;
        let split = data::load(setup.data.name, setup.data.dir.as_deref(), seed)
            .context("the simulator's data set (sim.objective = \"model\")")?;
        let device = setup.compute.device.open()?;
        let input = InputSpec::of(&split.train);
        let network = || {
            Network::with_kernels(
                setup.model.name,
                input,
                &device,
                seed,
                setup.compute.cpu_kernels,
            )
        };
        let shared = Engine::new(network()?).with_activations(setup.compute.activations);
        let initial = shared.params()?;
        let calibration = bn_batches(
            &split.train,
            setup.model.bn_batches,
            setup.train.batch_size,
            seed,
        )?;
        let augment = setup.data.augment && split.train.augmentable;
        let train = Arc::new(split.train);
        let workers = (0..workers)
            .map(|i| {
                let sampler = Sampler::new(train.len(), i, workers, setup.data.sharding, seed);
                WorkerCompute::sharing(
                    shared.clone(),
                    Arc::clone(&train),
                    sampler,
                    augment.then(|| augment_seed(seed, i)),
                    setup.train.batch_size,
                )
            })
            .collect();
        Ok(ModelSource {
            workers,
            evaluator: Engine::new(network()?),
            test: split.test,
            calibration,
            eval_batch_size: setup.train.eval_batch_size,
            initial,
        })
    }
}

impl GradientSource for ModelSource {
    fn dim(&self) -> usize {
        self.initial.len()
    }

    fn initial(&self) -> Result<Vec<f32>> {
        Ok(self.initial.clone())
    }

    fn gradient(
        &mut self,
        worker: usize,
        w: &[f32],
        weight_decay: f32,
        out: &mut Vec<f32>,
    ) -> Result<Option<f64>> {
        let step = self.workers[worker].gradient(w, f64::from(weight_decay))?;
        *out = step.grad;
        Ok(Some(f64::from(step.loss)))
    }

    fn local_loss(&mut self, worker: usize, w: &[f32]) -> Result<f64> {
        self.workers[worker].loss(w)
    }

    fn evaluate(&mut self, w: &[f32]) -> Result<Evaluation> {
        let e = self.evaluator.evaluate_params(
            w,
            &self.calibration,
            &self.test,
            self.eval_batch_size,
        )?;
        Ok(Evaluation {
            loss: e.loss,
            accuracy: Some(e.accuracy),
        })
    }
}
