//! Logistic regression on a generated, learnable data set: labels drawn from a logistic model
//! with a hidden weight vector, so the loss has a non-trivial minimum.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::{LogisticParams, Objective};

/// Binary logistic regression; the last parameter is the bias.
#[derive(Debug, Clone)]
pub struct Logistic {
    features: usize,
    /// Row-major examples, `features` values each.
    x: Vec<f64>,
    y: Vec<f64>,
    batch_size: usize,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// `log(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

impl Logistic {
    /// Generates `samples` Gaussian examples and Bernoulli labels from a hidden model, from `seed`.
    pub fn generate(p: &LogisticParams, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6c6f_6769_7374_6963);
        let f = p.features;
        let hidden: Vec<f64> = (0..=f)
            .map(|_| 2.0 * rng.sample::<f64, _>(StandardNormal))
            .collect();
        let mut x = Vec::with_capacity(p.samples * f);
        let mut y = Vec::with_capacity(p.samples);
        for _ in 0..p.samples {
            let row: Vec<f64> = (0..f).map(|_| rng.sample(StandardNormal)).collect();
            let z = row.iter().zip(&hidden).map(|(a, b)| a * b).sum::<f64>() + hidden[f];
            y.push(if rng.random::<f64>() < sigmoid(z) {
                1.0
            } else {
                0.0
            });
            x.extend(row);
        }
        Logistic {
            features: f,
            x,
            y,
            batch_size: p.batch_size,
        }
    }

    fn margin(&self, i: usize, w: &[f32]) -> f64 {
        let row = &self.x[i * self.features..(i + 1) * self.features];
        row.iter()
            .zip(w)
            .map(|(a, &b)| a * f64::from(b))
            .sum::<f64>()
            + f64::from(w[self.features])
    }
}

impl Objective for Logistic {
    fn dim(&self) -> usize {
        self.features + 1
    }

    fn initial(&self) -> Vec<f32> {
        vec![0.0; self.features + 1]
    }

    fn loss(&self, w: &[f32]) -> f64 {
        let n = self.y.len();
        (0..n)
            .map(|i| {
                let z = self.margin(i, w);
                softplus(z) - self.y[i] * z
            })
            .sum::<f64>()
            / n as f64
    }

    fn gradient(&self, w: &[f32], rng: &mut ChaCha8Rng, out: &mut Vec<f32>) {
        let mut acc = vec![0.0f64; self.features + 1];
        for _ in 0..self.batch_size {
            let i = rng.random_range(0..self.y.len());
            let r = sigmoid(self.margin(i, w)) - self.y[i];
            let row = &self.x[i * self.features..(i + 1) * self.features];
            for (a, xi) in acc.iter_mut().zip(row) {
                *a += r * xi;
            }
            acc[self.features] += r;
        }
        out.clear();
        out.extend(acc.iter().map(|a| (a / self.batch_size as f64) as f32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gradient_is_an_unbiased_estimate_of_the_loss_slope() {
        let p = LogisticParams {
            samples: 200,
            features: 3,
            batch_size: 200,
        };
        let obj = Logistic::generate(&p, 3);
        let w = vec![0.3f32, -0.2, 0.1, 0.05];
        // Average many mini-batch gradients and compare with central differences of the loss.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut mean = [0.0f64; 4];
        let mut g = Vec::new();
        let draws = 400;
        for _ in 0..draws {
            obj.gradient(&w, &mut rng, &mut g);
            for (m, x) in mean.iter_mut().zip(&g) {
                *m += f64::from(*x) / draws as f64;
            }
        }
        for j in 0..4 {
            let h = 1e-3f32;
            let (mut a, mut b) = (w.clone(), w.clone());
            a[j] += h;
            b[j] -= h;
            let fd = (obj.loss(&a) - obj.loss(&b)) / (2.0 * f64::from(h));
            assert!(
                (fd - mean[j]).abs() < 0.02,
                "coordinate {j}: fd {fd} vs {}",
                mean[j]
            );
        }
    }
}
