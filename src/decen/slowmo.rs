//! SlowMo's outer loop (spec §14): after every τ base steps the exact average `x̄` of the nodes
//! feeds a heavy-ball step on the stored outer point, `u ← βu + (x0 − x̄)/γ; x0 ← x0 − αγu`, and
//! every node restarts from the new `x0`.

use crate::algo::Real;

use super::BufferStrategy;

/// The slow state every node holds identically: the outer point `x0` and the slow buffer `u`.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowMo<T> {
    alpha: f64,
    beta: f64,
    period: u64,
    buffers: BufferStrategy,
    x0: Vec<T>,
    u: Vec<T>,
}

impl<T: Real> SlowMo<T> {
    /// Starts at the common initial point `x0` with `u = 0`; a slow step follows every
    /// `period ≥ 1` base steps.
    pub fn new(x0: Vec<T>, alpha: f64, beta: f64, period: u64, buffers: BufferStrategy) -> Self {
        let u = vec![T::zero(); x0.len()];
        SlowMo {
            alpha,
            beta,
            period: period.max(1),
            buffers,
            x0,
            u,
        }
    }

    /// True when a slow step follows base step `k` (`(k + 1) mod τ == 0`, fairscale's rule).
    pub fn due(&self, k: u64) -> bool {
        (k + 1) % self.period == 0
    }

    /// What to do with the base optimizer's buffers at a slow step.
    pub fn buffers(&self) -> BufferStrategy {
        self.buffers
    }

    /// The slow step from the exact average `mean` with the base learning rate `lr` in force
    /// now; returns the new outer point every node must take. With α = 1, β = 0 the outer point
    /// becomes `mean` exactly (SlowMo off, as fairscale treats it).
    pub fn step(&mut self, mean: &[T], lr: f64) -> &[T] {
        if self.alpha == 1.0 && self.beta == 0.0 || lr == 0.0 {
            self.x0.copy_from_slice(mean);
            return &self.x0;
        }
        let gamma = T::of(lr);
        let beta = T::of(self.beta);
        let step = T::of(self.alpha * lr);
        for ((u, x0), &m) in self.u.iter_mut().zip(self.x0.iter_mut()).zip(mean) {
            *u = beta * *u + (*x0 - m) / gamma;
            *x0 = *x0 - step * *u;
        }
        &self.x0
    }

    /// The stored outer point `x_{t,0}`.
    pub fn outer_point(&self) -> &[T] {
        &self.x0
    }

    /// The slow momentum buffer `u`.
    pub fn slow_buffer(&self) -> &[T] {
        &self.u
    }

    /// The state every node holds alike after a slow step: the outer point then the slow
    /// momentum (`2 × dim` values).
    pub fn shared_state(&self) -> Vec<T> {
        let mut s = Vec::with_capacity(2 * self.x0.len());
        s.extend_from_slice(&self.x0);
        s.extend_from_slice(&self.u);
        s
    }

    /// Takes another node's [`shared_state`](Self::shared_state); a state of another length is
    /// an error and changes nothing.
    pub fn adopt(&mut self, state: &[T]) -> Result<(), String> {
        let dim = self.x0.len();
        if state.len() != 2 * dim {
            return Err(format!(
                "SlowMo's shared state has {} values, expected {} (outer point and slow momentum)",
                state.len(),
                2 * dim
            ));
        }
        self.x0.copy_from_slice(&state[..dim]);
        self.u.copy_from_slice(&state[dim..]);
        Ok(())
    }
}

/// Applies a buffer strategy to a momentum buffer at an exact average (`mean` is the averaged
/// buffer, present under `Sync`).
pub fn apply_buffer_strategy<T: Real>(
    strategy: BufferStrategy,
    buffer: &mut [T],
    mean: Option<&[T]>,
) {
    match (strategy, mean) {
        (BufferStrategy::Reinit, _) => buffer.iter_mut().for_each(|b| *b = T::zero()),
        (BufferStrategy::Sync, Some(m)) => buffer.copy_from_slice(m),
        (BufferStrategy::Sync, None) | (BufferStrategy::Maintain, _) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_step_is_heavy_ball_on_the_displacement() {
        let mut s = SlowMo::<f64>::new(vec![1.0], 0.5, 0.5, 2, BufferStrategy::Maintain);
        assert!(!s.due(0) && s.due(1) && s.due(3));
        // u = (1 − 0.6)/0.1 = 4; x0 = 1 − 0.5·0.1·4 = 0.8.
        let x = s.step(&[0.6], 0.1).to_vec();
        assert!((x[0] - 0.8).abs() < 1e-12);
        // u = 0.5·4 + (0.8 − 0.7)/0.1 = 3; x0 = 0.8 − 0.05·3 = 0.65.
        let x = s.step(&[0.7], 0.1).to_vec();
        assert!((x[0] - 0.65).abs() < 1e-12 && (s.slow_buffer()[0] - 3.0).abs() < 1e-12);
    }

    #[test]
    fn a_node_that_adopts_anothers_state_takes_the_same_slow_steps() {
        let mut a = SlowMo::<f64>::new(vec![1.0, -1.0], 0.7, 0.5, 2, BufferStrategy::Maintain);
        a.step(&[0.6, -0.4], 0.1);
        a.step(&[0.5, -0.2], 0.1);
        // b started later from elsewhere, with a zero slow buffer.
        let mut b = SlowMo::<f64>::new(vec![9.0, 9.0], 0.7, 0.5, 2, BufferStrategy::Maintain);
        assert!(b.adopt(&[1.0; 3]).is_err());
        assert_eq!(
            b.outer_point(),
            &[9.0, 9.0],
            "a refused state changes nothing"
        );
        b.adopt(&a.shared_state()).unwrap();
        assert_eq!(b.shared_state(), a.shared_state());
        assert_eq!(b.step(&[0.3, 0.1], 0.1), a.step(&[0.3, 0.1], 0.1));
        assert_eq!(b.slow_buffer(), a.slow_buffer());
    }
}
