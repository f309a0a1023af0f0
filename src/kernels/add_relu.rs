//! `max(a + b, 0)` elementwise — a residual block's sum and activation in one pass — and its
//! backward, which sends the output gradient to both addends where the output is positive.

use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

crate::simd_fn! {
    /// One chunk of [`add_relu_forward`].
    fn add_relu_chunk(y: &mut [f32], a: &[f32], b: &[f32]) {
        for ((y, a), b) in y.iter_mut().zip(a).zip(b) {
            *y = (a + b).max(0.0);
        }
    }
}

crate::simd_fn! {
    /// One chunk of [`relu_backward`]: `g` where `y > 0` (a bit mask, so it stays vectorized).
    fn relu_backward_chunk(d: &mut [f32], y: &[f32], g: &[f32]) {
        for ((d, y), g) in d.iter_mut().zip(y).zip(g) {
            *d = f32::from_bits(g.to_bits() & u32::from(*y > 0.0).wrapping_neg());
        }
    }
}

/// `max(a + b, 0)`; `a` and `b` have the same length.
pub fn add_relu_forward(a: &[f32], b: &[f32]) -> Vec<f32> {
    assert_eq!(a.len(), b.len());
    let mut y = vec![0.0f32; a.len()];
    y.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(y, (a, b))| add_relu_chunk(y, a, b));
    y
}

/// The gradient of either addend: `g` where the forward output `y` is positive, else 0.
pub fn relu_backward(y: &[f32], g: &[f32]) -> Vec<f32> {
    assert_eq!(y.len(), g.len());
    let mut d = vec![0.0f32; g.len()];
    d.par_chunks_mut(CHUNK)
        .zip(y.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
        .for_each(|(d, (y, g))| relu_backward_chunk(d, y, g));
    d
}
