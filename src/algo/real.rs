//! The scalar type the algorithm cores are generic over: `f32` in production, `f64` in exact tests.

use std::fmt::Debug;

/// A floating-point scalar the algorithm cores can compute with.
///
/// Implemented for `f32` (what travels on the wire and trains models) and `f64` (what the exact
/// equivalence tests of the spec use).
pub trait Real: num_traits::Float + Default + Debug + Send + Sync + 'static {
    /// Converts an `f64` hyper-parameter to this type (rounding to nearest for `f32`).
    fn of(x: f64) -> Self;
    /// Widens this value to `f64`.
    fn to_f64(self) -> f64;
    /// `x` itself when this type is `f32` (so element-wise loops can take the CPU's vector
    /// instructions), `None` otherwise.
    fn f32_slice(x: &[Self]) -> Option<&[f32]>;
    /// The mutable form of [`Real::f32_slice`].
    fn f32_slice_mut(x: &mut [Self]) -> Option<&mut [f32]>;
}

impl Real for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn f32_slice(x: &[Self]) -> Option<&[f32]> {
        Some(x)
    }
    fn f32_slice_mut(x: &mut [Self]) -> Option<&mut [f32]> {
        Some(x)
    }
}

impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn f32_slice(_: &[Self]) -> Option<&[f32]> {
        None
    }
    fn f32_slice_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}
