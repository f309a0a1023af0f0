//! The fast CPU kernels at ResNet-20's batch-128 shapes, one by one: where a training step's time
//! goes. Each convolution pass runs on the kernel this CPU's path picks (`direct-3x3` with AVX2
//! or wider) and then on `im2col-gemm` (the baseline path's), side by side; the ids name the
//! kernel. Threads: `RAYON_NUM_THREADS`. `cargo bench --bench kernels [-- FILTER]`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use lagom::kernels::{
    bn_train_backward, bn_train_forward, conv2d_forward, conv2d_input_grad, conv2d_weight_grad,
    conv_kernel_names, force_simd_path, BnShape, ConvShape, SimdPath,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 128;

fn random(len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn conv(c: &mut Criterion) {
    println!("{}", lagom::kernels::describe_cpu());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut group = c.benchmark_group("conv_b128");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    // (name, cin, size, cout, kernel, stride): the stage-1 and stage-2 layers, the stride-2 entries
    // of stages 2 and 3 with their 1×1 shortcuts, and the stage-3 layer.
    for (name, cin, size, cout, k, stride) in [
        ("s1_3x3", 16, 32, 16, 3, 1),
        ("s2_3x3", 32, 16, 32, 3, 1),
        ("s2_3x3_stride2", 16, 32, 32, 3, 2),
        ("s2_1x1_stride2", 16, 32, 32, 1, 2),
        ("s3_3x3", 64, 8, 64, 3, 1),
    ] {
        let s = ConvShape {
            batch: BATCH,
            cin,
            h: size,
            w: size,
            cout,
            kh: k,
            kw: k,
            stride,
            pad: k / 2,
        };
        let x = random(BATCH * s.in_image(), &mut rng);
        let w = random(s.weight_len(), &mut rng);
        let g = random(BATCH * s.out_image(), &mut rng);
        // Each pass on the kernel the CPU's path picks, then on im2col + gemm (the baseline
        // path's kernel) as the reference, side by side.
        let mut measured = Vec::new();
        for forced in [None, Some(SimdPath::Baseline)] {
            force_simd_path(forced);
            let [fwd, input, weight] = conv_kernel_names(&s);
            // A pass already measured on the same kernel (a gemm-only shape, or a CPU without
            // AVX2) is not measured twice.
            let mut first = |id: String| {
                let new = !measured.contains(&id);
                measured.push(id.clone());
                new.then_some(id)
            };
            if let Some(id) = first(format!("{name}/forward/{fwd}")) {
                group.bench_function(id, |b| b.iter(|| conv2d_forward(&x, &w, &s)));
            }
            if let Some(id) = first(format!("{name}/input_grad/{input}")) {
                group.bench_function(id, |b| b.iter(|| conv2d_input_grad(&g, &w, &s)));
            }
            if let Some(id) = first(format!("{name}/weight_grad/{weight}")) {
                group.bench_function(id, |b| b.iter(|| conv2d_weight_grad(&x, &g, &s)));
            }
        }
        force_simd_path(None);
    }
    group.finish();
}

fn batch_norm(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut group = c.benchmark_group("batch_norm_relu_b128");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let s = BnShape {
        batch: BATCH,
        channels: 16,
        plane: 32 * 32,
    };
    let x = random(s.len(), &mut rng);
    let g = random(s.len(), &mut rng);
    let (gamma, beta) = (vec![1.0f32; 16], vec![0.0f32; 16]);
    let (y, stats) = bn_train_forward(&x, &gamma, &beta, &s, 1e-5, true);
    group.bench_function("s1/forward", |b| {
        b.iter(|| bn_train_forward(&x, &gamma, &beta, &s, 1e-5, true))
    });
    group.bench_function("s1/backward", |b| {
        b.iter(|| bn_train_backward(&x, &y, &g, &gamma, &stats, &s, true))
    });
    group.finish();
}

criterion_group!(benches, conv, batch_norm);
criterion_main!(benches);
