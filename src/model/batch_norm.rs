//! Batch normalisation over (N, H, W) for NCHW activations, with running statistics whose update
//! rate is shared by every layer of a network, so that a network can switch all its layers from
//! the usual exponential moving average to an exact cumulative average (to recompute the
//! statistics of a parameter vector that arrived from elsewhere).
//!
//! Written with candle tensor ops, which give the backward pass; the running statistics are
//! updated outside the autograd graph and never get gradients.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use candle_core::{DType, Result, Tensor, Var};
use candle_nn::{Init, ModuleT, VarBuilder};

use crate::kernels::{self, BnBatchStats};

/// The momentum every batch-norm layer of one network uses for its running statistics:
/// `running = (1 − m)·running + m·batch`; 0 freezes them. Shared; cheap to clone.
#[derive(Debug, Clone)]
pub struct BnMomentum(Arc<AtomicU64>);

impl BnMomentum {
    /// A shared momentum starting at `m`.
    pub fn new(m: f64) -> Self {
        BnMomentum(Arc::new(AtomicU64::new(m.to_bits())))
    }

    /// The current momentum.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    /// Sets the momentum of every layer that shares this handle.
    pub fn set(&self, m: f64) {
        self.0.store(m.to_bits(), Ordering::Relaxed);
    }
}

/// PyTorch's default momentum for running statistics.
pub const DEFAULT_BN_MOMENTUM: f64 = 0.1;

/// `BatchNorm2d`: `y = (x − μ)/√(σ² + ε)·γ + β` per channel.
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    channels: usize,
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: BnMomentum,
}

impl BatchNorm2d {
    /// Creates `weight` (ones), `bias` (zeros), `running_mean` (zeros) and `running_var` (ones)
    /// under `vb`.
    pub fn new(channels: usize, momentum: BnMomentum, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(channels, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
        let running_mean = vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?;
        let running_var = vb.get_with_hints(channels, "running_var", Init::Const(1.0))?;
        Ok(BatchNorm2d {
            channels,
            weight,
            bias,
            running_mean: Var::from_tensor(&running_mean)?,
            running_var: Var::from_tensor(&running_var)?,
            eps: 1e-5,
            momentum,
        })
    }

    /// Resets the running statistics to mean 0, variance 1.
    pub fn reset_running_stats(&self) -> Result<()> {
        let dev = self.running_mean.device();
        self.running_mean
            .set(&Tensor::zeros(self.channels, DType::F32, dev)?)?;
        self.running_var
            .set(&Tensor::ones(self.channels, DType::F32, dev)?)
    }

    fn per_channel(&self, t: &Tensor) -> Result<Tensor> {
        t.reshape((1, self.channels, 1, 1))
    }

    fn forward_train(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let count = n * h * w;
        // Channel-major `C × (N·H·W)`: every reduction, and the backward of every broadcast,
        // runs along the contiguous last dimension (much faster on candle's CPU kernels).
        let xt = x.transpose(0, 1)?.contiguous()?.reshape((c, count))?;
        let mean = xt.mean_keepdim(1)?;
        let centered = xt.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(1)?;
        let inv_std = (var.clone() + self.eps)?.sqrt()?.recip()?;
        let scale = inv_std.broadcast_mul(&self.weight.reshape((c, 1))?)?;
        let y = centered
            .broadcast_mul(&scale)?
            .broadcast_add(&self.bias.reshape((c, 1))?)?
            .reshape((c, n, h, w))?
            .transpose(0, 1)?
            .contiguous()?;
        self.update_running_stats(
            &mean.detach().flatten_all()?,
            &var.detach().flatten_all()?,
            count,
        )?;
        Ok(y)
    }

    /// Moves the running statistics toward a batch's mean and biased variance over `count`
    /// values per channel (the running variance is the unbiased one, as in PyTorch).
    /// Momentum 0 leaves them untouched (a recomputed forward pass must not move them twice).
    fn update_running_stats(&self, mean: &Tensor, biased_var: &Tensor, count: usize) -> Result<()> {
        let m = self.momentum.get();
        if m == 0.0 {
            return Ok(());
        }
        let unbiased = if count > 1 {
            count as f64 / (count - 1) as f64
        } else {
            1.0
        };
        let new_mean = ((self.running_mean.as_tensor() * (1.0 - m))? + (mean * m)?)?;
        let new_var =
            ((self.running_var.as_tensor() * (1.0 - m))? + ((biased_var * unbiased)? * m)?)?;
        self.running_mean.set(&new_mean)?;
        self.running_var.set(&new_var)
    }

    /// Training-mode forward on the fast CPU kernels, followed by ReLU when `relu`: the same
    /// output, gradients and running-statistics update as `forward_t(x, true)` (then `relu()`).
    pub fn forward_train_fused(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        let (n, _, h, w) = x.dims4()?;
        let (y, stats) = kernels::batch_norm_train(x, &self.weight, &self.bias, self.eps, relu)?;
        self.record_batch_stats(&stats, n * h * w)?;
        Ok(y)
    }

    /// Moves the running statistics toward the statistics a training forward on the fast
    /// kernels used, over `count` values per channel (as [`BatchNorm2d::forward_train_fused`]).
    pub(crate) fn record_batch_stats(&self, stats: &BnBatchStats, count: usize) -> Result<()> {
        let dev = self.running_mean.device();
        self.update_running_stats(
            &Tensor::from_slice(&stats.mean, self.channels, dev)?,
            &Tensor::from_slice(&stats.var, self.channels, dev)?,
            count,
        )
    }

    /// The scale `γ` (a variable).
    pub(crate) fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The shift `β` (a variable).
    pub(crate) fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// The `ε` added to the variance.
    pub(crate) fn eps(&self) -> f64 {
        self.eps
    }

    fn forward_eval(&self, x: &Tensor) -> Result<Tensor> {
        let scale = (self.running_var.as_tensor() + self.eps)?
            .sqrt()?
            .recip()?
            .mul(&self.weight)?;
        let shift = (&self.bias - self.running_mean.as_tensor().mul(&scale)?)?;
        x.broadcast_mul(&self.per_channel(&scale)?)?
            .broadcast_add(&self.per_channel(&shift)?)
    }
}

impl ModuleT for BatchNorm2d {
    /// Training mode normalises with the batch statistics (biased variance) and moves the running
    /// statistics (unbiased variance); evaluation mode uses the running statistics only.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            self.forward_train(x)
        } else {
            self.forward_eval(x)
        }
    }
}
