//! Batch normalisation in training mode over NCHW activations, optionally fused with the ReLU
//! that follows it, forward and backward in two passes each over the data.
//!
//! Forward: per channel `μ`, biased `σ²` over (N, H, W); `x̂ = (x − μ)/√(σ² + ε)`;
//! `y = γ·x̂ + β` (then `max(y, 0)` when fused). Backward, with `g` the output gradient masked by
//! `y > 0` when fused and `M = N·H·W`: `dβ = Σg`, `dγ = Σ g·x̂`,
//! `dx = γ/(M·√(σ² + ε)) · (M·g − dβ − x̂·dγ)`. Channel sums accumulate in f64.

use rayon::prelude::*;

/// The shape of an NCHW activation: `batch × channels × plane`, `plane = H·W`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BnShape {
    /// Images.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Values per channel per image (`H·W`).
    pub plane: usize,
}

impl BnShape {
    /// Values per channel over the batch (`M`).
    pub fn per_channel(&self) -> usize {
        self.batch * self.plane
    }

    /// All values.
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.plane
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `plane` values of channel `c` of image `n`.
    fn block<'a>(&self, data: &'a [f32], n: usize, c: usize) -> &'a [f32] {
        let start = (n * self.channels + c) * self.plane;
        &data[start..start + self.plane]
    }
}

/// The batch statistics a training forward used, per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct BnBatchStats {
    /// Mean over (N, H, W).
    pub mean: Vec<f32>,
    /// Biased variance over (N, H, W) (what normalises; running statistics want it unbiased).
    pub var: Vec<f32>,
    /// `1/√(var + ε)`.
    pub inv_std: Vec<f32>,
}

/// Lanes of the partial sums: wide enough for the compiler to vectorize and to hide the
/// latency of dependent adds.
const LANES: usize = 16;

/// `Σ f(v)` over a block in [`LANES`] f32 partial sums (a block is at most a few thousand values).
#[inline(always)]
fn lane_sum(v: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    acc.iter().sum::<f32>() + tail
}

crate::simd_fn! {
    /// Mean and sum of squared deviations of one non-empty block, two passes (the second from cache).
    fn block_moments(block: &[f32]) -> (f64, f64) {
        let mean = f64::from(lane_sum(block, |v| v)) / block.len() as f64;
        let m = mean as f32;
        (mean, f64::from(lane_sum(block, |v| (v - m) * (v - m))))
    }
}

/// Mean and biased variance of one channel over the batch: each block's own moments merged in
/// f64 with Chan et al.'s pairwise update.
fn channel_moments(x: &[f32], s: &BnShape, c: usize) -> (f64, f64) {
    let (mut count, mut mean, mut m2) = (0.0f64, 0.0f64, 0.0f64);
    for n in 0..s.batch {
        let block = s.block(x, n, c);
        if block.is_empty() {
            continue;
        }
        let nb = block.len() as f64;
        let (mean_b, m2_b) = block_moments(block);
        let delta = mean_b - mean;
        let total = count + nb;
        mean += delta * nb / total;
        m2 += m2_b + delta * delta * count * nb / total;
        count = total;
    }
    (mean, m2 / count.max(1.0))
}

crate::simd_fn! {
    /// `y = x·scale + shift`, then `max(y, 0)` when `relu`.
    fn block_affine(y: &mut [f32], x: &[f32], scale: f32, shift: f32, relu: bool) {
        if relu {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = (x * scale + shift).max(0.0);
            }
        } else {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = x * scale + shift;
            }
        }
    }
}

/// The output of batch norm in training mode (with ReLU when `relu`) and the statistics used.
pub fn bn_train_forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    s: &BnShape,
    eps: f64,
    relu: bool,
) -> (Vec<f32>, BnBatchStats) {
    assert_eq!(x.len(), s.len());
    assert!(gamma.len() == s.channels && beta.len() == s.channels);
    let moments: Vec<(f64, f64)> = (0..s.channels)
        .into_par_iter()
        .map(|c| channel_moments(x, s, c))
        .collect();
    let stats = BnBatchStats {
        mean: moments.iter().map(|m| m.0 as f32).collect(),
        var: moments.iter().map(|m| m.1 as f32).collect(),
        inv_std: moments
            .iter()
            .map(|m| (1.0 / (m.1 + eps).sqrt()) as f32)
            .collect(),
    };
    let mut y = vec![0.0f32; s.len()];
    let plane = s.plane.max(1);
    y.par_chunks_mut(plane)
        .zip(x.par_chunks(plane))
        .enumerate()
        .for_each(|(block, (y, x))| {
            let c = block % s.channels;
            let scale = gamma[c] * stats.inv_std[c];
            block_affine(y, x, scale, beta[c] - stats.mean[c] * scale, relu);
        });
    (y, stats)
}

