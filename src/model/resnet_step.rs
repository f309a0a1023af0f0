//! ResNet-20's training step on the fast CPU kernels without candle's autograd. Each layer's
//! forward runs on slices and returns what its backward needs (a tape); the backward runs layer
//! by layer by hand, writes each parameter's gradient straight into the flat vector and frees
//! every buffer as soon as it has been used — no zero tensor and sum per gradient, no graph.
//! With [`ActivationMemory::Keep`] the tapes of every block are kept; with
//! [`ActivationMemory::Recompute`] only each block's input is, and the backward pass recomputes
//! one block at a time (without moving the running statistics a second time). The kernels are
//! those of the candle custom ops, called in the same order on the same values, so the step
//! equals the autograd step over those ops bit for bit (tests/activation_recompute.rs).
//!
//! [`ActivationMemory::Keep`]: super::ActivationMemory::Keep
//! [`ActivationMemory::Recompute`]: super::ActivationMemory::Recompute

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use candle_nn::Module;

use super::layout::ParamLayout;
use super::resnet::{BasicBlock, ConvBn, ResNet20};
use crate::kernels::{self, BnBatchStats, BnShape, ConvShape};

/// Op name in error messages.
const OP: &str = "resnet20-step";

/// NCHW values with their dimensions.
struct Activation {
    values: Vec<f32>,
    dims: [usize; 4],
}

impl Activation {
    /// The values of a CPU tensor of 4 dimensions.
    fn of(t: &Tensor) -> Result<Self> {
        let (n, c, h, w) = t.dims4()?;
        let values = kernels::with_f32(t, OP, |v| Ok(v.to_vec()))?;
        Ok(Activation {
            values,
            dims: [n, c, h, w],
        })
    }
}

/// What a conv + batch-norm layer's backward needs: the convolution's output (the batch norm's
/// input), the batch statistics and both shapes.
struct LayerTape {
    conv_out: Vec<f32>,
    stats: BnBatchStats,
    conv: ConvShape,
    bn: BnShape,
}

/// What a basic block's backward needs besides its input and output.
struct BlockTape {
    first: LayerTape,
    /// The first layer's output (after its ReLU): the second convolution's input.
    hidden: Vec<f32>,
    second: LayerTape,
    shortcut: Option<LayerTape>,
}

/// Writes parameter gradients into their places in the flat gradient vector.
struct GradSink<'a> {
    layout: &'a ParamLayout,
    flat: &'a mut [f32],
}

impl GradSink<'_> {
    fn put(&mut self, param: &Tensor, values: &[f32]) -> Result<()> {
        self.layout.write_gradient(param, values, self.flat)
    }
}

/// Conv + batch norm (+ ReLU) forward of `x`; moves the running statistics when `record`.
fn layer_forward(
    l: &ConvBn,
    x: &Activation,
    relu: bool,
    record: bool,
) -> Result<(Activation, LayerTape)> {
    let [batch, cin, h, w] = x.dims;
    let (cout, wcin, kh, kw) = l.conv.weight().dims4()?;
    if wcin != cin {
        bail!("{OP}: a layer expects {wcin} input channels, got {cin}");
    }
    let conv = ConvShape {
        batch,
        cin,
        h,
        w,
        cout,
        kh,
        kw,
        stride: l.stride,
        pad: l.pad,
    };
    conv.check().map_err(|e| anyhow::anyhow!("{OP}: {e}"))?;
    let conv_out = kernels::with_f32(l.conv.weight(), OP, |wt| {
        Ok(kernels::conv2d_forward(&x.values, wt, &conv))
    })?;
    let bn = BnShape {
        batch,
        channels: cout,
        plane: conv.out_plane(),
    };
    let (values, stats) = kernels::with_f32(l.bn.weight(), OP, |gamma| {
        kernels::with_f32(l.bn.bias(), OP, |beta| {
            Ok(kernels::bn_train_forward(
                &conv_out,
                gamma,
                beta,
                &bn,
                l.bn.eps(),
                relu,
            ))
        })
    })?;
    if record {
        l.bn.record_batch_stats(&stats, bn.per_channel())?;
    }
    let out = Activation {
        values,
        dims: [batch, cout, conv.out_h(), conv.out_w()],
    };
    Ok((
        out,
        LayerTape {
            conv_out,
            stats,
            conv,
            bn,
        },
    ))
}

/// The backward of [`layer_forward`]: `grad` — the gradient of the layer's output, already
/// masked by its ReLU if it has one (consumed) — becomes the batch norm's input gradient in
/// place; the three parameter gradients go to `sink`; returns the gradient of the layer's input
/// `x` when `input_grad`.
fn layer_backward(
    l: &ConvBn,
    x: &[f32],
    tape: LayerTape,
    mut grad: Vec<f32>,
    input_grad: bool,
    sink: &mut GradSink,
) -> Result<Option<Vec<f32>>> {
    let LayerTape {
        conv_out,
        stats,
        conv,
        bn,
    } = tape;
    let (dgamma, dbeta) = kernels::with_f32(l.bn.weight(), OP, |gamma| {
        Ok(kernels::bn_train_backward_in_place(
            &conv_out,
            &[],
            &mut grad,
            gamma,
            &stats,
            &bn,
            false,
        ))
    })?;
    drop(conv_out);
    sink.put(l.bn.weight(), &dgamma)?;
    sink.put(l.bn.bias(), &dbeta)?;
    let dx = if input_grad {
        Some(kernels::with_f32(l.conv.weight(), OP, |wt| {
            Ok(kernels::conv2d_input_grad(&grad, wt, &conv))
        })?)
    } else {
        None
    };
    sink.put(
        l.conv.weight(),
        &kernels::conv2d_weight_grad(x, &grad, &conv),
    )?;
    Ok(dx)
}

