//! A model chosen by name, with its variables, its flat layout and its batch-norm statistics.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::batch_norm::{BnMomentum, DEFAULT_BN_MOMENTUM};
use super::{resnet_step, ActivationMemory, Cnn, Mlp, ParamLayout, ResNet20};
use crate::kernels::CpuKernels;

/// The models, by their configuration names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ModelName {
    /// One hidden layer of 256 ReLU units: the fastest model.
    Mlp,
    /// Two conv-ReLU-pool stages and a small classifier.
    Cnn,
    /// ResNet-20 (He et al. 2016, §4.2).
    Resnet20,
}

impl ModelName {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelName::Mlp => "mlp",
            ModelName::Cnn => "cnn",
            ModelName::Resnet20 => "resnet20",
        }
    }
}

/// Hidden units of the `mlp`.
pub const MLP_HIDDEN: usize = 256;

/// What a model is built for: `channels × height × width` images in `classes` classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSpec {
    /// Image channels.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Number of classes.
    pub classes: usize,
}

impl InputSpec {
    /// What a model for `data` takes: its image shape and class count.
    pub fn of(data: &crate::data::Dataset) -> Self {
        InputSpec {
            channels: data.channels,
            height: data.height,
            width: data.width,
            classes: data.classes,
        }
    }
}

#[derive(Debug, Clone)]
enum Arch {
    Mlp(Mlp),
    Cnn(Cnn),
    ResNet20(ResNet20),
}

/// What one training step of a [`Network`] produced.
#[derive(Debug, Clone)]
pub struct TrainStep {
    /// The logits of the batch (detached).
    pub logits: Tensor,
    /// The scalar loss (detached).
    pub loss: Tensor,
    /// The gradient of the loss, in the layout's order.
    pub grad: Vec<f32>,
}

/// A built model: forward pass, flat layout, and control of its batch-norm running statistics.
#[derive(Debug, Clone)]
pub struct Network {
    name: ModelName,
    input: InputSpec,
    arch: Arch,
    layout: ParamLayout,
    momentum: BnMomentum,
    device: Device,
    kernels: CpuKernels,
}

impl Network {
    /// Builds `name` for `input` on `device` with parameters initialised from `seed`, on the
    /// fast CPU kernels where they apply.
    pub fn new(name: ModelName, input: InputSpec, device: &Device, seed: u64) -> Result<Self> {
        Self::with_kernels(name, input, device, seed, CpuKernels::default())
    }

    /// [`Network::new`] with the choice of CPU kernels (`compute.cpu_kernels`); a CUDA device
    /// always runs candle's ops.
    pub fn with_kernels(
        name: ModelName,
        input: InputSpec,
        device: &Device,
        seed: u64,
        kernels: CpuKernels,
    ) -> Result<Self> {
        if input.channels == 0 || input.classes < 2 {
            bail!("a model needs ≥ 1 channel and ≥ 2 classes, got {input:?}");
        }
        if name != ModelName::Mlp && (input.height < 4 || input.width < 4) {
            bail!(
                "{} needs images of at least 4×4, got {}×{}",
                name.as_str(),
                input.height,
                input.width
            );
        }
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let momentum = BnMomentum::new(DEFAULT_BN_MOMENTUM);
        let shape = (input.channels, input.height, input.width);
        let arch = match name {
            ModelName::Mlp => Arch::Mlp(Mlp::new(
                vb,
                input.channels * input.height * input.width,
                MLP_HIDDEN,
                input.classes,
            )?),
            ModelName::Cnn => Arch::Cnn(Cnn::new(shape, input.classes, kernels, vb)?),
            ModelName::Resnet20 => Arch::ResNet20(ResNet20::new(
                input.channels,
                input.classes,
                &momentum,
                kernels,
                vb,
            )?),
        };
        let layout = ParamLayout::from_varmap(&varmap)?;
        layout.init_seeded(seed)?;
        Ok(Network {
            name,
            input,
            arch,
            layout,
            momentum,
            device: device.clone(),
            kernels,
        })
    }

