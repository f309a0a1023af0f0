//! Element-wise operations on flat parameter vectors, the only arithmetic the cores need.

use super::Real;

/// `y += a * x`, element-wise. Panics in debug builds if the lengths differ.
pub fn axpy<T: Real>(y: &mut [T], a: T, x: &[T]) {
    debug_assert_eq!(y.len(), x.len());
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = *yi + a * xi;
    }
}

/// `y1 += a1 * x` and `y2 += a2 * x` in one pass over `x` (each element gets exactly what two
/// [`axpy`] calls give it). Panics in debug builds if the lengths differ.
pub fn axpy_pair<T: Real>(y1: &mut [T], a1: T, y2: &mut [T], a2: T, x: &[T]) {
    debug_assert!(y1.len() == x.len() && y2.len() == x.len());
    for ((p, q), &xi) in y1.iter_mut().zip(y2.iter_mut()).zip(x) {
        *p = *p + a1 * xi;
        *q = *q + a2 * xi;
    }
}

/// `w += a * u`, then `u *= b`, in one pass (exactly `axpy(w, a, u); scale(u, b)`).
pub fn axpy_then_scale<T: Real>(w: &mut [T], a: T, u: &mut [T], b: T) {
    debug_assert_eq!(w.len(), u.len());
    for (wi, ui) in w.iter_mut().zip(u.iter_mut()) {
        *wi = *wi + a * *ui;
        *ui = *ui * b;
    }
}

/// `y *= a`, element-wise.
pub fn scale<T: Real>(y: &mut [T], a: T) {
    for yi in y.iter_mut() {
        *yi = *yi * a;
    }
}

/// `y = a * y + b * x`, element-wise.
pub fn axpby<T: Real>(y: &mut [T], a: T, b: T, x: &[T]) {
    debug_assert_eq!(y.len(), x.len());
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = a * *yi + b * xi;
    }
}

/// True when every element is finite (no NaN, no infinity).
pub fn all_finite<T: Real>(x: &[T]) -> bool {
    // A branch-free fold inside each block lets the compiler vectorize the check; the early exit
    // between blocks still stops at the first bad block.
    x.chunks(256)
        .all(|block| block.iter().fold(true, |ok, v| ok & v.is_finite()))
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