/// `g` where `y > 0`, else 0, as a bit mask (a compare and an AND once vectorized).
#[inline(always)]
fn relu_mask(y: f32, g: f32) -> f32 {
    f32::from_bits(g.to_bits() & u32::from(y > 0.0).wrapping_neg())
}

/// `Σ g` and `Σ g·(x − mean)` over one block, `g` masked by `y > 0` when `RELU`.
#[inline(always)]
fn grad_sums<const RELU: bool>(x: &[f32], y: &[f32], g: &[f32], mean: f32) -> (f32, f32) {
    let masked = |y: f32, g: f32| if RELU { relu_mask(y, g) } else { g };
    let (mut sg, mut sgx) = ([0.0f32; LANES], [0.0f32; LANES]);
    let (xc, yc, gc) = (
        x.chunks_exact(LANES),
        y.chunks_exact(LANES),
        g.chunks_exact(LANES),
    );
    let (mut tg, mut tgx) = (0.0f32, 0.0f32);
    for ((&xi, &yi), &gi) in xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .zip(gc.remainder())
    {
        let gi = masked(yi, gi);
        tg += gi;
        tgx += gi * (xi - mean);
    }
    for ((xs, ys), gs) in xc.zip(yc).zip(gc) {
        for (((sg, sgx), (&xi, &yi)), &gi) in sg
            .iter_mut()
            .zip(sgx.iter_mut())
            .zip(xs.iter().zip(ys))
            .zip(gs)
        {
            let gi = masked(yi, gi);
            *sg += gi;
            *sgx += gi * (xi - mean);
        }
    }
    (sg.iter().sum::<f32>() + tg, sgx.iter().sum::<f32>() + tgx)
}

/// [`grad_sums`] with AVX2 + FMA intrinsics: the compiler turns the masked sums into branches
/// per lane when left to vectorize them itself.
///
/// # Safety
/// The CPU must execute AVX2 and FMA; `y` and `g` must be at least as long as `x`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn grad_sums_avx2(x: &[f32], y: &[f32], g: &[f32], mean: f32, relu: bool) -> (f32, f32) {
    use std::arch::x86_64::*;
    let n = x.len();
    let (xp, yp, gp) = (x.as_ptr(), y.as_ptr(), g.as_ptr());
    let (vmean, zero) = (_mm256_set1_ps(mean), _mm256_setzero_ps());
    let (mut sg0, mut sg1, mut sgx0, mut sgx1) = (zero, zero, zero, zero);
    let load = |p: *const f32, i: usize, yp: *const f32| {
        let v = _mm256_loadu_ps(p.add(i));
        if relu {
            _mm256_and_ps(
                v,
                _mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_loadu_ps(yp.add(i)), zero),
            )
        } else {
            v
        }
    };
    let mut i = 0;
    while i + 16 <= n {
        let (g0, g1) = (load(gp, i, yp), load(gp, i + 8, yp));
        let x0 = _mm256_sub_ps(_mm256_loadu_ps(xp.add(i)), vmean);
        let x1 = _mm256_sub_ps(_mm256_loadu_ps(xp.add(i + 8)), vmean);
        sg0 = _mm256_add_ps(sg0, g0);
        sg1 = _mm256_add_ps(sg1, g1);
        sgx0 = _mm256_fmadd_ps(g0, x0, sgx0);
        sgx1 = _mm256_fmadd_ps(g1, x1, sgx1);
        i += 16;
    }
    let mut lanes = [0.0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(sg0, sg1));
    let mut sum_g: f32 = lanes.iter().sum();
    _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(sgx0, sgx1));
    let mut sum_gx: f32 = lanes.iter().sum();
    for j in i..n {
        let gj = if relu { relu_mask(y[j], g[j]) } else { g[j] };
        sum_g += gj;
        sum_gx += gj * (x[j] - mean);
    }
    (sum_g, sum_gx)
}

