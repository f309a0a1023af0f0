//! `f(w) = ½ Σ h_j w_j²` with Gaussian gradient noise: the spec's test objective (§17).

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::{Objective, QuadraticParams};

/// A diagonal quadratic with minimum 0 at the origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Quadratic {
    curvatures: Vec<f64>,
    noise: f64,
    init: f64,
}

impl Quadratic {
    /// Explicit curvatures, noise standard deviation and initial coordinate value.
    pub fn new(curvatures: Vec<f64>, noise: f64, init: f64) -> Self {
        Quadratic {
            curvatures,
            noise,
            init,
        }
    }

    /// From `[sim.quadratic]`: explicit curvatures, or `dim` log-spaced from 1 to `1/condition`.
    pub fn from_params(p: &QuadraticParams) -> Self {
        let curvatures = if p.curvatures.is_empty() {
            let d = p.dim.max(1);
            (0..d)
                .map(|j| {
                    let frac = if d == 1 {
                        0.0
                    } else {
                        j as f64 / (d - 1) as f64
                    };
                    p.condition.powf(-frac)
                })
                .collect()
        } else {
            p.curvatures.clone()
        };
        Quadratic::new(curvatures, p.noise, p.init)
    }

    /// The curvatures `h_j`.
    pub fn curvatures(&self) -> &[f64] {
        &self.curvatures
    }
}

impl Objective for Quadratic {
    fn dim(&self) -> usize {
        self.curvatures.len()
    }

    fn initial(&self) -> Vec<f32> {
        vec![self.init as f32; self.curvatures.len()]
    }

    fn loss(&self, w: &[f32]) -> f64 {
        0.5 * self
            .curvatures
            .iter()
            .zip(w)
            .map(|(h, &x)| h * f64::from(x) * f64::from(x))
            .sum::<f64>()
    }

    fn gradient(&self, w: &[f32], rng: &mut ChaCha8Rng, out: &mut Vec<f32>) {
        out.clear();
        for (h, &x) in self.curvatures.iter().zip(w) {
            let noise = if self.noise > 0.0 {
                let z: f64 = StandardNormal.sample(rng);
                self.noise * z
            } else {
                0.0
            };
            out.push((h * f64::from(x) + noise) as f32);
        }
    }
}
