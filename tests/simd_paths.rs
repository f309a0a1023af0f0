//! Every instruction-set path of lagom's elementwise kernels that this CPU executes — baseline,
//! AVX2 + FMA, AVX-512 — forced in turn: batch norm forward and backward (with and without the
//! fused ReLU), the residual sum with ReLU and the ReLU mask on sizes that leave remainders, each
//! against the baseline path, and a whole ResNet-20 training step against candle's ops. One test
//! in its own binary: the forced path is process-wide.

use lagom::kernels::{self, BnShape, CpuKernels, SimdPath};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod resnet_support;
use resnet_support::{random_batch, tiny_resnet};

fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

/// Largest absolute difference relative to the reference's largest magnitude.
fn rel_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff.is_finite(), "a non-finite value");
    diff / scale
}

/// The elementwise kernels' outputs, concatenated, on seeded odd-sized inputs.
fn elementwise_outputs() -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let s = BnShape {
        batch: 3,
        channels: 5,
        plane: 7 * 9,
    };
    let x = random(s.len(), &mut rng);
    let g = random(s.len(), &mut rng);
    let gamma = random(s.channels, &mut rng);
    let beta = random(s.channels, &mut rng);
    let mut out = Vec::new();
    for relu in [false, true] {
        let (y, stats) = kernels::bn_train_forward(&x, &gamma, &beta, &s, 1e-5, relu);
        let (dx, dgamma, dbeta) = kernels::bn_train_backward(&x, &y, &g, &gamma, &stats, &s, relu);
        out.extend([y, dx, dgamma, dbeta, stats.mean, stats.var]);
    }
    let n = 3 * 16_411 + 5;
    let (a, b) = (random(n, &mut rng), random(n, &mut rng));
    let sum = kernels::add_relu_forward(&a, &b);
    out.push(kernels::relu_backward(&sum, &b));
    out.push(sum);
    out
}

fn resnet_step(kernels: CpuKernels) -> (f64, Vec<f32>) {
    let out = tiny_resnet(kernels, 5)
        .gradient(&random_batch(6, 9))
        .expect("a step");
    (out.loss, out.grad)
}

#[test]
fn every_available_simd_path_matches_the_baseline_and_candle() {
    let paths = kernels::available_simd_paths();
    assert_eq!(paths.first(), Some(&SimdPath::Baseline));
    assert_eq!(paths.last(), Some(&kernels::best_simd_path()));
    kernels::force_simd_path(Some(SimdPath::Baseline));
    assert_eq!(kernels::simd_path(), SimdPath::Baseline);
    let baseline = elementwise_outputs();
    let (candle_loss, candle_grad) = resnet_step(CpuKernels::Candle);
    for &path in &paths {
        kernels::force_simd_path(Some(path));
        assert_eq!(kernels::simd_path(), path, "the forced path is taken");
        for (i, (got, want)) in elementwise_outputs().iter().zip(&baseline).enumerate() {
            let d = rel_diff(got, want);
            assert!(d <= 1e-5, "{}: output {i} differs by {d:e}", path.as_str());
        }
        let (loss, grad) = resnet_step(CpuKernels::Fast);
        assert!(
            (loss - candle_loss).abs() <= 1e-5 * candle_loss.abs(),
            "{}: loss {loss} vs candle's {candle_loss}",
            path.as_str()
        );
        let d = rel_diff(&grad, &candle_grad);
        assert!(d <= 1e-4, "{}: gradient differs by {d:e}", path.as_str());
        println!("simd path {} checked", path.as_str());
    }
    // A path wider than the CPU's is capped, never taken.
    kernels::force_simd_path(Some(SimdPath::Avx512));
    assert!(kernels::simd_path() <= kernels::best_simd_path());
    kernels::force_simd_path(None);
    let default = kernels::simd_path_from_env().expect("LAGOM_SIMD, if set, is valid");
    assert_eq!(
        kernels::simd_path(),
        default.unwrap_or(kernels::best_simd_path())
    );
}
