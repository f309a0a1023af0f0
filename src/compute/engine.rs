//! The compute of one node: a mini-batch in, loss, accuracy and the flat gradient out; a flat
//! parameter vector in, test loss and accuracy out.

use anyhow::{Context, Result};
use candle_core::{DType, Tensor, D};
use candle_nn::loss::cross_entropy;
use rand_chacha::ChaCha8Rng;

use crate::data::{Batch, Dataset};
use crate::model::{ActivationMemory, Network};

/// What one forward/backward pass produced.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutput {
    /// Mean cross-entropy over the batch.
    pub loss: f64,
    /// Examples whose arg-max logit was the label.
    pub correct: usize,
    /// Examples in the batch.
    pub samples: usize,
    /// The gradient of the mean loss, in the layout's order.
    pub grad: Vec<f32>,
}

/// Loss and accuracy of a model over a data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalOutput {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction of examples classified correctly.
    pub accuracy: f64,
    /// Examples evaluated.
    pub samples: usize,
}

/// A network and the operations a training node runs on it.
#[derive(Debug, Clone)]
pub struct Engine {
    net: Network,
    activations: ActivationMemory,
}

impl Engine {
    /// Wraps a built network; training steps keep their activations.
    pub fn new(net: Network) -> Self {
        Engine {
            net,
            activations: ActivationMemory::default(),
        }
    }

    /// The same engine with training steps holding activations as `activations` says
    /// (`compute.activations`).
    pub fn with_activations(self, activations: ActivationMemory) -> Self {
        Engine {
            activations,
            ..self
        }
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The current parameters, flat.
    pub fn params(&self) -> Result<Vec<f32>> {
        self.net.layout().flatten()
    }

    /// Replaces the parameters with a flat vector of the layout's length.
    pub fn set_params(&self, flat: &[f32]) -> Result<()> {
        self.net.layout().load(flat)
    }

    /// The batch's images and labels as tensors on the network's device.
    pub fn tensors(&self, batch: &Batch) -> Result<(Tensor, Tensor)> {
        let (c, h, w) = batch.shape;
        let dev = self.net.device();
        let x = Tensor::from_slice(&batch.images, (batch.len(), c, h, w), dev)
            .context("batch images do not match their shape")?;
        let y = Tensor::from_slice(&batch.labels, batch.len(), dev)?;
        Ok((x, y))
    }

    /// Forward in training mode (moving batch-norm running statistics) and backward: the loss,
    /// accuracy and flat gradient of the current parameters on `batch`.
    pub fn gradient(&self, batch: &Batch) -> Result<StepOutput> {
        let (x, y) = self.tensors(batch)?;
        let step = self
            .net
            .forward_backward(&x, self.activations, |logits| cross_entropy(logits, &y))?;
        Ok(StepOutput {
            loss: f64::from(step.loss.to_scalar::<f32>()?),
            correct: count_correct(&step.logits, &y)?,
            samples: batch.len(),
            grad: step.grad,
        })
    }

    /// The mean loss of the current parameters on `batch` (inference mode, no gradient).
    pub fn loss(&self, batch: &Batch) -> Result<f64> {
        let (x, y) = self.tensors(batch)?;
        let logits = self.net.forward_t(&x, false)?.detach();
        Ok(f64::from(cross_entropy(&logits, &y)?.to_scalar::<f32>()?))
    }

    /// Loss and accuracy of the current parameters and running statistics on `data`, in batches
    /// of `batch_size`, without augmentation.
    pub fn evaluate(&self, data: &Dataset, batch_size: usize) -> Result<EvalOutput> {
        let batch_size = batch_size.max(1);
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let indices: Vec<usize> = (0..data.len()).collect();
        for chunk in indices.chunks(batch_size) {
            let batch = data.batch(chunk, None::<&mut ChaCha8Rng>)?;
            let (x, y) = self.tensors(&batch)?;
            let logits = self.net.forward_t(&x, false)?.detach();
            let loss = cross_entropy(&logits, &y)?.to_scalar::<f32>()?;
            loss_sum += f64::from(loss) * chunk.len() as f64;
            correct += count_correct(&logits, &y)?;
        }
        let n = data.len().max(1) as f64;
        Ok(EvalOutput {
            loss: loss_sum / n,
            accuracy: correct as f64 / n,
            samples: data.len(),
        })
    }

    /// Recomputes the batch-norm running statistics from `batches` (see
    /// [`Network::recompute_bn_stats`]).
    pub fn recompute_bn_stats(&self, batches: &[Batch]) -> Result<()> {
        let xs = batches
            .iter()
            .map(|b| self.tensors(b).map(|(x, _)| x))
            .collect::<Result<Vec<_>>>()?;
        self.net.recompute_bn_stats(&xs)
    }

    /// Evaluates a parameter vector that came from elsewhere: loads it, recomputes the batch-norm
    /// statistics from `bn_batches` (training data), and evaluates on `data`.
    pub fn evaluate_params(
        &self,
        params: &[f32],
        bn_batches: &[Batch],
        data: &Dataset,
        batch_size: usize,
    ) -> Result<EvalOutput> {
        self.set_params(params)?;
        self.recompute_bn_stats(bn_batches)?;
        self.evaluate(data, batch_size)
    }
}

fn count_correct(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let predicted = logits.argmax(D::Minus1)?;
    let hits = predicted
        .eq(labels)?
        .to_dtype(DType::U32)?
        .sum_all()?
        .to_scalar::<u32>()?;
    Ok(hits as usize)
}