/// A basic block's forward: its output and its tape.
fn block_forward(b: &BasicBlock, x: &Activation, record: bool) -> Result<(Activation, BlockTape)> {
    let (hidden, first) = layer_forward(&b.first, x, true, record)?;
    let (mut out, second) = layer_forward(&b.second, &hidden, false, record)?;
    let shortcut = match &b.shortcut {
        Some(s) => {
            let (skip, tape) = layer_forward(s, x, false, record)?;
            kernels::add_relu_in_place(&mut out.values, &skip.values);
            Some(tape)
        }
        None => {
            kernels::add_relu_in_place(&mut out.values, &x.values);
            None
        }
    };
    Ok((
        out,
        BlockTape {
            first,
            hidden: hidden.values,
            second,
            shortcut,
        },
    ))
}

/// A basic block's backward from its input `x`, its output `out` and its tape, given the
/// gradient of its output (consumed); returns the gradient of its input. Each buffer is
/// dropped once its last use is behind (the output after its mask, the hidden activation after
/// the second convolution's weight gradient and the first layer's mask).
fn block_backward(
    b: &BasicBlock,
    x: &[f32],
    out: Vec<f32>,
    tape: BlockTape,
    mut grad: Vec<f32>,
    sink: &mut GradSink,
) -> Result<Vec<f32>> {
    kernels::relu_mask_in_place(&out, &mut grad);
    drop(out);
    let BlockTape {
        first,
        hidden,
        second,
        shortcut,
    } = tape;
    // The residual path first: its gradient starts the input's.
    let mut dx = match (&b.shortcut, shortcut) {
        (Some(s), Some(t)) => layer_backward(s, x, t, grad.clone(), true, sink)?
            .context("the shortcut gave no input gradient")?,
        (None, None) => grad.clone(),
        _ => bail!("{OP}: a block's tape does not match its shortcut"),
    };
    let mut dhidden = layer_backward(&b.second, &hidden, second, grad, true, sink)?
        .context("the second layer gave no input gradient")?;
    kernels::relu_mask_in_place(&hidden, &mut dhidden);
    drop(hidden);
    let dx_first = layer_backward(&b.first, x, first, dhidden, true, sink)?
        .context("the first layer gave no input gradient")?;
    dx.iter_mut().zip(&dx_first).for_each(|(d, e)| *d += e);
    Ok(dx)
}

/// A training step of `net` on the images `x` (a CPU tensor `N × C × H × W`): the forward pass
/// (running statistics moved once), `loss_of` on the logits, and the backward pass, keeping
/// every block's tape (`keep`) or recomputing each block from its input. Writes the gradient of
/// every parameter into `grad` (the layout's length) and returns the logits and the loss.
pub(super) fn train_step(
    net: &ResNet20,
    x: &Tensor,
    keep: bool,
    layout: &ParamLayout,
    loss_of: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
    grad: &mut [f32],
) -> Result<(Tensor, Tensor)> {
    let mut sink = GradSink { layout, flat: grad };
    let image = Activation::of(x)?;
    // `acts[0]` is the stem's output, `acts[i + 1]` block i's: each block's input and output.
    let (stem_out, stem_tape) = layer_forward(&net.stem, &image, true, true)?;
    let mut acts = vec![stem_out];
    let mut tapes = Vec::with_capacity(if keep { net.blocks.len() } else { 0 });
    for block in &net.blocks {
        let input = acts.last().context("no block input")?;
        let (out, tape) = block_forward(block, input, true)?;
        acts.push(out);
        if keep {
            tapes.push(tape);
        }
    }
    let stem_tape = keep.then_some(stem_tape);

    // The head (pooling, classifier, loss) through candle's autograd: small, and `loss_of` is
    // any candle function of the logits.
    let last = acts.last().context("no features")?;
    let features = Var::from_tensor(&Tensor::from_slice(
        &last.values,
        last.dims.to_vec(),
        &Device::Cpu,
    )?)?;
    let logits = net.fc.forward(&features.as_tensor().mean((2, 3))?)?;
    let loss = loss_of(&logits)?;
    let grads = loss.backward()?;
    layout.fill_gradients(&grads, sink.flat)?;
    let mut upstream = grads
        .get(features.as_tensor())
        .context("the backward pass gave no gradient for the pooled features")?
        .flatten_all()?
        .to_vec1::<f32>()?;
    drop(grads);
    drop(features);
    let (logits, loss) = (logits.detach(), loss.detach());

    for (i, block) in net.blocks.iter().enumerate().rev() {
        let stored_out = acts.pop().context("a block output is missing")?;
        let input = acts.last().context("a block input is missing")?;
        let (out, tape) = if keep {
            (stored_out, tapes.pop().context("a block tape is missing")?)
        } else {
            drop(stored_out);
            block_forward(block, input, false)?
        };
        upstream = block_backward(block, &input.values, out.values, tape, upstream, &mut sink)
            .with_context(|| format!("the backward pass of block {i}"))?;
    }
    let stem_out = acts.pop().context("the stem's output is missing")?;
    let (stem_out, stem_tape) = match stem_tape {
        Some(tape) => (stem_out, tape),
        None => {
            drop(stem_out);
            layer_forward(&net.stem, &image, true, false)?
        }
    };
    kernels::relu_mask_in_place(&stem_out.values, &mut upstream);
    drop(stem_out);
    layer_backward(
        &net.stem,
        &image.values,
        stem_tape,
        upstream,
        false,
        &mut sink,
    )?;
    Ok((logits, loss))
}
