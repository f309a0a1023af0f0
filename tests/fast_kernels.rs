//! The fast CPU kernels against candle's own ops, the reference: values and gradients of
//! convolution (odd sizes, strides 1–3, padding 0–2, 1×1 and 3×3 and 5×5 kernels), batch norm
//! with and without the fused ReLU, the fused residual sum, and a whole ResNet-20 training step.

use candle_core::{DType, Device, Result, Tensor, Var};
use lagom::compute::{Engine, StepBench};
use lagom::kernels::{self, CpuKernels};
use lagom::model::{InputSpec, ModelName};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod resnet_support;
use resnet_support::{random_batch, tiny_resnet};

fn random(dims: &[usize], rng: &mut ChaCha8Rng) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

/// Largest absolute difference, relative to the largest magnitude of the reference.
fn rel_diff(fast: &Tensor, reference: &Tensor) -> f32 {
    assert_eq!(fast.dims(), reference.dims());
    let a = fast.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = reference.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    let diff = a
        .iter()
        .zip(&b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(diff.is_finite());
    diff / scale
}

fn assert_close(what: &str, fast: &Tensor, reference: &Tensor, tol: f32) {
    let d = rel_diff(fast, reference);
    assert!(d <= tol, "{what}: relative difference {d:e} > {tol:e}");
}

/// Output, input gradient and weight gradient of `conv`, for the loss `Σ y·r`.
fn conv_and_grads(
    x: &Var,
    w: &Var,
    r: &Tensor,
    conv: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> (Tensor, Tensor, Tensor) {
    let y = conv(x.as_tensor(), w.as_tensor()).unwrap();
    let grads = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = grads.get(x.as_tensor()).unwrap().clone();
    let dw = grads.get(w.as_tensor()).unwrap().clone();
    (y, dx, dw)
}

#[test]
fn convolution_matches_candle_in_values_and_both_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // (batch, cin, h, w, cout, k, stride, pad)
    for (n, cin, h, w, cout, k, stride, pad) in [
        (2, 3, 7, 5, 4, 3, 1, 1),
        (3, 5, 8, 8, 6, 3, 2, 1),
        (2, 4, 9, 7, 3, 3, 2, 1),
        (2, 4, 9, 7, 3, 1, 2, 0),
        (1, 2, 5, 5, 3, 1, 1, 0),
        (2, 3, 6, 6, 2, 3, 1, 0),
        (3, 2, 10, 13, 5, 5, 3, 2),
        (5, 16, 16, 16, 32, 3, 2, 1),
        (9, 16, 32, 32, 16, 3, 1, 1),
    ] {
        let x = Var::from_tensor(&random(&[n, cin, h, w], &mut rng)).unwrap();
        let wt = Var::from_tensor(&random(&[cout, cin, k, k], &mut rng)).unwrap();
        let oh = (h + 2 * pad - k) / stride + 1;
        let ow = (w + 2 * pad - k) / stride + 1;
        let r = random(&[n, cout, oh, ow], &mut rng);
        let fast = conv_and_grads(&x, &wt, &r, |x, w| kernels::conv2d(x, w, stride, pad));
        let reference = conv_and_grads(&x, &wt, &r, |x, w| x.conv2d(w, pad, stride, 1, 1));
        let case = format!("n{n} cin{cin} {h}×{w} cout{cout} k{k} s{stride} p{pad}");
        assert_close(&format!("{case} output"), &fast.0, &reference.0, 1e-5);
        assert_close(&format!("{case} input grad"), &fast.1, &reference.1, 1e-5);
        assert_close(&format!("{case} weight grad"), &fast.2, &reference.2, 1e-5);
    }
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    f64::from(
        (a * b)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
    )
}

/// Where candle's own backward fails (stride 3 with a remainder row: candle 0.11.1's
/// conv_transpose2d returns a 3×2×11×14 input gradient for a 3×2×11×13 input), the gradients are
/// checked by what makes them gradients of a bilinear loss: `Σ y·r = ⟨x, dx⟩ = ⟨w, dw⟩`.
#[test]
fn convolution_gradients_are_adjoint_where_candle_cannot_serve_as_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for (n, cin, h, w, cout, k, stride, pad) in
        [(3, 2, 11, 13, 5, 5, 3, 2), (2, 3, 8, 9, 4, 3, 3, 0)]
    {
        let x = Var::from_tensor(&random(&[n, cin, h, w], &mut rng)).unwrap();
        let wt = Var::from_tensor(&random(&[cout, cin, k, k], &mut rng)).unwrap();
        let y = x
            .as_tensor()
            .conv2d(wt.as_tensor(), pad, stride, 1, 1)
            .unwrap();
        let r = random(y.dims(), &mut rng);
        let (fy, dx, dw) = conv_and_grads(&x, &wt, &r, |x, w| kernels::conv2d(x, w, stride, pad));
        assert_close("output", &fy, &y, 1e-5);
        let loss = dot(&fy, &r);
        let (via_x, via_w) = (dot(x.as_tensor(), &dx), dot(wt.as_tensor(), &dw));
        assert!(
            (loss - via_x).abs() < 1e-4 * loss.abs().max(1.0),
            "{loss} vs ⟨x, dx⟩ {via_x}"
        );
        assert!(
            (loss - via_w).abs() < 1e-4 * loss.abs().max(1.0),
            "{loss} vs ⟨w, dw⟩ {via_w}"
        );
    }
}

