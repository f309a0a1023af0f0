//! Convolution forward, input gradient and weight gradient on the CPU as matrix products: im2col
//! of one image at a time into a thread-local buffer, then one `gemm` call (the crate candle's own
//! matmul uses), single-threaded inside, with the images of the batch spread over rayon's threads.
//!
//! Per image, with `X` its `patch × positions` patch matrix, `W` the `cout × patch` weight and
//! `Y`/`G` the `cout × positions` output and output gradient:
//! forward `Y = W·X`; input gradient `col2im(Wᵀ·G)`; weight gradient `Σ_images G·Xᵀ`.
//! The passes the private module `conv3x3` computes directly (3×3, padding 1, on AVX2 or wider)
//! are handed to it; these functions are the entry points either way.

use gemm::Parallelism;
use rayon::prelude::*;

use super::{conv3x3, ConvShape};

/// `dst (m×n) = [dst +] lhs (m×k) · rhs (k×n)` for row-major slices with the given row strides
/// (`lhs_t`/`rhs_t`: the operand is stored transposed, i.e. as `k×m` / `n×k` row-major).
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_t: bool,
    rhs: &[f32],
    rhs_t: bool,
) {
    assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    let (lhs_cs, lhs_rs) = if lhs_t { (m, 1) } else { (1, k) };
    let (rhs_cs, rhs_rs) = if rhs_t { (k, 1) } else { (1, n) };
    // SAFETY: the assertion above keeps every index the strides reach inside the slices; `dst`
    // is borrowed mutably and does not alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// The kernels that compute `s`'s forward, input gradient and weight gradient on the
/// instruction-set path taken now: `"direct-3x3"` (3×3, padding 1, stride 1 or 2, with AVX2 +
/// FMA or wider) or `"im2col-gemm"` (every other shape and path).
pub fn conv_kernel_names(s: &ConvShape) -> [&'static str; 3] {
    let name = |direct: bool| if direct { "direct-3x3" } else { "im2col-gemm" };
    let direct = conv3x3::handles(s);
    [
        name(direct),
        name(conv3x3::handles_input_grad(s)),
        name(direct),
    ]
}

/// Images per rayon task: enough tasks to balance the threads, few enough to reuse buffers.
pub(super) fn images_per_task(batch: usize) -> usize {
    let tasks = 4 * rayon::current_num_threads().max(1);
    batch.div_ceil(tasks).max(1)
}

/// The output `batch × cout × out_h × out_w` of convolving `x` (`batch × cin × h × w`) with `w`
/// (`cout × cin × kh × kw`). Slices must have exactly the lengths `s` implies.
pub fn conv2d_forward(x: &[f32], w: &[f32], s: &ConvShape) -> Vec<f32> {
    assert_eq!(x.len(), s.batch * s.in_image());
    assert_eq!(w.len(), s.weight_len());
    if conv3x3::handles(s) {
        return conv3x3::forward(x, w, s);
    }
    let (patch, cols) = (s.patch(), s.out_plane());
    let mut out = vec![0.0f32; s.batch * s.out_image()];
    let per_task = images_per_task(s.batch);
    out.par_chunks_mut(per_task * s.out_image())
        .zip(x.par_chunks(per_task * s.in_image()))
        .for_each(|(out, x)| {
            let mut col = if s.is_identity_patch() {
                Vec::new()
            } else {
                vec![0.0f32; patch * cols]
            };
            for (y, xi) in out.chunks_mut(s.out_image()).zip(x.chunks(s.in_image())) {
                let patches: &[f32] = if s.is_identity_patch() {
                    xi
                } else {
                    s.im2col(xi, &mut col);
                    &col
                };
                matmul(s.cout, cols, patch, y, false, w, false, patches, false);
            }
        });
    out
}

/// The gradient `batch × cin × h × w` with respect to the input, given the output gradient `g`
/// (`batch × cout × out_h × out_w`) and the weight `w`.
pub fn conv2d_input_grad(g: &[f32], w: &[f32], s: &ConvShape) -> Vec<f32> {
    assert_eq!(g.len(), s.batch * s.out_image());
    assert_eq!(w.len(), s.weight_len());
    if conv3x3::handles_input_grad(s) {
        return conv3x3::input_grad(g, w, s);
    }
    let (patch, cols) = (s.patch(), s.out_plane());
    let mut dx = vec![0.0f32; s.batch * s.in_image()];
    let per_task = images_per_task(s.batch);
    dx.par_chunks_mut(per_task * s.in_image())
        .zip(g.par_chunks(per_task * s.out_image()))
        .for_each(|(dx, g)| {
            let mut col = if s.is_identity_patch() {
                Vec::new()
            } else {
                vec![0.0f32; patch * cols]
            };
            for (dxi, gi) in dx.chunks_mut(s.in_image()).zip(g.chunks(s.out_image())) {
                if s.is_identity_patch() {
                    matmul(patch, cols, s.cout, dxi, false, w, true, gi, false);
                } else {
                    matmul(patch, cols, s.cout, &mut col, false, w, true, gi, false);
                    s.col2im_add(&col, dxi);
                }
            }
        });
    dx
}

/// The gradient `cout × cin × kh × kw` with respect to the weight, given the input `x` and the
/// output gradient `g`, summed over the batch.
pub fn conv2d_weight_grad(x: &[f32], g: &[f32], s: &ConvShape) -> Vec<f32> {
    assert_eq!(x.len(), s.batch * s.in_image());
    assert_eq!(g.len(), s.batch * s.out_image());
    if conv3x3::handles(s) {
        return conv3x3::weight_grad(x, g, s);
    }
    let (patch, cols) = (s.patch(), s.out_plane());
    let per_task = s.batch.div_ceil(rayon::current_num_threads().max(1)).max(1);
    x.par_chunks(per_task * s.in_image())
        .zip(g.par_chunks(per_task * s.out_image()))
        .map(|(x, g)| {
            let mut dw = vec![0.0f32; s.weight_len()];
            let mut col = if s.is_identity_patch() {
                Vec::new()
            } else {
                vec![0.0f32; patch * cols]
            };
            for (xi, gi) in x.chunks(s.in_image()).zip(g.chunks(s.out_image())) {
                let patches: &[f32] = if s.is_identity_patch() {
                    xi
                } else {
                    s.im2col(xi, &mut col);
                    &col
                };
                matmul(s.cout, patch, cols, &mut dw, true, gi, false, patches, true);
            }
            dw
        })
        .reduce_with(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += *b);
            a
        })
        .unwrap_or_else(|| vec![0.0f32; s.weight_len()])
}
