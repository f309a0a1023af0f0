//! The analytic objectives a virtual worker can compute (a noisy gradient; the simulator
//! evaluates the exact loss), and the choice between them and a real model.

use rand_chacha::ChaCha8Rng;

use anyhow::Result;

use super::source::{AnalyticSource, GradientSource};
use super::{Logistic, ModelSource, ObjectiveName, Quadratic, SimConfig, SimSetup};

/// An analytic training objective with stochastic gradients.
pub trait Objective: Send + Sync {
    /// Number of parameters.
    fn dim(&self) -> usize;
    /// The initial parameters `w_0`.
    fn initial(&self) -> Vec<f32>;
    /// The exact (full-data, noise-free) loss at `w`.
    fn loss(&self, w: &[f32]) -> f64;
    /// A stochastic gradient at `w`, drawn with `rng`, written into `out`.
    fn gradient(&self, w: &[f32], rng: &mut ChaCha8Rng, out: &mut Vec<f32>);
}

/// Builds the configured analytic objective (`None` for `model`); `seed` fixes generated data.
pub fn build_objective(config: &SimConfig, seed: u64) -> Option<Box<dyn Objective>> {
    match config.objective {
        ObjectiveName::Quadratic => Some(Box::new(Quadratic::from_params(&config.quadratic))),
        ObjectiveName::Logistic => Some(Box::new(Logistic::generate(&config.logistic, seed))),
        ObjectiveName::Model => None,
    }
}

/// What `setup`'s `workers` virtual workers compute: the analytic objective with its noise
/// streams, or the model (which loads the data set, hence the error).
pub fn build_source(setup: &SimSetup) -> Result<Box<dyn GradientSource>> {
    Ok(match build_objective(&setup.sim, setup.seed) {
        Some(objective) => Box::new(AnalyticSource::new(objective, setup.workers, setup.seed)),
        None => Box::new(ModelSource::build(setup, setup.workers)?),
    })
}
