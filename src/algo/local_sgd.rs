//! The local optimizer of a training process: SGD with heavy-ball or Nesterov momentum and L2
//! weight decay, on the flat parameter vector (PyTorch's `torch.optim.SGD` semantics).

use super::vector::{axpby, axpy};
use super::Real;

/// `g' = g + λw; b = μb + g'; d = g' + μb (Nesterov) or b; w −= η d`. With μ = 0, `d = g'`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalSgd<T> {
    momentum: T,
    nesterov: bool,
    weight_decay: T,
    buffer: Vec<T>,
    scratch: Vec<T>,
}

impl<T: Real> LocalSgd<T> {
    /// An optimizer for `len` parameters; the momentum buffer starts at zero.
    pub fn new(len: usize, momentum: f64, nesterov: bool, weight_decay: f64) -> Self {
        LocalSgd {
            momentum: T::of(momentum),
            nesterov,
            weight_decay: T::of(weight_decay),
            buffer: vec![T::zero(); len],
            scratch: vec![T::zero(); len],
        }
    }

    /// The momentum buffer (for checkpoints).
    pub fn buffer(&self) -> &[T] {
        &self.buffer
    }

    /// The momentum buffer, to reset or replace (SlowMo's and Local SGD's buffer strategies).
    pub fn buffer_mut(&mut self) -> &mut [T] {
        &mut self.buffer
    }

    /// One step with learning rate `lr`; `params` and `grad` must have the optimizer's length.
    pub fn step(&mut self, params: &mut [T], grad: &[T], lr: f64) {
        debug_assert_eq!(params.len(), self.buffer.len());
        debug_assert_eq!(grad.len(), self.buffer.len());
        self.scratch.copy_from_slice(grad);
        if self.weight_decay != T::zero() {
            axpy(&mut self.scratch, self.weight_decay, params);
        }
        self.descend(params, lr);
    }

    /// [`LocalSgd::step`] for a gradient taken at `point` rather than at `params` (a gossip node
    /// steps a mixed or push-sum-scaled vector with the gradient of its de-biased point): the
    /// weight-decay term is `weight_decay × point`, the gradient of the decay at that point.
    pub fn step_decaying_at(&mut self, params: &mut [T], grad: &[T], point: &[T], lr: f64) {
        debug_assert_eq!(point.len(), self.buffer.len());
        self.scratch.copy_from_slice(grad);
        if self.weight_decay != T::zero() {
            axpy(&mut self.scratch, self.weight_decay, point);
        }
        self.descend(params, lr);
    }

    /// Momentum (heavy-ball or Nesterov) on the gradient in `scratch`, then the step.
    fn descend(&mut self, params: &mut [T], lr: f64) {
        let lr = T::of(lr);
        let d = &mut self.scratch;
        if self.momentum != T::zero() {
            axpby(&mut self.buffer, self.momentum, T::one(), d);
            if self.nesterov {
                axpy(d, self.momentum, &self.buffer);
            } else {
                d.copy_from_slice(&self.buffer);
            }
        }
        axpy(params, -lr, d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_sgd_with_weight_decay() {
        let mut opt = LocalSgd::<f64>::new(2, 0.0, false, 0.5);
        let mut w = vec![1.0, -2.0];
        opt.step(&mut w, &[0.25, 0.5], 0.1);
        // g' = g + 0.5 w = [0.75, -0.5]; w = w − 0.1 g'.
        assert_eq!(w, vec![1.0 - 0.075, -2.0 + 0.05]);
    }

    #[test]
    fn heavy_ball_and_nesterov_match_their_recurrences() {
        let grads = [[1.0, 0.0], [0.5, 2.0], [-1.0, 1.0]];
        for nesterov in [false, true] {
            let mut opt = LocalSgd::<f64>::new(2, 0.9, nesterov, 0.0);
            let mut w = vec![0.0, 0.0];
            let (mut b, mut w_ref) = ([0.0f64; 2], [0.0f64; 2]);
            for g in grads {
                opt.step(&mut w, &g, 0.1);
                for i in 0..2 {
                    b[i] = 0.9 * b[i] + g[i];
                    let d = if nesterov { g[i] + 0.9 * b[i] } else { b[i] };
                    w_ref[i] -= 0.1 * d;
                }
            }
            assert_eq!(w, w_ref.to_vec(), "nesterov = {nesterov}");
        }
    }
}
