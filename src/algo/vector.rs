//! Element-wise operations on flat parameter vectors, the only arithmetic the cores need. Each
//! loop is written once; for `f32` it runs compiled for the widest vector instructions the CPU
//! executes (`simd_fn!`), for `f64` as it is. Element-wise arithmetic without fused multiply-adds
//! gives the same bits at every vector width, so the path taken never changes a result.

use super::Real;

/// `y += a * x`, element-wise. Panics in debug builds if the lengths differ.
pub fn axpy<T: Real>(y: &mut [T], a: T, x: &[T]) {
    debug_assert_eq!(y.len(), x.len());
    if let (Some(y), Some(x)) = (T::f32_slice_mut(y), T::f32_slice(x)) {
        return axpy_f32(y, a.to_f64() as f32, x);
    }
    axpy_loop(y, a, x);
}

crate::simd_fn! {
    /// [`axpy`] on `f32`.
    fn axpy_f32(y: &mut [f32], a: f32, x: &[f32]) {
        axpy_loop(y, a, x)
    }
}

#[inline(always)]
fn axpy_loop<T: Real>(y: &mut [T], a: T, x: &[T]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = *yi + a * xi;
    }
}

/// `y1 += a1 * x` and `y2 += a2 * x` in one pass over `x` (each element gets exactly what two
/// [`axpy`] calls give it). Panics in debug builds if the lengths differ.
pub fn axpy_pair<T: Real>(y1: &mut [T], a1: T, y2: &mut [T], a2: T, x: &[T]) {
    debug_assert!(y1.len() == x.len() && y2.len() == x.len());
    if let (Some(y1), Some(y2), Some(x)) =
        (T::f32_slice_mut(y1), T::f32_slice_mut(y2), T::f32_slice(x))
    {
        return axpy_pair_f32(y1, a1.to_f64() as f32, y2, a2.to_f64() as f32, x);
    }
    axpy_pair_loop(y1, a1, y2, a2, x);
}

crate::simd_fn! {
    /// [`axpy_pair`] on `f32`.
    fn axpy_pair_f32(y1: &mut [f32], a1: f32, y2: &mut [f32], a2: f32, x: &[f32]) {
        axpy_pair_loop(y1, a1, y2, a2, x)
    }
}

#[inline(always)]
fn axpy_pair_loop<T: Real>(y1: &mut [T], a1: T, y2: &mut [T], a2: T, x: &[T]) {
    for ((p, q), &xi) in y1.iter_mut().zip(y2.iter_mut()).zip(x) {
        *p = *p + a1 * xi;
        *q = *q + a2 * xi;
    }
}

/// `w += a * u`, then `u *= b`, in one pass (exactly `axpy(w, a, u); scale(u, b)`).
pub fn axpy_then_scale<T: Real>(w: &mut [T], a: T, u: &mut [T], b: T) {
    debug_assert_eq!(w.len(), u.len());
    if let (Some(w), Some(u)) = (T::f32_slice_mut(w), T::f32_slice_mut(u)) {
        return axpy_then_scale_f32(w, a.to_f64() as f32, u, b.to_f64() as f32);
    }
    axpy_then_scale_loop(w, a, u, b);
}

crate::simd_fn! {
    /// [`axpy_then_scale`] on `f32`.
    fn axpy_then_scale_f32(w: &mut [f32], a: f32, u: &mut [f32], b: f32) {
        axpy_then_scale_loop(w, a, u, b)
    }
}

#[inline(always)]
fn axpy_then_scale_loop<T: Real>(w: &mut [T], a: T, u: &mut [T], b: T) {
    for (wi, ui) in w.iter_mut().zip(u.iter_mut()) {
        *wi = *wi + a * *ui;
        *ui = *ui * b;
    }
}

/// `y *= a`, element-wise.
pub fn scale<T: Real>(y: &mut [T], a: T) {
    if let Some(y) = T::f32_slice_mut(y) {
        return scale_f32(y, a.to_f64() as f32);
    }
    scale_loop(y, a);
}

crate::simd_fn! {
    /// [`scale`] on `f32`.
    fn scale_f32(y: &mut [f32], a: f32) {
        scale_loop(y, a)
    }
}

#[inline(always)]
fn scale_loop<T: Real>(y: &mut [T], a: T) {
    for yi in y.iter_mut() {
        *yi = *yi * a;
    }
}

/// `y = a * y + b * x`, element-wise.
pub fn axpby<T: Real>(y: &mut [T], a: T, b: T, x: &[T]) {
    debug_assert_eq!(y.len(), x.len());
    if let (Some(y), Some(x)) = (T::f32_slice_mut(y), T::f32_slice(x)) {
        return axpby_f32(y, a.to_f64() as f32, b.to_f64() as f32, x);
    }
    axpby_loop(y, a, b, x);
}

crate::simd_fn! {
    /// [`axpby`] on `f32`.
    fn axpby_f32(y: &mut [f32], a: f32, b: f32, x: &[f32]) {
        axpby_loop(y, a, b, x)
    }
}

#[inline(always)]
fn axpby_loop<T: Real>(y: &mut [T], a: T, b: T, x: &[T]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = a * *yi + b * xi;
    }
}

/// True when every element is finite (no NaN, no infinity).
pub fn all_finite<T: Real>(x: &[T]) -> bool {
    if let Some(x) = T::f32_slice(x) {
        // Blocks of 16 KiB: the early exit between blocks stops near the first bad value.
        return x
            .chunks(4096)
            .all(|block| largest_magnitude_bits(block) < F32_EXPONENT_ALL_ONES);
    }
    // A branch-free fold inside each block lets the compiler vectorize the check; the early exit
    // between blocks still stops at the first bad block.
    x.chunks(256)
        .all(|block| block.iter().fold(true, |ok, v| ok & v.is_finite()))
}

/// The bits of an `f32` whose exponent field is all ones (∞); every larger magnitude is a NaN.
const F32_EXPONENT_ALL_ONES: u32 = 0x7F80_0000;

crate::simd_fn! {
    /// The largest `|x|` of `x` as bits (sign cleared): an integer maximum, two vector
    /// instructions per vector of values, where comparing floats needs more.
    fn largest_magnitude_bits(x: &[f32]) -> u32 {
        x.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7FFF_FFFF))
    }
}

/// `β^n` with `0^0 = 1`, exact for small integer `n` and saturating for huge `n`.
pub fn pow_n<T: Real>(beta: T, n: u64) -> T {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    beta.powi(n)
}

/// `c(n) = 1 + β + … + β^n = (1 − β^{n+1}) / (1 − β)`, with the `β = 1` case giving `n + 1`.
pub fn geometric_sum<T: Real>(beta: T, n: u64) -> T {
    if beta == T::one() {
        return T::of(n as f64 + 1.0);
    }
    let next = n.saturating_add(1);
    (T::one() - pow_n(beta, next)) / (T::one() - beta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometric_sum_matches_the_explicit_series() {
        for &beta in &[0.0f64, 0.5, 0.9, 1.0] {
            for n in 0..20u64 {
                let series: f64 = (0..=n).map(|l| pow_n(beta, l)).sum();
                assert!(
                    (geometric_sum(beta, n) - series).abs() < 1e-12,
                    "β={beta} n={n}"
                );
            }
        }
        assert_eq!(pow_n(0.0f64, 0), 1.0);
    }

    #[test]
    fn axpby_combines_both_terms() {
        let mut y = vec![1.0f64, 2.0];
        axpby(&mut y, 0.5, 2.0, &[1.0, -1.0]);
        assert_eq!(y, vec![2.5, -1.0]);
    }
}
