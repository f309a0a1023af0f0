//! SSGDm in per-gradient form (spec §2): heavy-ball momentum over rounds, with the look-ahead
//! `w −= βu; u *= β` applied once at each round's first gradient (when the waiting set is empty).

use super::{AlgorithmError, AlgorithmState, Applied, Real, ServerAlgorithm, Update};
use crate::algo::vector::{axpy, scale};

/// Synchronous SGD with momentum, scaled convention (`u` holds `η·g`).
#[derive(Debug, Clone)]
pub struct Ssgdm<T> {
    w: Vec<T>,
    u: Vec<T>,
    beta: T,
    weight_decay: f64,
}

impl<T: Real> Ssgdm<T> {
    /// Starts from `w0` with a zero buffer and momentum `beta`.
    pub fn new(w0: Vec<T>, beta: f64, weight_decay: f64) -> Self {
        let u = vec![T::zero(); w0.len()];
        Ssgdm {
            w: w0,
            u,
            beta: T::of(beta),
            weight_decay,
        }
    }

    /// The momentum buffer `u`.
    pub fn momentum(&self) -> &[T] {
        &self.u
    }
}

impl<T: Real> ServerAlgorithm<T> for Ssgdm<T> {
    fn params(&self) -> &[T] {
        &self.w
    }

    fn apply(&mut self, update: &Update<'_, T>) -> Result<Applied, AlgorithmError> {
        if update.round_start {
            axpy(&mut self.w, -self.beta, &self.u);
            scale(&mut self.u, self.beta);
        }
        axpy(&mut self.u, update.lr, update.grad);
        axpy(&mut self.w, -update.lr, update.grad);
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
