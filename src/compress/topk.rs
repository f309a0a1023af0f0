//! Top-k sparsification with error feedback: a worker sends only the largest `k` coordinates of
//! its gradient plus everything it held back before, and keeps the rest as a residual that it
//! adds to its next gradient — so no gradient mass is lost, only delayed (Stich et al., "Sparsified
//! SGD with memory", 2018). Pure: vectors in, vectors out.

use crate::proto::WireDtype;

/// A gradient with only some coordinates: `values[i]` at `indices[i]`, every other coordinate 0.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseGradient {
    /// Coordinates, strictly increasing.
    pub indices: Vec<u32>,
    /// Their values, as the receiver will decode them (already rounded to the wire dtype).
    pub values: Vec<f32>,
}

/// A worker's top-k compressor and its residual (what it has not sent yet).
#[derive(Debug, Clone)]
pub struct TopK {
    fraction: f64,
    dtype: WireDtype,
    residual: Vec<f32>,
    /// Gradients over which the fraction falls from [`WARMUP_START`] to `fraction`.
    warmup: u64,
    /// Gradients compressed so far.
    step: u64,
}

/// The fraction a warm-up starts from (Lin et al., "Deep Gradient Compression", 2018, start
/// their exponential warm-up at 25 % of the coordinates).
pub const WARMUP_START: f64 = 0.25;

impl TopK {
    /// A compressor that sends `fraction` (in (0, 1]) of the coordinates, rounded up, at least
    /// one, with values in `dtype` (their rounding error also goes to the residual).
    pub fn new(fraction: f64, dtype: WireDtype) -> Self {
        TopK {
            fraction,
            dtype,
            residual: Vec::new(),
            warmup: 0,
            step: 0,
        }
    }

    /// The same, with the fraction falling geometrically from `WARMUP_START` = 0.25 (or `fraction`,
    /// if larger) to `fraction` over the first `gradients` gradients: the early, large gradients
    /// go out nearly whole instead of waiting in the residual.
    pub fn with_warmup(mut self, gradients: u64) -> Self {
        self.warmup = gradients;
        self
    }

    /// The fraction of coordinates the next gradient sends.
    pub fn current_fraction(&self) -> f64 {
        let start = WARMUP_START.max(self.fraction);
        if self.step >= self.warmup {
            return self.fraction;
        }
        let t = self.step as f64 / self.warmup as f64;
        start * (self.fraction / start).powf(t)
    }

    /// Coordinates the next gradient of `len` values sends.
    pub fn k(&self, len: usize) -> usize {
        ((self.current_fraction() * len as f64).ceil() as usize).clamp(1.min(len), len)
    }

    /// What has been held back so far (empty before the first gradient).
    pub fn residual(&self) -> &[f32] {
        &self.residual
    }

    /// Adds the residual to `grad`, sends the `k` largest coordinates by magnitude (NaN counts
    /// as the largest, so the receiver's checks see it) and keeps the rest as the new residual:
    /// `sent + residual' = grad + residual` coordinate by coordinate, exactly, wherever it is
    /// finite (a non-finite sent coordinate leaves no residual).
    pub fn compress(&mut self, mut grad: Vec<f32>) -> SparseGradient {
        let n = grad.len();
        if self.residual.len() != n {
            // The first gradient, or a model of another size: nothing held back applies.
            self.residual = vec![0.0; n];
        }
        for (g, r) in grad.iter_mut().zip(&self.residual) {
            *g += *r;
        }
        let k = self.k(n);
        let threshold = kth_largest_magnitude(&grad, k);
        // Everything above the threshold, then as many ties at it as fit, in index order.
        let above = grad.iter().filter(|&&g| magnitude(g) > threshold).count();
        let mut ties = k.saturating_sub(above);
        let mut indices = Vec::with_capacity(k);
        for (i, &g) in grad.iter().enumerate() {
            let m = magnitude(g);
            if m > threshold || (m == threshold && ties > 0) {
                if m == threshold {
                    ties -= 1;
                }
                indices.push(i as u32);
            }
        }
        let values = self
            .dtype
            .rounded(indices.iter().map(|&i| grad[i as usize]).collect());
        // The residual is what the receiver does not get: all of the unsent coordinates, and the
        // rounding error of the sent ones.
        // (Exact: a value and its rounding are within a factor of 2, so their difference is a
        // float.) A non-finite coordinate was sent for the receiver to refuse; keeping it would
        // poison every later gradient, so nothing of it is held back.
        for (&i, &v) in indices.iter().zip(&values) {
            let r = &mut grad[i as usize];
            *r -= v;
            if !r.is_finite() {
                *r = 0.0;
            }
        }
        self.residual = grad;
        self.step += 1;
        SparseGradient { indices, values }
    }
}