#[test]
fn convolution_refuses_mismatched_shapes_with_a_clear_error() {
    let x = Tensor::zeros((2, 3, 8, 8), DType::F32, &Device::Cpu).unwrap();
    let w = Tensor::zeros((4, 2, 3, 3), DType::F32, &Device::Cpu).unwrap();
    let e = kernels::conv2d(&x, &w, 1, 1).unwrap_err().to_string();
    assert!(e.contains("3 channels") && e.contains("expects 2"), "{e}");
    let w = Tensor::zeros((4, 3, 5, 5), DType::F32, &Device::Cpu).unwrap();
    let small = Tensor::zeros((2, 3, 2, 2), DType::F32, &Device::Cpu).unwrap();
    let e = kernels::conv2d(&small, &w, 1, 0).unwrap_err().to_string();
    assert!(e.contains("does not fit"), "{e}");
    let e = kernels::conv2d(&x.to_dtype(DType::F64).unwrap(), &w, 1, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("f32 CPU"), "{e}");
}

/// Training-mode batch norm written with candle ops (biased variance), ReLU when `relu`.
fn bn_reference(x: &Tensor, gamma: &Tensor, beta: &Tensor, relu: bool) -> Tensor {
    let c = x.dim(1).unwrap();
    let mean = x.mean_keepdim((0, 2, 3)).unwrap();
    let centered = x.broadcast_sub(&mean).unwrap();
    let var = centered.sqr().unwrap().mean_keepdim((0, 2, 3)).unwrap();
    let y = centered
        .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
        .unwrap()
        .broadcast_mul(&gamma.reshape((1, c, 1, 1)).unwrap())
        .unwrap()
        .broadcast_add(&beta.reshape((1, c, 1, 1)).unwrap())
        .unwrap();
    if relu {
        y.relu().unwrap()
    } else {
        y
    }
}

#[test]
fn batch_norm_with_and_without_relu_matches_candle() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (n, c, h, w) in [(4, 3, 5, 7), (2, 16, 8, 8), (7, 5, 3, 3), (1, 4, 6, 5)] {
        for relu in [false, true] {
            // Shifted and scaled away from N(0, 1) so the statistics matter.
            let x = Var::from_tensor(
                &(random(&[n, c, h, w], &mut rng) * 3.0)
                    .unwrap()
                    .affine(1.0, 0.5)
                    .unwrap(),
            )
            .unwrap();
            let gamma =
                Var::from_tensor(&random(&[c], &mut rng).affine(1.0, 1.2).unwrap()).unwrap();
            let beta = Var::from_tensor(&random(&[c], &mut rng)).unwrap();
            let r = random(&[n, c, h, w], &mut rng);
            let grads_of = |y: &Tensor| {
                let g = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
                [x.as_tensor(), gamma.as_tensor(), beta.as_tensor()]
                    .map(|t| g.get(t).unwrap().clone())
            };
            let (fast, stats) = kernels::batch_norm_train(
                x.as_tensor(),
                gamma.as_tensor(),
                beta.as_tensor(),
                1e-5,
                relu,
            )
            .unwrap();
            let reference = bn_reference(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), relu);
            let case = format!("{n}×{c}×{h}×{w} relu={relu}");
            assert_close(&format!("{case} output"), &fast, &reference, 1e-5);
            let (gf, gr) = (grads_of(&fast), grads_of(&reference));
            for (name, (f, r)) in ["dx", "dgamma", "dbeta"].iter().zip(gf.iter().zip(&gr)) {
                assert_close(&format!("{case} {name}"), f, r, 1e-4);
            }
            let mean = x.as_tensor().mean((0, 2, 3)).unwrap();
            let stats_mean = Tensor::new(stats.mean.as_slice(), &Device::Cpu).unwrap();
            assert_close(&format!("{case} mean"), &stats_mean, &mean, 1e-5);
        }
    }
}

