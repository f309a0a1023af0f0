//! ResNet-20 of He et al. 2016 (§4.2, the CIFAR network): a 3×3 stem with 16 channels, three
//! stages of three basic blocks at 16/32/64 channels (stride 2 at the start of stages 2 and 3),
//! batch norm, global average pooling and a linear classifier. Shortcuts that change shape are
//! 1×1 convolutions with batch norm (option B), as in `bench/torch_resnet20.py`.

use candle_core::{Result, Tensor};
use candle_nn::{conv2d_no_bias, linear, Conv2d, Conv2dConfig, Linear, ModuleT, VarBuilder};

use super::batch_norm::{BatchNorm2d, BnMomentum};

/// Convolution (no bias) followed by batch norm.
#[derive(Debug, Clone)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl ConvBn {
    fn new(
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        momentum: &BnMomentum,
        vb: VarBuilder,
    ) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: kernel / 2,
            stride,
            ..Default::default()
        };
        Ok(ConvBn {
            conv: conv2d_no_bias(cin, cout, kernel, cfg, vb.pp("conv"))?,
            bn: BatchNorm2d::new(cout, momentum.clone(), vb.pp("bn"))?,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        x.apply(&self.conv)?.apply_t(&self.bn, train)
    }
}

/// Two 3×3 conv-BN layers with a ReLU between, plus the shortcut, then ReLU.
#[derive(Debug, Clone)]
struct BasicBlock {
    first: ConvBn,
    second: ConvBn,
    shortcut: Option<ConvBn>,
}

impl BasicBlock {
    fn new(cin: usize, cout: usize, stride: usize, m: &BnMomentum, vb: VarBuilder) -> Result<Self> {
        let shortcut = if stride != 1 || cin != cout {
            Some(ConvBn::new(cin, cout, 1, stride, m, vb.pp("shortcut"))?)
        } else {
            None
        };
        Ok(BasicBlock {
            first: ConvBn::new(cin, cout, 3, stride, m, vb.pp("conv1"))?,
            second: ConvBn::new(cout, cout, 3, 1, m, vb.pp("conv2"))?,
            shortcut,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.first.forward_t(x, train)?.relu()?;
        let y = self.second.forward_t(&y, train)?;
        let skip = match &self.shortcut {
            Some(s) => s.forward_t(x, train)?,
            None => x.clone(),
        };
        (y + skip)?.relu()
    }
}

/// ResNet-20 for `channels`-channel images of any size ≥ 4×4 and any class count.
#[derive(Debug, Clone)]
pub struct ResNet20 {
    stem: ConvBn,
    blocks: Vec<BasicBlock>,
    fc: Linear,
}

impl ResNet20 {
    /// Creates the network under `vb` (names `stem.*`, `stage{1,2,3}.block{0,1,2}.*`, `fc.*`).
    pub fn new(
        channels: usize,
        classes: usize,
        momentum: &BnMomentum,
        vb: VarBuilder,
    ) -> Result<Self> {
        let stem = ConvBn::new(channels, 16, 3, 1, momentum, vb.pp("stem"))?;
        let mut blocks = Vec::with_capacity(9);
        let mut cin = 16;
        for (stage, cout) in [16usize, 32, 64].into_iter().enumerate() {
            for i in 0..3 {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                let vb = vb.pp(format!("stage{}", stage + 1)).pp(format!("block{i}"));
                blocks.push(BasicBlock::new(cin, cout, stride, momentum, vb)?);
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

impl ModuleT for ResNet20 {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut y = self.stem.forward_t(x, train)?.relu()?;
        for block in &self.blocks {
            y = block.forward_t(&y, train)?;
        }
        y.mean((2, 3))?.apply(&self.fc)
    }
}
