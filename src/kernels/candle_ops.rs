//! The fast kernels as candle custom ops with their own backward, so they sit in an autograd
//! graph like any candle op. CPU and f32 only: callers choose them for CPU tensors and keep
//! candle's ops elsewhere (a CUDA tensor reaching them is an error, not a silent slow path).

use std::sync::{Arc, OnceLock};

use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, Device, Error, Layout, Result, Shape, Storage, Tensor,
};

use super::add_relu::{add_relu_forward, relu_backward};
use super::batch_norm::{bn_train_backward, bn_train_forward, BnBatchStats, BnShape};
use super::conv::{conv2d_forward, conv2d_input_grad, conv2d_weight_grad};
use super::relu_pool::{bias_relu_pool_backward, bias_relu_pool_forward};
use super::ConvShape;

/// The f32 values of a CPU storage seen through a contiguous layout (an error otherwise).
pub fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => Err(Error::Msg(format!("{op}: input is not contiguous"))),
    }
}

/// Runs `f` on the f32 values of a CPU tensor (made contiguous first if it is not); an error
/// naming `op` for a tensor on another device.
pub fn with_f32<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(f32_slice(cpu, layout, op)?),
        _ => Err(Error::Msg(format!(
            "{op}: the fast kernels run on CPU tensors only"
        ))),
    }
}

fn dims4(dims: &[usize], op: &str, what: &str) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(dims)
        .map_err(|_| Error::Msg(format!("{op}: {what} must have 4 dimensions, got {dims:?}")))
}

/// Convolution of `N × Cin × H × W` by `Cout × Cin × KH × KW`.
struct Conv2dOp {
    stride: usize,
    pad: usize,
}

