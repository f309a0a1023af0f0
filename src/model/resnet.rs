//! ResNet-20 of He et al. 2016 (§4.2, the CIFAR network): a 3×3 stem with 16 channels, three
//! stages of three basic blocks at 16/32/64 channels (stride 2 at the start of stages 2 and 3),
//! batch norm, global average pooling and a linear classifier. Shortcuts that change shape are
//! 1×1 convolutions with batch norm (option B), as in `benches/torch_resnet20.py`.

use anyhow::Context;
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::{conv2d_no_bias, linear, Conv2d, Conv2dConfig, Linear, ModuleT, VarBuilder};

use super::batch_norm::{BatchNorm2d, BnMomentum};
use crate::kernels::{self, CpuKernels};

/// Convolution (no bias) followed by batch norm, and optionally ReLU; on the fast kernels when
/// `fast` (fused batch norm + ReLU in training), on candle's ops otherwise.
#[derive(Debug, Clone)]
pub(super) struct ConvBn {
    pub(super) conv: Conv2d,
    pub(super) bn: BatchNorm2d,
    pub(super) stride: usize,
    pub(super) pad: usize,
    fast: bool,
}

impl ConvBn {
    fn new(
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        momentum: &BnMomentum,
        kernels: CpuKernels,
        vb: VarBuilder,
    ) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: kernel / 2,
            stride,
            ..Default::default()
        };
        Ok(ConvBn {
            fast: kernels.fast_on(vb.device()),
            conv: conv2d_no_bias(cin, cout, kernel, cfg, vb.pp("conv"))?,
            bn: BatchNorm2d::new(cout, momentum.clone(), vb.pp("bn"))?,
            stride,
            pad: kernel / 2,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        let y = if self.fast {
            let y = kernels::conv2d(x, self.conv.weight(), self.stride, self.pad)?;
            if train {
                return self.bn.forward_train_fused(&y, relu);
            }
            y.apply_t(&self.bn, false)?
        } else {
            x.apply(&self.conv)?.apply_t(&self.bn, train)?
        };
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }
}

/// Two 3×3 conv-BN layers with a ReLU between, plus the shortcut, then ReLU.
#[derive(Debug, Clone)]
pub(super) struct BasicBlock {
    pub(super) first: ConvBn,
    pub(super) second: ConvBn,
    pub(super) shortcut: Option<ConvBn>,
    fast: bool,
}

