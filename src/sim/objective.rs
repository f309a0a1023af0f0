//! What a virtual worker computes: a noisy gradient of an analytic objective, and what the
//! simulator evaluates: the exact loss.

use rand_chacha::ChaCha8Rng;

use super::{Logistic, ObjectiveName, Quadratic, SimConfig};

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

/// Builds the configured objective; `seed` fixes generated data.
pub fn build_objective(config: &SimConfig, seed: u64) -> Box<dyn Objective> {
    match config.objective {
        ObjectiveName::Quadratic => Box::new(Quadratic::from_params(&config.quadratic)),
        ObjectiveName::Logistic => Box::new(Logistic::generate(&config.logistic, seed)),
    }
}
