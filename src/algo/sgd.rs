//! ASGD and SSGD (Algorithm 1): `w ← w − η g` for every arriving gradient; the two differ only in
//! the scheduler (spec §1).

use super::{AlgorithmError, AlgorithmState, Applied, Real, ServerAlgorithm, Update};
use crate::algo::vector::axpy;

/// Plain per-gradient SGD on the server.
#[derive(Debug, Clone)]
pub struct Sgd<T> {
    w: Vec<T>,
    weight_decay: f64,
}

impl<T: Real> Sgd<T> {
    /// Starts from `w0`; workers add `weight_decay · w_ite` to their gradients.
    pub fn new(w0: Vec<T>, weight_decay: f64) -> Self {
        Sgd {
            w: w0,
            weight_decay,
        }
    }
}

impl<T: Real> ServerAlgorithm<T> for Sgd<T> {
    fn params(&self) -> &[T] {
        &self.w
    }

    fn apply(&mut self, update: &Update<'_, T>) -> Result<Applied, AlgorithmError> {
        axpy(&mut self.w, -update.lr, update.grad);
        Ok(Applied::FULL)
    }

    fn worker_weight_decay(&self) -> f64 {
        self.weight_decay
    }
    fn save_state(&self) -> AlgorithmState<T> {
        let mut s = AlgorithmState::default();
        s.put("w", &self.w);
        s
    }

    fn load_state(&mut self, state: &AlgorithmState<T>) -> Result<(), String> {
        self.w = state.vector("w", self.w.len())?;
        Ok(())
    }
}
