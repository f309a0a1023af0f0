//! The worker's compute, on a `SyncArbiter` thread of its own (never on the thread that drives
//! the network): parameters in, the gradient of the next mini-batch of this worker's shard out.

use std::time::Instant;

use actix::{Actor, Handler, Message as ActixMessage, SyncContext};
use anyhow::Result;

use crate::compress::TopK;
use crate::compute::WorkerCompute;

/// Compute the gradient at `params` (iteration `index`).
#[derive(Debug)]
pub struct ComputeGradient {
    /// The parameters' iteration index.
    pub index: u64,
    /// The parameters.
    pub params: Vec<f32>,
    /// L2 weight decay to add to the gradient.
    pub weight_decay: f64,
}

/// A computed gradient.
#[derive(Debug, Clone)]
pub struct ComputedGradient {
    /// The `index` it was computed at.
    pub ite: u64,
    /// Mean batch loss.
    pub loss: f32,
    /// Examples in the batch.
    pub samples: u32,
    /// The gradient (plus weight decay); with top-k compression only the values at `indices`.
    pub grad: Vec<f32>,
    /// The coordinates of `grad`'s values when the worker compresses (`net.compress = "topk"`).
    pub indices: Option<Vec<u32>>,
    /// Seconds of compute, before any injected slowdown.
    pub compute_s: f64,
}

impl ActixMessage for ComputeGradient {
    type Result = Result<ComputedGradient>;
}

/// The loss at `params` on the mini-batch of the last gradient (PC-ASGD's adaptive θ).
#[derive(Debug)]
pub struct ComputeLoss {
    /// The parameters.
    pub params: Vec<f32>,
}

impl ActixMessage for ComputeLoss {
    type Result = Result<f64>;
}

/// A worker's compute and its speed.
#[derive(Clone)]
pub struct ComputeActor {
    compute: WorkerCompute,
    slowdown: f64,
    compress: Option<TopK>,
}

impl ComputeActor {
    /// A worker's compute; `slowdown ≥ 1` stretches every step to `slowdown ×` its compute time
    /// (the `delay` heterogeneity mechanism: works the same on CPU and GPU).
    pub fn new(compute: WorkerCompute, slowdown: f64) -> Self {
        ComputeActor {
            compute,
            slowdown: slowdown.max(1.0),
            compress: None,
        }
    }

    /// The same, sending each gradient through `topk` (its residual lives on this thread, so it
    /// outlasts reconnections; the compression costs the compute thread, not the network's).
    pub fn with_compression(mut self, topk: TopK) -> Self {
        self.compress = Some(topk);
        self
    }
}

impl Actor for ComputeActor {
    type Context = SyncContext<Self>;
}

impl Handler<ComputeGradient> for ComputeActor {
    type Result = Result<ComputedGradient>;

    fn handle(&mut self, msg: ComputeGradient, _: &mut SyncContext<Self>) -> Self::Result {
        let started = Instant::now();
        let out = self.compute.gradient(&msg.params, msg.weight_decay)?;
        let compute = started.elapsed();
        if self.slowdown > 1.0 {
            std::thread::sleep(compute.mul_f64(self.slowdown - 1.0));
        }
        let (grad, indices) = match &mut self.compress {
            Some(topk) => {
                let sparse = topk.compress(out.grad);
                (sparse.values, Some(sparse.indices))
            }
            None => (out.grad, None),
        };
        Ok(ComputedGradient {
            ite: msg.index,
            loss: out.loss,
            samples: out.samples,
            grad,
            indices,
            compute_s: compute.as_secs_f64(),
        })
    }
}

impl Handler<ComputeLoss> for ComputeActor {
    type Result = Result<f64>;

    fn handle(&mut self, msg: ComputeLoss, _: &mut SyncContext<Self>) -> Result<f64> {
        self.compute.loss(&msg.params)
    }
}