    /// Which model this is.
    pub fn name(&self) -> ModelName {
        self.name
    }

    /// The input the model was built for.
    pub fn input(&self) -> InputSpec {
        self.input
    }

    /// The device its tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// True when the model's layers run lagom's fast CPU kernels (ResNet-20 or the `cnn` on a CPU
    /// device with `compute.cpu_kernels = "fast"`); false where candle's ops do the work.
    pub fn uses_fast_kernels(&self) -> bool {
        matches!(&self.arch, Arch::ResNet20(_) | Arch::Cnn(_)) && self.kernels.fast_on(&self.device)
    }

    /// The flat parameter layout.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// True when the model has batch-norm layers (and so running statistics).
    pub fn has_batch_norm(&self) -> bool {
        !self.layout.running_stat_names().is_empty()
    }

    /// Logits for a batch `N × C × H × W`; `train` selects batch statistics (and moves the
    /// running statistics) or the running statistics.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        match &self.arch {
            Arch::Mlp(m) => x.apply(m),
            Arch::Cnn(m) => x.apply(m),
            Arch::ResNet20(m) => m.forward_t(x, train),
        }
    }

    /// A training step on `x`: the forward pass in training mode (running statistics moved
    /// once), `loss_of` on the logits, and the backward pass, holding activations as `memory`
    /// says. The flat gradient of the loss is the same either way.
    pub fn forward_backward(
        &self,
        x: &Tensor,
        memory: ActivationMemory,
        loss_of: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
    ) -> Result<TrainStep> {
        if let Arch::ResNet20(m) = &self.arch {
            if self.kernels.fast_on(&self.device) {
                let mut grad = vec![0.0f32; self.layout.len()];
                let keep = memory == ActivationMemory::Keep;
                let (logits, loss) =
                    resnet_step::train_step(m, x, keep, &self.layout, loss_of, &mut grad)?;
                return Ok(TrainStep { logits, loss, grad });
            }
        }
        if let (Arch::ResNet20(m), ActivationMemory::Recompute) = (&self.arch, memory) {
            let mut grad = vec![0.0f32; self.layout.len()];
            let (logits, loss) = m.backward_recomputed(x, &self.momentum, loss_of, |grads| {
                self.layout.fill_gradients(grads, &mut grad)
            })?;
            return Ok(TrainStep { logits, loss, grad });
        }
        let logits = self.forward_t(x, true)?;
        let loss = loss_of(&logits)?;
        let grad = self.layout.gradients(&loss.backward()?)?;
        Ok(TrainStep {
            logits: logits.detach(),
            loss: loss.detach(),
            grad,
        })
    }

    /// The forward pass in training mode (batch statistics, running statistics updated) without
    /// keeping an autograd graph: what recomputing the statistics needs.
    fn forward_stats(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.arch {
            Arch::ResNet20(m) => m.forward_graph(x, true, false),
            _ => self.forward_t(x, true),
        }
    }

    /// Recomputes the batch-norm running statistics of the current parameters as the exact
    /// average of the batch statistics over `batches` (precise BN): the statistics a model gets
    /// when its parameters come from elsewhere. A no-op for models without batch norm.
    pub fn recompute_bn_stats(&self, batches: &[Tensor]) -> Result<()> {
        if !self.has_batch_norm() {
            return Ok(());
        }
        if batches.is_empty() {
            bail!("recomputing batch-norm statistics needs at least one batch");
        }
        self.layout.reset_running_stats()?;
        let restore = self.momentum.get();
        let result = batches.iter().enumerate().try_for_each(|(i, x)| {
            self.momentum.set(1.0 / (i as f64 + 1.0));
            self.forward_stats(x)
                .map(drop)
                .with_context(|| format!("batch-norm recomputation, batch {i}"))
        });
        self.momentum.set(restore);
        result
    }
}
