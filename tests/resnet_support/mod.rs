//! A small ResNet-20 (3×12×12 inputs, 10 classes) and a seeded batch for it: what the tests of
//! the fast kernels, their instruction-set paths and the hand-written step train on.
#![allow(dead_code)] // each test binary that includes this module uses part of it

use candle_core::Device;
use lagom::compute::Engine;
use lagom::data::Batch;
use lagom::kernels::CpuKernels;
use lagom::model::{InputSpec, ModelName, Network};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The input every test network here takes.
pub const INPUT: InputSpec = InputSpec {
    channels: 3,
    height: 12,
    width: 12,
    classes: 10,
};

/// An engine over ResNet-20 for [`INPUT`] on `kernels`, parameters from `seed`.
pub fn tiny_resnet(kernels: CpuKernels, seed: u64) -> Engine {
    let net = Network::with_kernels(ModelName::Resnet20, INPUT, &Device::Cpu, seed, kernels)
        .expect("ResNet-20 builds");
    Engine::new(net)
}

/// `n` images of [`INPUT`]'s shape with values in [-2, 2) and labels, from `seed`.
pub fn random_batch(n: usize, seed: u64) -> Batch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (c, h, w) = (INPUT.channels, INPUT.height, INPUT.width);
    Batch {
        images: (0..n * c * h * w)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect(),
        labels: (0..n).map(|_| rng.random_range(0..10)).collect(),
        shape: (c, h, w),
    }
}