/// `|x|`, with NaN above every number (a non-finite coordinate is always sent).
fn magnitude(x: f32) -> f32 {
    if x.is_nan() {
        f32::INFINITY
    } else {
        x.abs()
    }
}

/// The `k`-th largest magnitude in `v` (1-based; `k ≥ 1`), in O(n).
fn kth_largest_magnitude(v: &[f32], k: usize) -> f32 {
    if v.is_empty() || k == 0 {
        return f32::INFINITY;
    }
    let mut m: Vec<f32> = v.iter().map(|&x| magnitude(x)).collect();
    let at = v.len() - k.min(v.len());
    let (_, kth, _) = m.select_nth_unstable_by(at, f32::total_cmp);
    *kth
}

/// The dense gradient of `len` values that `indices`/`values` describe, or what is wrong with
/// them (lengths differ, an index out of range or not after the one before).
pub fn densify(len: usize, indices: &[u32], values: &[f32]) -> Result<Vec<f32>, String> {
    if indices.len() != values.len() {
        return Err(format!(
            "sparse gradient with {} indices and {} values",
            indices.len(),
            values.len()
        ));
    }
    let mut dense = vec![0.0f32; len];
    let mut last: Option<u32> = None;
    for (&i, &v) in indices.iter().zip(values) {
        if last.is_some_and(|l| i <= l) {
            return Err(format!(
                "sparse gradient index {i} after {} (indices must increase)",
                last.unwrap_or(0)
            ));
        }
        let Some(slot) = dense.get_mut(i as usize) else {
            return Err(format!(
                "sparse gradient index {i} outside a model of {len} parameters"
            ));
        };
        *slot = v;
        last = Some(i);
    }
    Ok(dense)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(step: u64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let h = (i as u64 * 2654435761 + step * 40503) % 1000;
                (h as f32 - 500.0) * 1e-3 * (1.0 + (i % 7) as f32)
            })
            .collect()
    }

    #[test]
    fn k_is_the_fraction_rounded_up_and_at_least_one() {
        let t = TopK::new(0.01, WireDtype::F32);
        assert_eq!(t.k(272_186), 2_722);
        assert_eq!(t.k(10), 1);
        assert_eq!(t.k(0), 0);
        assert_eq!(TopK::new(1.0, WireDtype::F32).k(5), 5);
    }

    #[test]
    fn a_warmup_falls_geometrically_from_a_quarter_to_the_fraction() {
        let mut t = TopK::new(0.01, WireDtype::F32).with_warmup(4);
        let mut ks = Vec::new();
        for _ in 0..6 {
            ks.push(t.k(10_000));
            t.compress(vec![1.0; 10_000]);
        }
        // 0.25 · (0.04)^(s/4): 25 %, 11.2 %, 5 %, 2.2 %, then 1 %.
        assert_eq!(ks, vec![2_500, 1_119, 500, 224, 100, 100]);
    }

    #[test]
    fn the_largest_magnitudes_are_sent_in_increasing_order() {
        let mut t = TopK::new(0.3, WireDtype::F32);
        let s = t.compress(vec![0.1, -5.0, 0.2, 3.0, -0.3, 4.0, 0.0, 0.05, 1.0, -2.0]);
        assert_eq!(s.indices, vec![1, 3, 5]);
        assert_eq!(s.values, vec![-5.0, 3.0, 4.0]);
        assert_eq!(
            t.residual(),
            &[0.1, 0.0, 0.2, 0.0, -0.3, 0.0, 0.0, 0.05, 1.0, -2.0]
        );
    }

    #[test]
    fn sent_plus_residual_is_every_gradient_so_far() {
        for dtype in WireDtype::ALL {
            let n = 1_000;
            let mut t = TopK::new(0.01, dtype);
            let mut sent_total = vec![0.0f64; n];
            let mut grad_total = vec![0.0f64; n];
            for step in 0..200 {
                let g = gradient(step, n);
                let before: Vec<f32> = t
                    .residual()
                    .iter()
                    .copied()
                    .chain(std::iter::repeat(0.0))
                    .take(n)
                    .collect();
                let s = t.compress(g.clone());
                assert_eq!(s.indices.len(), 10);
                let dense = densify(n, &s.indices, &s.values).unwrap();
                // Exact, coordinate by coordinate: sent + new residual = gradient + old residual
                // (one f32 addition, the same the compressor makes).
                for i in 0..n {
                    let whole = g[i] + before[i];
                    assert_eq!(
                        dense[i] + t.residual()[i],
                        whole,
                        "{dtype} step {step} i {i}"
                    );
                }
                for i in 0..n {
                    sent_total[i] += f64::from(dense[i]);
                    grad_total[i] += f64::from(g[i]);
                }
            }
            // Telescoped over 200 steps: everything sent plus what is held back is the sum of
            // the gradients, up to the rounding of the f32 additions.
            for i in 0..n {
                let diff = (sent_total[i] + f64::from(t.residual()[i]) - grad_total[i]).abs();
                assert!(diff < 1e-3, "{dtype}: coordinate {i} off by {diff}");
            }
        }
    }

    #[test]
    fn a_held_back_coordinate_is_sent_once_it_has_grown() {
        let mut t = TopK::new(0.5, WireDtype::F32);
        // Coordinate 0 loses to coordinate 1 twice, then its accumulated 2.5 beats 2.25.
        assert_eq!(t.compress(vec![1.0, 2.0]).indices, vec![1]);
        assert_eq!(t.compress(vec![0.5, 2.0]).indices, vec![1]);
        let s = t.compress(vec![1.0, 2.25]);
        assert_eq!((s.indices, s.values), (vec![0], vec![2.5]));
        assert_eq!(t.residual(), &[0.0, 2.25]);
    }

    #[test]
    fn non_finite_coordinates_are_always_sent_and_never_held_back() {
        let mut t = TopK::new(0.25, WireDtype::F32);
        let s = t.compress(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0, f32::NAN]);
        assert_eq!(s.indices, vec![6, 7]);
        assert!(s.values[1].is_nan());
        assert!(t.residual().iter().all(|r| r.is_finite()));
        // Beyond f16's range a value is sent as infinite (refused by the server), not kept.
        let mut t = TopK::new(0.5, WireDtype::F16);
        let s = t.compress(vec![1e6, 1.0]);
        assert_eq!(s.values, vec![f32::INFINITY]);
        assert_eq!(t.residual(), &[0.0, 1.0]);
    }

    #[test]
    fn ties_at_the_threshold_never_crowd_out_larger_coordinates() {
        let mut t = TopK::new(0.5, WireDtype::F32);
        let s = t.compress(vec![1.0, 1.0, 5.0, 1.0]);
        assert_eq!(s.indices, vec![0, 2]);
        assert_eq!(t.residual(), &[0.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn densify_refuses_what_does_not_describe_a_gradient() {
        assert_eq!(
            densify(4, &[1, 3], &[2.0, -1.0]).unwrap(),
            vec![0.0, 2.0, 0.0, -1.0]
        );
        let e = densify(4, &[1, 1], &[1.0, 1.0]).unwrap_err();
        assert!(e.contains("index 1 after 1"), "{e}");
        let e = densify(4, &[2, 1], &[1.0, 1.0]).unwrap_err();
        assert!(e.contains("must increase"), "{e}");
        let e = densify(4, &[4], &[1.0]).unwrap_err();
        assert!(e.contains("outside a model of 4"), "{e}");
        let e = densify(4, &[0], &[]).unwrap_err();
        assert!(e.contains("1 indices and 0 values"), "{e}");
    }
}
