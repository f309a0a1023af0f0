//! A small convolutional net for small nodes and fast tests: two conv-ReLU-maxpool stages and a
//! two-layer classifier. No batch norm: on candle's CPU ops it would cost ~70 % more per step,
//! and the net reaches ≥ 89 % on Fashion-MNIST without it (batch norm lives in ResNet-20).

use candle_core::{Result, Tensor};
use candle_nn::{conv2d, linear, Conv2d, Conv2dConfig, Linear, Module, VarBuilder};

use super::max_pool2x2;
use crate::kernels::{self, CpuKernels};

/// Channels of the first and second convolution.
const WIDTHS: [usize; 2] = [16, 32];
/// Width of the hidden classifier layer.
const HIDDEN: usize = 128;

/// `conv3×3(16)-ReLU-pool2 → conv3×3(32)-ReLU-pool2 → linear(128)-ReLU → linear(classes)`.
#[derive(Debug, Clone)]
pub struct Cnn {
    convs: Vec<Conv2d>,
    /// Each stage as one fused fast CPU op (convolution, bias, ReLU, pooling), else candle's.
    fast: bool,
    hidden: Linear,
    out: Linear,
}

impl Cnn {
    /// Creates the layers under `vb` (names `conv1.*`, `conv2.*`, `hidden.*`, `out.*`) for
    /// `channels × height × width` inputs (both sides ≥ 4).
    pub fn new(
        (channels, height, width): (usize, usize, usize),
        classes: usize,
        kernels: CpuKernels,
        vb: VarBuilder,
    ) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let mut convs = Vec::new();
        let mut cin = channels;
        for (i, &cout) in WIDTHS.iter().enumerate() {
            convs.push(conv2d(cin, cout, 3, cfg, vb.pp(format!("conv{}", i + 1)))?);
            cin = cout;
        }
        let features = cin * (height / 4) * (width / 4);
        Ok(Cnn {
            convs,
            fast: kernels.fast_on(vb.device()),
            hidden: linear(features, HIDDEN, vb.pp("hidden"))?,
            out: linear(HIDDEN, classes, vb.pp("out"))?,
        })
    }
}

impl Module for Cnn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = x.clone();
        for conv in &self.convs {
            y = match (self.fast, conv.bias()) {
                (true, Some(b)) => kernels::conv_bias_relu_pool(&y, conv.weight(), b, 1)?,
                _ => max_pool2x2(&y.apply(conv)?.relu()?)?,
            };
        }
        y.flatten_from(1)?
            .apply(&self.hidden)?
            .relu()?
            .apply(&self.out)
    }
}
