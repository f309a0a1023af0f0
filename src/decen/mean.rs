//! The exact averages of the decentralized family: every mean over nodes goes through
//! [`node_mean`], summed in slot order, so every node (in one process or on the network) gets
//! bit-identical values.

use crate::algo::Real;

/// Consensus distance of the nodes' parameters: `sqrt(mean_i ‖z_i − z̄‖²)`.
pub fn consensus_distance<T: Real>(params: &[Vec<T>]) -> f64 {
    let avg = node_mean(params);
    let total: f64 = params
        .iter()
        .map(|p| {
            p.iter()
                .zip(&avg)
                .map(|(&a, &b)| (a - b).to_f64().powi(2))
                .sum::<f64>()
        })
        .sum();
    (total / params.len() as f64).sqrt()
}

/// The element-wise mean of `vectors` (at least one, all of one length), summed in the order
/// given: every exact average of the family goes through it, so all nodes get identical values.
pub fn node_mean<T: Real>(vectors: &[Vec<T>]) -> Vec<T> {
    let mut sum = vectors[0].clone();
    for v in &vectors[1..] {
        for (s, &x) in sum.iter_mut().zip(v) {
            *s = *s + x;
        }
    }
    let n = T::of(vectors.len() as f64);
    sum.iter_mut().for_each(|s| *s = *s / n);
    sum
}