/// `Σ g` and `Σ g·(x − mean)` over one block, `g` masked by `y > 0` when `relu`.
fn block_grad_sums(x: &[f32], y: &[f32], g: &[f32], mean: f32, relu: bool) -> (f32, f32) {
    assert!(y.len() >= x.len() && g.len() >= x.len());
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA; the lengths were checked above.
        return unsafe { grad_sums_avx2(x, y, g, mean, relu) };
    }
    if relu {
        grad_sums::<true>(x, y, g, mean)
    } else {
        grad_sums::<false>(x, g, g, mean)
    }
}

/// One block of the input gradient, in place over the output gradient:
/// `g ← k·(g − mean_g − x̂·mean_gx)`, `g` masked by `y > 0` first when `RELU` (`y` is only read then).
#[inline(always)]
fn input_grad<const RELU: bool>(g: &mut [f32], x: &[f32], y: &[f32], c: [f32; 5]) {
    let [mean, inv_std, k, mean_g, mean_gx] = c;
    for ((d, &xi), &yi) in g.iter_mut().zip(x).zip(y) {
        let gi = if RELU { relu_mask(yi, *d) } else { *d };
        let xhat = (xi - mean) * inv_std;
        *d = k * (gi - mean_g - xhat * mean_gx);
    }
}

crate::simd_fn! {
    /// One block of the input gradient, in place over `g`; `coef` = [mean, 1/std, γ/std, mean of
    /// g, mean of g·x̂].
    fn block_input_grad(g: &mut [f32], x: &[f32], y: &[f32], coef: [f32; 5], relu: bool) {
        if relu {
            input_grad::<true>(g, x, y, coef);
        } else {
            input_grad::<false>(g, x, x, coef);
        }
    }
}

/// The gradients `(dx, dγ, dβ)` of batch norm in training mode given the input `x`, the output
/// `y` of [`bn_train_forward`] (only read when `relu`, for the mask), the output gradient `g`,
/// `γ` and the statistics the forward used.
pub fn bn_train_backward(
    x: &[f32],
    y: &[f32],
    g: &[f32],
    gamma: &[f32],
    stats: &BnBatchStats,
    s: &BnShape,
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = g.to_vec();
    let (dgamma, dbeta) = bn_train_backward_in_place(x, y, &mut dx, gamma, stats, s, relu);
    (dx, dgamma, dbeta)
}

/// [`bn_train_backward`] writing `dx` over the output gradient `g` (no buffer of the
/// activation's size is allocated); returns `(dγ, dβ)`. The same values, bit for bit.
pub fn bn_train_backward_in_place(
    x: &[f32],
    y: &[f32],
    g: &mut [f32],
    gamma: &[f32],
    stats: &BnBatchStats,
    s: &BnShape,
    relu: bool,
) -> (Vec<f32>, Vec<f32>) {
    assert!(x.len() == s.len() && g.len() == s.len() && (!relu || y.len() == s.len()));
    let y = if relu { y } else { x };
    let sums: Vec<(f64, f64)> = {
        let g: &[f32] = g;
        (0..s.channels)
            .into_par_iter()
            .map(|c| {
                let (mut sum_g, mut sum_gx) = (0.0f64, 0.0f64);
                for n in 0..s.batch {
                    let (xb, yb, gb) = (s.block(x, n, c), s.block(y, n, c), s.block(g, n, c));
                    let (bg, bgx) = block_grad_sums(xb, yb, gb, stats.mean[c], relu);
                    sum_g += f64::from(bg);
                    sum_gx += f64::from(bgx);
                }
                (sum_g, sum_gx * f64::from(stats.inv_std[c]))
            })
            .collect()
    };
    let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let dgamma: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
    let m = s.per_channel().max(1) as f32;
    let plane = s.plane.max(1);
    g.par_chunks_mut(plane).enumerate().for_each(|(block, g)| {
        let (n, c) = (block / s.channels, block % s.channels);
        let (xb, yb) = (s.block(x, n, c), s.block(y, n, c));
        let inv_std = stats.inv_std[c];
        let coef = [
            stats.mean[c],
            inv_std,
            gamma[c] * inv_std,
            dbeta[c] / m,
            dgamma[c] / m,
        ];
        block_input_grad(g, xb, yb, coef, relu);
    });
    (dgamma, dbeta)
}