#[test]
fn fused_residual_sum_matches_add_then_relu() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let a = Var::from_tensor(&random(&[3, 4, 5, 7], &mut rng)).unwrap();
    let b = Var::from_tensor(&random(&[3, 4, 5, 7], &mut rng)).unwrap();
    let r = random(&[3, 4, 5, 7], &mut rng);
    let fast = kernels::add_relu(a.as_tensor(), b.as_tensor()).unwrap();
    let reference = (a.as_tensor() + b.as_tensor()).unwrap().relu().unwrap();
    assert_close("output", &fast, &reference, 0.0);
    for y in [&fast, &reference] {
        let g = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let ga = g.get(a.as_tensor()).unwrap();
        let gb = g.get(b.as_tensor()).unwrap();
        let expected = (&r * reference.gt(0.0).unwrap().to_dtype(DType::F32).unwrap()).unwrap();
        assert_close("grad a", ga, &expected, 0.0);
        assert_close("grad b", gb, &expected, 0.0);
    }
    let c = random(&[3, 4, 5, 6], &mut rng);
    assert!(kernels::add_relu(a.as_tensor(), &c).is_err());
}

#[test]
fn a_resnet20_training_step_matches_candle_ops_and_so_do_the_running_statistics() {
    let (fast, reference) = (
        tiny_resnet(CpuKernels::Fast, 5),
        tiny_resnet(CpuKernels::Candle, 5),
    );
    assert_eq!(fast.params().unwrap(), reference.params().unwrap());
    let batch = random_batch(6, 9);
    let (f, r) = (
        fast.gradient(&batch).unwrap(),
        reference.gradient(&batch).unwrap(),
    );
    assert!(
        (f.loss - r.loss).abs() < 1e-5 * r.loss.abs(),
        "{} vs {}",
        f.loss,
        r.loss
    );
    assert_eq!(f.correct, r.correct);
    let scale = r.grad.iter().fold(0.0f32, |m, g| m.max(g.abs()));
    let diff = f
        .grad
        .iter()
        .zip(&r.grad)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        scale > 0.0 && diff <= 1e-4 * scale,
        "gradient differs by {diff:e} (scale {scale:e})"
    );
    // Running statistics moved the same way: evaluation (which uses them) agrees.
    let layout = fast.network().layout();
    let names = layout.running_stat_names();
    assert!(!names.is_empty());
    let stats = |e: &Engine| e.network().layout().flatten_stats().unwrap();
    let (sf, sr) = (stats(&fast), stats(&reference));
    let d = sf
        .iter()
        .zip(&sr)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(d < 1e-4, "running statistics differ by {d:e}");
    let x = fast.tensors(&batch).unwrap().0;
    let eval_f = fast.network().forward_t(&x, false).unwrap();
    let eval_r = reference.network().forward_t(&x, false).unwrap();
    assert_close("evaluation logits", &eval_f, &eval_r, 1e-4);
}

#[test]
fn twenty_resnet20_sgd_steps_follow_the_candle_ops_trajectory() {
    let input = InputSpec {
        channels: 3,
        height: 10,
        width: 10,
        classes: 10,
    };
    let losses = |kernels| {
        let mut bench =
            StepBench::new(ModelName::Resnet20, input, 8, &Device::Cpu, kernels, 3).unwrap();
        (0..20).map(|_| bench.step().unwrap()).collect::<Vec<f64>>()
    };
    let (fast, reference) = (losses(CpuKernels::Fast), losses(CpuKernels::Candle));
    assert!(
        fast[19] < 0.5 * fast[0],
        "the batch is being fitted: {fast:?}"
    );
    for (step, (f, r)) in fast.iter().zip(&reference).enumerate() {
        assert!(
            (f - r).abs() <= 1e-3 * r.abs().max(1.0),
            "step {step}: {f} vs {r}"
        );
    }
}
