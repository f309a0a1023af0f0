//! Naive ASGDm (spec §3): ordinary momentum SGD on whatever stale gradient arrives.

use super::{AlgorithmError, AlgorithmState, Applied, Real, ServerAlgorithm, Update};
use crate::algo::vector::{axpby, axpy};

/// One server momentum buffer, scaled convention: `u ← βu + ηg; w ← w − u`.
#[derive(Debug, Clone)]
pub struct NaiveAsgdm<T> {
    w: Vec<T>,
    u: Vec<T>,
    beta: T,
    weight_decay: f64,
}

impl<T: Real> NaiveAsgdm<T> {
    /// Starts from `w0` with a zero buffer and momentum `beta`.
    pub fn new(w0: Vec<T>, beta: f64, weight_decay: f64) -> Self {
        let u = vec![T::zero(); w0.len()];
        NaiveAsgdm {
            w: w0,
            u,
            beta: T::of(beta),
            weight_decay,
        }
    }
}

impl<T: Real> ServerAlgorithm<T> for NaiveAsgdm<T> {
    fn params(&self) -> &[T] {
        &self.w
    }

    fn apply(&mut self, update: &Update<'_, T>) -> Result<Applied, AlgorithmError> {
        axpby(&mut self.u, self.beta, update.lr, update.grad);
        axpy(&mut self.w, -T::one(), &self.u);
        Ok(Applied::FULL)
    }

    fn worker_weight_decay(&self) -> f64 {
        self.weight_decay
    }
    fn save_state(&self) -> AlgorithmState<T> {
        AlgorithmState::momentum(&self.w, &self.u)
    }

    fn load_state(&mut self, state: &AlgorithmState<T>) -> Result<(), String> {
        state.load_momentum(&mut self.w, &mut self.u)
    }
}
