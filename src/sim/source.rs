//! What the simulator's virtual workers compute and what it evaluates, behind one interface:
//! an analytic objective with seeded noise, or a real model on real data
//! ([`ModelSource`](super::ModelSource)).

use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::Objective;
use crate::algo::vector::axpy;

/// One evaluation of the parameters the simulator holds (the server's, or the nodes' mean).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// The exact objective, or a model's test loss.
    pub loss: f64,
    /// A model's test accuracy; `None` for analytic objectives.
    pub accuracy: Option<f64>,
}

/// The gradients of K virtual workers and the evaluation of a parameter vector.
pub trait GradientSource {
    /// Number of parameters.
    fn dim(&self) -> usize;
    /// The initial parameters `w_0`.
    fn initial(&self) -> Result<Vec<f32>>;
    /// Worker `worker`'s next stochastic gradient at `w` plus `weight_decay × w`, written into
    /// `out`; returns the mini-batch loss where there is one (a model), else `None`.
    fn gradient(
        &mut self,
        worker: usize,
        w: &[f32],
        weight_decay: f32,
        out: &mut Vec<f32>,
    ) -> Result<Option<f64>>;
    /// Worker `worker`'s local loss at `w` (PC-ASGD's adaptive θ): a model's loss on that
    /// worker's last mini-batch, an analytic objective's exact loss.
    fn local_loss(&mut self, worker: usize, w: &[f32]) -> Result<f64>;
    /// Loss (and accuracy) of `w`.
    fn evaluate(&mut self, w: &[f32]) -> Result<Evaluation>;
}

/// An analytic objective and one noise stream per worker.
pub struct AnalyticSource {
    objective: Box<dyn Objective>,
    noise: Vec<ChaCha8Rng>,
}

impl AnalyticSource {
    /// `objective` for `workers` workers whose noise streams derive from `seed`.
    pub fn new(objective: Box<dyn Objective>, workers: usize, seed: u64) -> Self {
        let noise = (0..workers)
            .map(|i| ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(i as u64)))
            .collect();
        AnalyticSource { objective, noise }
    }
}

impl GradientSource for AnalyticSource {
    fn dim(&self) -> usize {
        self.objective.dim()
    }

    fn initial(&self) -> Result<Vec<f32>> {
        Ok(self.objective.initial())
    }

    fn gradient(
        &mut self,
        worker: usize,
        w: &[f32],
        weight_decay: f32,
        out: &mut Vec<f32>,
    ) -> Result<Option<f64>> {
        self.objective.gradient(w, &mut self.noise[worker], out);
        if weight_decay != 0.0 {
            axpy(out, weight_decay, w);
        }
        Ok(None)
    }

    fn local_loss(&mut self, _worker: usize, w: &[f32]) -> Result<f64> {
        Ok(self.objective.loss(w))
    }

    fn evaluate(&mut self, w: &[f32]) -> Result<Evaluation> {
        Ok(Evaluation {
            loss: self.objective.loss(w),
            accuracy: None,
        })
    }
}

/// The mean of the mini-batch losses reported since the last [`LossWindow::take`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LossWindow {
    sum: f64,
    count: u64,
}

impl LossWindow {
    /// Adds a gradient's mini-batch loss, if it had one.
    pub fn add(&mut self, loss: Option<f64>) {
        if let Some(l) = loss {
            self.sum += l;
            self.count += 1;
        }
    }

    /// The mean loss (`None` when nothing was added or it is not finite); starts again empty.
    pub fn take(&mut self) -> Option<f64> {
        let mean = self.sum / self.count as f64;
        let had = self.count > 0;
        *self = LossWindow::default();
        (had && mean.is_finite()).then_some(mean)
    }
}