impl BasicBlock {
    fn new(
        cin: usize,
        cout: usize,
        stride: usize,
        m: &BnMomentum,
        kernels: CpuKernels,
        vb: VarBuilder,
    ) -> Result<Self> {
        let shortcut = if stride != 1 || cin != cout {
            Some(ConvBn::new(
                cin,
                cout,
                1,
                stride,
                m,
                kernels,
                vb.pp("shortcut"),
            )?)
        } else {
            None
        };
        Ok(BasicBlock {
            fast: kernels.fast_on(vb.device()),
            first: ConvBn::new(cin, cout, 3, stride, m, kernels, vb.pp("conv1"))?,
            second: ConvBn::new(cout, cout, 3, 1, m, kernels, vb.pp("conv2"))?,
            shortcut,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.first.forward_t(x, train, true)?;
        let y = self.second.forward_t(&y, train, false)?;
        let skip = match &self.shortcut {
            Some(s) => s.forward_t(x, train, false)?,
            None => x.clone(),
        };
        if self.fast {
            kernels::add_relu(&y, &skip)
        } else {
            (y + skip)?.relu()
        }
    }
}

/// ResNet-20 for `channels`-channel images of any size ≥ 4×4 and any class count.
#[derive(Debug, Clone)]
pub struct ResNet20 {
    pub(super) stem: ConvBn,
    pub(super) blocks: Vec<BasicBlock>,
    pub(super) fc: Linear,
}

impl ResNet20 {
    /// Creates the network under `vb` (names `stem.*`, `stage{1,2,3}.block{0,1,2}.*`, `fc.*`),
    /// on the fast kernels when `kernels` says so and `vb` is on the CPU.
    pub fn new(
        channels: usize,
        classes: usize,
        momentum: &BnMomentum,
        kernels: CpuKernels,
        vb: VarBuilder,
    ) -> Result<Self> {
        let stem = ConvBn::new(channels, 16, 3, 1, momentum, kernels, vb.pp("stem"))?;
        let mut blocks = Vec::with_capacity(9);
        let mut cin = 16;
        for (stage, cout) in [16usize, 32, 64].into_iter().enumerate() {
            for i in 0..3 {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                let vb = vb.pp(format!("stage{}", stage + 1)).pp(format!("block{i}"));
                blocks.push(BasicBlock::new(cin, cout, stride, momentum, kernels, vb)?);
                cin = cout;
            }
        }
        Ok(ResNet20 {
            stem,
            blocks,
            fc: linear(64, classes, vb.pp("fc"))?,
        })
    }
}

impl ResNet20 {
    /// The forward pass with batch norm on batch statistics (`train`) or running ones, keeping
    /// the autograd graph only when `graph` (training needs it; evaluation and the
    /// recomputation of batch-norm statistics do not). Ops on the weights (variables) record
    /// the graph even when nothing will ask for a gradient, which keeps every block's
    /// activations alive until the output is dropped (measured: 1.9 GB for an evaluation batch
    /// of 500); without `graph` it is cut after each block, so each block's activations are
    /// freed once the next one has run.
    pub fn forward_graph(&self, x: &Tensor, train: bool, graph: bool) -> Result<Tensor> {
        let cut = |y: Tensor| if graph { y } else { y.detach() };
        let mut y = cut(self.stem.forward_t(x, train, true)?);
        for block in &self.blocks {
            y = cut(block.forward_t(&y, train)?);
        }
        y.mean((2, 3))?.apply(&self.fc)
    }
}

impl ResNet20 {
    /// A training step with activations recomputed ([`ActivationMemory::Recompute`]): a forward
    /// pass that keeps only each block's input, the head (pooling, classifier, `loss_of`)
    /// differentiated alone, then each block from the last recomputed from its input and
    /// differentiated against the gradient of its output, then the stem. `take` receives each
    /// segment's gradients (head, blocks last to first, stem), each over that segment's
    /// variables only. The running statistics move once, in the first forward pass (`momentum`
    /// is 0 while blocks are recomputed and restored after). Returns the logits and the loss,
    /// both detached.
    ///
    /// [`ActivationMemory::Recompute`]: super::ActivationMemory::Recompute
    pub fn backward_recomputed(
        &self,
        x: &Tensor,
        momentum: &BnMomentum,
        loss_of: impl FnOnce(&Tensor) -> Result<Tensor>,
        mut take: impl FnMut(&GradStore) -> anyhow::Result<()>,
    ) -> anyhow::Result<(Tensor, Tensor)> {
        let mut inputs = Vec::with_capacity(self.blocks.len());
        let mut y = self.stem.forward_t(x, true, true)?.detach();
        for block in &self.blocks {
            let next = block.forward_t(&y, true)?.detach();
            inputs.push(y);
            y = next;
        }
        let features = Var::from_tensor(&y)?;
        drop(y);
        let logits = features.as_tensor().mean((2, 3))?.apply(&self.fc)?;
        let loss = loss_of(&logits)?;
        let grads = loss.backward()?;
        take(&grads)?;
        let mut upstream = grads
            .get(features.as_tensor())
            .context("the backward pass gave no gradient for the pooled features")?
            .clone();
        drop(grads);
        let (logits, loss) = (logits.detach(), loss.detach());
        let restore = momentum.get();
        momentum.set(0.0);
        let mut recompute = || -> anyhow::Result<()> {
            for (i, block) in self.blocks.iter().enumerate().rev() {
                // The stored input is freed here; the variable is a copy that records the graph.
                let input = Var::from_tensor(&inputs.pop().context("a block input is missing")?)?;
                let out = block.forward_t(input.as_tensor(), true)?;
                let grads = (out * &upstream)?.sum_all()?.backward()?;
                take(&grads)?;
                upstream = grads
                    .get(input.as_tensor())
                    .with_context(|| format!("the backward pass gave no gradient into block {i}"))?
                    .clone();
            }
            let out = self.stem.forward_t(x, true, true)?;
            take(&(out * &upstream)?.sum_all()?.backward()?)
        };
        let result = recompute();
        momentum.set(restore);
        result.map(|()| (logits, loss))
    }
}

impl ModuleT for ResNet20 {
    /// Training keeps the graph; inference does not (see [`ResNet20::forward_graph`]).
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_graph(x, train, train)
    }
}