impl Conv2dOp {
    fn shape(&self, x: &[usize], w: &[usize]) -> Result<ConvShape> {
        let [batch, cin, h, wd] = dims4(x, "fast-conv2d", "the input")?;
        let [cout, wcin, kh, kw] = dims4(w, "fast-conv2d", "the weight")?;
        if wcin != cin {
            return Err(Error::Msg(format!(
                "fast-conv2d: input has {cin} channels, weight expects {wcin}"
            )));
        }
        let s = ConvShape {
            batch,
            cin,
            h,
            w: wd,
            cout,
            kh,
            kw,
            stride: self.stride,
            pad: self.pad,
        };
        s.check()
            .map_err(|e| Error::Msg(format!("fast-conv2d: {e}")))?;
        Ok(s)
    }
}

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "fast-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let s = self.shape(xl.dims(), wl.dims())?;
        let x = f32_slice(xs, xl, self.name())?;
        let w = f32_slice(ws, wl, self.name())?;
        let y = conv2d_forward(x, w, &s);
        Ok((
            CpuStorage::F32(y),
            Shape::from((s.batch, s.cout, s.out_h(), s.out_w())),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let s = self.shape(x.dims(), w.dims())?;
        let name = self.name();
        let dx = if x.track_op() {
            let v = with_f32(g, name, |g| {
                with_f32(w, name, |w| Ok(conv2d_input_grad(g, w, &s)))
            })?;
            Some(Tensor::from_vec(v, x.shape(), &Device::Cpu)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            let v = with_f32(x, name, |x| {
                with_f32(g, name, |g| Ok(conv2d_weight_grad(x, g, &s)))
            })?;
            Some(Tensor::from_vec(v, w.shape(), &Device::Cpu)?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// Convolution (stride 1) of `N × Cin × H × W` by `Cout × Cin × KH × KW`, plus a bias per
/// output channel, ReLU and 2×2 max-pooling, in one op: only the pooled output and one byte per
/// pooled value (the maximum's position) outlive the forward pass.
struct ConvReluPoolOp {
    pad: usize,
    argmax: Arc<OnceLock<Vec<u8>>>,
}

impl ConvReluPoolOp {
    fn shape(&self, x: &[usize], w: &[usize], b: &[usize]) -> Result<ConvShape> {
        let s = Conv2dOp {
            stride: 1,
            pad: self.pad,
        }
        .shape(x, w)?;
        if b != [s.cout] {
            return Err(Error::Msg(format!(
                "fast-conv-relu-pool: {} output channels but bias {b:?}",
                s.cout
            )));
        }
        Ok(s)
    }
}

impl CustomOp3 for ConvReluPoolOp {
    fn name(&self) -> &'static str {
        "fast-conv-relu-pool"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let s = self.shape(xl.dims(), wl.dims(), bl.dims())?;
        let x = f32_slice(xs, xl, self.name())?;
        let w = f32_slice(ws, wl, self.name())?;
        let b = f32_slice(bs, bl, self.name())?;
        let z = conv2d_forward(x, w, &s);
        let (y, argmax) = bias_relu_pool_forward(&z, b, s.cout, s.out_h(), s.out_w());
        // A fresh op runs forward once; a second run would find the same maxima.
        let _ = self.argmax.set(argmax);
        Ok((
            CpuStorage::F32(y),
            Shape::from((s.batch, s.cout, s.out_h() / 2, s.out_w() / 2)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let s = self.shape(x.dims(), w.dims(), b.dims())?;
        let name = self.name();
        let argmax = self
            .argmax
            .get()
            .ok_or_else(|| Error::Msg(format!("{name}: backward before forward")))?;
        let (dz, db) = with_f32(g, name, |g| {
            with_f32(res, name, |y| {
                Ok(bias_relu_pool_backward(
                    g,
                    y,
                    argmax,
                    s.cout,
                    s.out_h(),
                    s.out_w(),
                ))
            })
        })?;
        let dx = if x.track_op() {
            let v = with_f32(w, name, |w| Ok(conv2d_input_grad(&dz, w, &s)))?;
            Some(Tensor::from_vec(v, x.shape(), &Device::Cpu)?)
        } else {
            None
        };
        let dw = with_f32(x, name, |x| Ok(conv2d_weight_grad(x, &dz, &s)))?;
        Ok((
            dx,
            Some(Tensor::from_vec(dw, w.shape(), &Device::Cpu)?),
            Some(Tensor::from_vec(db, b.shape(), &Device::Cpu)?),
        ))
    }
}

/// Batch norm in training mode (optionally with ReLU) over `x`, `γ`, `β`.
struct BatchNormOp {
    eps: f64,
    relu: bool,
    stats: Arc<OnceLock<BnBatchStats>>,
}

impl BatchNormOp {
    fn shape(x: &[usize], gamma: &[usize], beta: &[usize]) -> Result<BnShape> {
        let [batch, channels, h, w] = dims4(x, "fast-batch-norm", "the input")?;
        if gamma != [channels] || beta != [channels] {
            return Err(Error::Msg(format!(
                "fast-batch-norm: {channels} channels but weight {gamma:?} and bias {beta:?}"
            )));
        }
        Ok(BnShape {
            batch,
            channels,
            plane: h * w,
        })
    }
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "fast-batch-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let s = Self::shape(xl.dims(), gl.dims(), bl.dims())?;
        let x = f32_slice(xs, xl, self.name())?;
        let gamma = f32_slice(gs, gl, self.name())?;
        let beta = f32_slice(bs, bl, self.name())?;
        let (y, stats) = bn_train_forward(x, gamma, beta, &s, self.eps, self.relu);
        // A fresh op runs forward once; a second run would recompute identical statistics.
        let _ = self.stats.set(stats);
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let s = Self::shape(x.dims(), gamma.dims(), beta.dims())?;
        let stats = self
            .stats
            .get()
            .ok_or_else(|| Error::Msg("fast-batch-norm: backward before forward".into()))?;
        let name = self.name();
        let (dx, dgamma, dbeta) = with_f32(x, name, |x| {
            with_f32(res, name, |y| {
                with_f32(g, name, |g| {
                    with_f32(gamma, name, |gm| {
                        Ok(bn_train_backward(x, y, g, gm, stats, &s, self.relu))
                    })
                })
            })
        })?;
        let channels = gamma.shape();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), &Device::Cpu)?),
            Some(Tensor::from_vec(dgamma, channels, &Device::Cpu)?),
            Some(Tensor::from_vec(dbeta, channels, &Device::Cpu)?),
        ))
    }
}

/// `max(a + b, 0)`.
struct AddReluOp;

impl CustomOp2 for AddReluOp {
    fn name(&self) -> &'static str {
        "fast-add-relu"
    }

    fn cpu_fwd(
        &self,
        as_: &CpuStorage,
        al: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if al.shape() != bl.shape() {
            return Err(Error::Msg(format!(
                "fast-add-relu: shapes {:?} and {:?} differ",
                al.dims(),
                bl.dims()
            )));
        }
        let a = f32_slice(as_, al, self.name())?;
        let b = f32_slice(bs, bl, self.name())?;
        Ok((CpuStorage::F32(add_relu_forward(a, b)), al.shape().clone()))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = with_f32(res, self.name(), |y| {
            with_f32(g, self.name(), |g| Ok(relu_backward(y, g)))
        })?;
        let d = Tensor::from_vec(d, res.shape(), &Device::Cpu)?;
        Ok((Some(d.clone()), Some(d)))
    }
}

