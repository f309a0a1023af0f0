//! SMEGA² (spec §5, Cohen et al.): one momentum buffer updated once per cycle of N arrivals with
//! the mean of the cycle's gradients; workers receive an estimate of where θ will be N arrivals
//! later instead of θ itself.

use std::borrow::Cow;

use super::{
    AlgorithmError, AlgorithmState, Applied, Real, ServerAlgorithm, Smega2Estimate, Smega2Params,
    Update,
};
use crate::algo::vector::{axpby, axpy};

/// SMEGA² server state: θ, the buffer `v`, the cycle accumulator `G` and the step counter `s`.
#[derive(Debug, Clone)]
pub struct Smega2<T> {
    theta: Vec<T>,
    v: Vec<T>,
    accumulated: Vec<T>,
    step: usize,
    cycle: usize,
    beta: T,
    weight_decay: T,
    dampening: T,
    estimate: Smega2Estimate,
    /// The learning rate of the last applied update, used by the estimate (before the first
    /// update `v = G = 0`, so the estimate is θ whatever this is).
    last_lr: T,
    scratch: Vec<T>,
}

impl<T: Real> Smega2<T> {
    /// Starts from `w0`. The cycle is `params.cycle`, or `workers` when that is 0. Weight decay is
    /// applied on the server with the master θ, as the reference code does.
    pub fn new(
        w0: Vec<T>,
        workers: usize,
        beta: f64,
        weight_decay: f64,
        params: Smega2Params,
    ) -> Self {
        let d = w0.len();
        let cycle = if params.cycle == 0 {
            workers.max(1)
        } else {
            params.cycle
        };
        Smega2 {
            theta: w0,
            v: vec![T::zero(); d],
            accumulated: vec![T::zero(); d],
            step: 0,
            cycle,
            beta: T::of(beta),
            weight_decay: T::of(weight_decay),
            dampening: T::of(params.dampening),
            estimate: params.estimate,
            last_lr: T::zero(),
            scratch: Vec::new(),
        }
    }

    /// The momentum buffer `v`.
    pub fn momentum(&self) -> &[T] {
        &self.v
    }

    /// The step counter `s` within the current cycle.
    pub fn step_in_cycle(&self) -> usize {
        self.step
    }

    /// Writes the estimate of θ after `N` further arrivals of zero gradients into `out`.
    fn write_estimate(&self, out: &mut Vec<T>) {
        out.clear();
        out.extend_from_slice(&self.theta);
        let eta_beta = self.last_lr * self.beta;
        match self.estimate {
            Smega2Estimate::Advanced => {
                let n = T::of(self.cycle as f64);
                let s = T::of(self.step as f64);
                let v_coef = n + s * (self.beta - T::one());
                let g_coef = s / n;
                for ((o, &v), &g) in out.iter_mut().zip(&self.v).zip(&self.accumulated) {
                    *o = *o - eta_beta * (v_coef * v + g_coef * g);
                }
            }
            Smega2Estimate::Naive => {
                let n = T::of(self.cycle as f64);
                axpy(out, -eta_beta * n, &self.v);
            }
        }
    }
}

impl<T: Real> ServerAlgorithm<T> for Smega2<T> {
    fn params(&self) -> &[T] {
        &self.theta
    }

    fn apply(&mut self, update: &Update<'_, T>) -> Result<Applied, AlgorithmError> {
        let lr = update.lr;
        // d = g + wd·θ (master θ); step = d + β·v with the pre-update v.
        let mut d = std::mem::take(&mut self.scratch);
        d.clear();
        d.extend_from_slice(update.grad);
        axpy(&mut d, self.weight_decay, &self.theta);
        self.step = (self.step + 1) % self.cycle;
        axpy(&mut self.accumulated, T::one(), &d);
        // θ −= η (d + β v), using v before this call's buffer update.
        axpy(&mut self.theta, -lr, &d);
        axpy(&mut self.theta, -lr * self.beta, &self.v);
        if self.step == 0 {
            let weight = (T::one() - self.dampening) / T::of(self.cycle as f64);
            axpby(&mut self.v, self.beta, weight, &self.accumulated);
            self.accumulated.iter_mut().for_each(|x| *x = T::zero());
        }
        self.scratch = d;
        self.last_lr = lr;
        Ok(Applied::FULL)
    }

    fn dispatch_view(&mut self, _worker: usize) -> Result<Cow<'_, [T]>, AlgorithmError> {
        let mut estimate = Vec::with_capacity(self.theta.len());
        self.write_estimate(&mut estimate);
        Ok(Cow::Owned(estimate))
    }

    fn worker_weight_decay(&self) -> f64 {
        0.0
    }
    fn save_state(&self) -> AlgorithmState<T> {
        let mut s = AlgorithmState::default();
        s.put("theta", &self.theta);
        s.put("v", &self.v);
        s.put("accumulated", &self.accumulated);
        s.put_number("step", self.step as f64);
        s.put_number("last_lr", self.last_lr.to_f64());
        s
    }

    fn load_state(&mut self, state: &AlgorithmState<T>) -> Result<(), String> {
        let d = self.theta.len();
        let theta = state.vector("theta", d)?;
        let v = state.vector("v", d)?;
        let accumulated = state.vector("accumulated", d)?;
        let step = state.number("step")?;
        let last_lr = state.number("last_lr")?;
        self.theta = theta;
        self.v = v;
        self.accumulated = accumulated;
        self.step = step as usize;
        self.last_lr = T::of(last_lr);
        Ok(())
    }
}
