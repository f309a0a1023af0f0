//! `max(a + b, 0)` elementwise — a residual block's sum and activation in one pass — and its
//! backward, which sends the output gradient to both addends where the output is positive. Each
//! has an in-place form that writes over its first operand (no buffer of the activation's size).

use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

crate::simd_fn! {
    /// One chunk of [`add_relu_in_place`].
    fn add_relu_chunk(a: &mut [f32], b: &[f32]) {
        for (a, b) in a.iter_mut().zip(b) {
            *a = (*a + b).max(0.0);
        }
    }
}

crate::simd_fn! {
    /// One chunk of [`relu_mask_in_place`]: `g` where `y > 0` (a bit mask, so it stays vectorized).
    fn relu_mask_chunk(g: &mut [f32], y: &[f32]) {
        for (g, y) in g.iter_mut().zip(y) {
            *g = f32::from_bits(g.to_bits() & u32::from(*y > 0.0).wrapping_neg());
        }
    }
}

/// `a ← max(a + b, 0)`; `a` and `b` have the same length.
pub fn add_relu_in_place(a: &mut [f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    a.par_chunks_mut(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .for_each(|(a, b)| add_relu_chunk(a, b));
}

/// `max(a + b, 0)`; `a` and `b` have the same length.
pub fn add_relu_forward(a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut y = a.to_vec();
    add_relu_in_place(&mut y, b);
    y
}

/// `g ← g where y > 0, else 0`: the gradient through a ReLU whose output was `y`.
pub fn relu_mask_in_place(y: &[f32], g: &mut [f32]) {
    assert_eq!(y.len(), g.len());
    g.par_chunks_mut(CHUNK)
        .zip(y.par_chunks(CHUNK))
        .for_each(|(g, y)| relu_mask_chunk(g, y));
}

/// The gradient of either addend: `g` where the forward output `y` is positive, else 0.
pub fn relu_backward(y: &[f32], g: &[f32]) -> Vec<f32> {
    let mut d = g.to_vec();
    relu_mask_in_place(y, &mut d);
    d
}
