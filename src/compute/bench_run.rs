//! `lagom bench`: times training steps of a model on this machine and prints, line by line, what
//! `benches/step_vs_torch.sh` reads (the CPU first, so a figure always names its machine).

use anyhow::Result;
use candle_core::Device;

use super::{describe, resident_memory, StepBench};
use crate::kernels::{describe_cpu, CpuKernels};
use crate::model::{ActivationMemory, InputSpec, ModelName};

/// What to time.
#[derive(Debug, Clone, Copy)]
pub struct BenchSpec {
    /// The model.
    pub model: ModelName,
    /// Its input.
    pub input: InputSpec,
    /// Examples per step.
    pub batch_size: usize,
    /// The CPU kernels it uses.
    pub kernels: CpuKernels,
    /// What its training steps hold for the backward pass.
    pub activations: ActivationMemory,
    /// Seed of the weights and the batch.
    pub seed: u64,
}

/// Times one warm-up step and then `steps` more (at least one) on `device`, printing each, the
/// median with images per second, and the peak resident memory; returns the median in seconds.
pub fn run_bench(spec: &BenchSpec, device: &Device, steps: usize) -> Result<f64> {
    let baseline = resident_memory();
    let mut bench = StepBench::new(
        spec.model,
        spec.input,
        spec.batch_size,
        device,
        spec.kernels,
        spec.seed,
    )?
    .with_activations(spec.activations);
    let InputSpec {
        channels,
        height,
        width,
        ..
    } = spec.input;
    println!("{}", describe_cpu());
    println!(
        "bench: {} ({} parameters), {channels}×{height}×{width} inputs, batch {}, device {}, \
         threads {}, cpu kernels {}, activations {}",
        spec.model.as_str(),
        bench.params(),
        spec.batch_size,
        describe(device),
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".to_string()),
        spec.kernels.as_str(),
        spec.activations.as_str(),
    );
    bench.step()?;
    let mut times = Vec::with_capacity(steps.max(1));
    for i in 0..steps.max(1) {
        let t = std::time::Instant::now();
        let loss = bench.step()?;
        times.push(t.elapsed().as_secs_f64());
        println!("step {i}: {:.4} s (loss {loss:.4})", times[i]);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "median_step_s {median:.4} images_per_s {:.1}",
        spec.batch_size as f64 / median
    );
    if let (Some(base), Some(end)) = (baseline, resident_memory()) {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        println!(
            "peak_rss_mib {:.1} above_start_mib {:.1}",
            mib(end.peak),
            mib(end.peak.saturating_sub(base.current))
        );
    }
    Ok(median)
}
