//! Shifted momentum (spec §4, Giladi et al.): one momentum buffer per worker, so each update uses
//! only that worker's own gradient history (`m[k] ← βm[k] + g; w ← w − η m[k]`, PyTorch convention).

use super::{AlgorithmError, AlgorithmState, Applied, Real, ServerAlgorithm, Update};
use crate::algo::vector::{axpby, axpy};

/// Per-worker momentum buffers on the server, keyed by worker id (not by arrival slot).
#[derive(Debug, Clone)]
pub struct ShiftedMomentum<T> {
    w: Vec<T>,
    buffers: Vec<Vec<T>>,
    beta: T,
    weight_decay: f64,
}

impl<T: Real> ShiftedMomentum<T> {
    /// Starts from `w0` with `workers` zero buffers. A worker that restarts keeps its slot's buffer.
    pub fn new(w0: Vec<T>, workers: usize, beta: f64, weight_decay: f64) -> Self {
        let buffers = vec![vec![T::zero(); w0.len()]; workers];
        ShiftedMomentum {
            w: w0,
            buffers,
            beta: T::of(beta),
            weight_decay,
        }
    }

    /// Worker `k`'s momentum buffer, if `k` is a valid slot.
    pub fn buffer(&self, worker: usize) -> Option<&[T]> {
        self.buffers.get(worker).map(Vec::as_slice)
    }
}

impl<T: Real> ServerAlgorithm<T> for ShiftedMomentum<T> {
    fn params(&self) -> &[T] {
        &self.w
    }

    fn apply(&mut self, update: &Update<'_, T>) -> Result<Applied, AlgorithmError> {
        let workers = self.buffers.len();
        let m = self
            .buffers
            .get_mut(update.worker)
            .ok_or(AlgorithmError::UnknownWorker {
                worker: update.worker,
                workers,
            })?;
        axpby(m, self.beta, T::one(), update.grad);
        axpy(&mut self.w, -update.lr, m);
        Ok(Applied::FULL)
    }

    fn worker_weight_decay(&self) -> f64 {
        self.weight_decay
    }
    fn save_state(&self) -> AlgorithmState<T> {
        let mut s = AlgorithmState::default();
        s.put("w", &self.w);
        for (i, b) in self.buffers.iter().enumerate() {
            s.put(&format!("buffer.{i}"), b);
        }
        s
    }

    fn load_state(&mut self, state: &AlgorithmState<T>) -> Result<(), String> {
        let w = state.vector("w", self.w.len())?;
        let buffers = (0..self.buffers.len())
            .map(|i| state.vector(&format!("buffer.{i}"), self.w.len()))
            .collect::<Result<Vec<_>, _>>()?;
        self.w = w;
        self.buffers = buffers;
        Ok(())
    }
}
