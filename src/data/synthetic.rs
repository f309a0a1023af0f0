//! A generated image classification set: each of 10 classes is a random 1×16×16 prototype, and
//! each example is its class's prototype plus noise. Learnable, seeded, tiny.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Dataset, PixelStore, Split};

const SIDE: usize = 16;
const CLASSES: usize = 10;

/// `train` and `test` examples drawn from the same seeded prototypes.
pub fn synthetic(seed: u64, train: usize, test: usize) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5359_4e54);
    let prototypes: Vec<Vec<u8>> = (0..CLASSES)
        .map(|_| {
            (0..SIDE * SIDE)
                .map(|_| if rng.random_bool(0.5) { 200 } else { 40 })
                .collect()
        })
        .collect();
    let mut draw = |n: usize| {
        let mut pixels = Vec::with_capacity(n * SIDE * SIDE);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let class = rng.random_range(0..CLASSES);
            labels.push(class as u8);
            pixels.extend(prototypes[class].iter().map(|&p| {
                let noisy = i32::from(p) + rng.random_range(-90..=90);
                noisy.clamp(0, 255) as u8
            }));
        }
        Dataset {
            channels: 1,
            height: SIDE,
            width: SIDE,
            classes: CLASSES,
            pixels: PixelStore::Memory(pixels),
            labels,
            mean: vec![0.47],
            std: vec![0.33],
            augmentable: false,
        }
    };
    let train = draw(train);
    let test = draw(test);
    Split { train, test }
}
