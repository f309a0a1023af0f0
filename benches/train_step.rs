//! One training step (forward + backward + SGD-momentum update + write-back) at batch 128 for
//! each model on the CPU. Threads: `RAYON_NUM_THREADS` (set it; candle reads it once).
//!
//! `cargo bench --bench train_step`; `benches/step_vs_torch.sh` compares with PyTorch.

use std::time::Duration;

use candle_core::Device;
use criterion::{criterion_group, Criterion};
use lagom::compute::StepBench;
use lagom::data::DatasetName;
use lagom::kernels::CpuKernels;
use lagom::model::{InputSpec, ModelName};

const BATCH: usize = 128;

fn input(data: DatasetName) -> InputSpec {
    let (channels, height, width, classes) = data.shape();
    InputSpec {
        channels,
        height,
        width,
        classes,
    }
}

fn training_step(c: &mut Criterion) {
    println!("{}", lagom::kernels::describe_cpu());
    println!("heap: {}", lagom::compute::describe_heap_pages());
    // As every lagom process does at start (main.rs).
    lagom::compute::keep_freed_tensor_buffers();
    let mut group = c.benchmark_group("train_step_b128_cpu");
    for (model, data, seconds) in [
        (ModelName::Mlp, DatasetName::FashionMnist, 5),
        (ModelName::Cnn, DatasetName::FashionMnist, 10),
        (ModelName::Resnet20, DatasetName::Cifar10, 60),
    ] {
        let mut bench =
            match StepBench::new(model, input(data), BATCH, &Device::Cpu, CpuKernels::Fast, 1) {
                Ok(b) => b,
                Err(e) => panic!("cannot build {}: {e:#}", model.as_str()),
            };
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(seconds));
        group.bench_function(model.as_str(), |b| {
            b.iter(|| {
                if let Err(e) = bench.step() {
                    panic!("step failed: {e:#}");
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, training_step);

/// `criterion_main!`'s body, after the restart onto the heap every lagom process runs on
/// (huge pages where the kernel grants them on request; `LAGOM_HUGE_PAGES=0` opts out).
fn main() {
    lagom::compute::restart_with_huge_page_heap();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