fn f32_cpu(t: &Tensor, op: &str) -> Result<Tensor> {
    if !t.device().is_cpu() || t.dtype() != candle_core::DType::F32 {
        return Err(Error::Msg(format!(
            "{op}: the fast kernels take f32 CPU tensors, got {:?} on {:?}",
            t.dtype(),
            t.device().location()
        )));
    }
    t.contiguous()
}

/// 2-D convolution (no bias) of `x` (`N × Cin × H × W`) by `w` (`Cout × Cin × KH × KW`) with the
/// given stride and zero padding; differentiable in both.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, pad: usize) -> Result<Tensor> {
    let op = Conv2dOp { stride, pad };
    f32_cpu(x, op.name())?.apply_op2(&f32_cpu(w, op.name())?, op)
}

/// `maxpool2x2(relu(conv2d(x, w, stride 1, pad) + b))` for `x` (`N × Cin × H × W`), `w`
/// (`Cout × Cin × KH × KW`) and `b` (`Cout`); differentiable in all three.
pub fn conv_bias_relu_pool(x: &Tensor, w: &Tensor, b: &Tensor, pad: usize) -> Result<Tensor> {
    let op = ConvReluPoolOp {
        pad,
        argmax: Arc::new(OnceLock::new()),
    };
    let name = op.name();
    f32_cpu(x, name)?.apply_op3(&f32_cpu(w, name)?, &f32_cpu(b, name)?, op)
}

/// Batch norm in training mode of `x` (`N × C × H × W`) with weight `gamma` and bias `beta`
/// (`C`), followed by ReLU when `relu`; returns the output and the batch statistics it used.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, BnBatchStats)> {
    let stats = Arc::new(OnceLock::new());
    let op = BatchNormOp {
        eps,
        relu,
        stats: stats.clone(),
    };
    let name = op.name();
    let y = f32_cpu(x, name)?.apply_op3(&f32_cpu(gamma, name)?, &f32_cpu(beta, name)?, op)?;
    let stats = stats
        .get()
        .cloned()
        .ok_or_else(|| Error::Msg("fast-batch-norm: forward left no statistics".into()))?;
    Ok((y, stats))
}

/// `max(a + b, 0)` for two tensors of one shape; differentiable in both.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let op = AddReluOp;
    f32_cpu(a, op.name())?.apply_op2(&f32_cpu(b, op.name())?, op)
}
