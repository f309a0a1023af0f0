//! Which examples a worker trains on, in which order: a disjoint shard or the whole set, shuffled
//! anew each epoch from the seed.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How the training set is divided among workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Sharding {
    /// Each worker owns a disjoint shard (a seeded partition of the whole set).
    #[default]
    Disjoint,
    /// Every worker samples the whole set with its own seeded order.
    Independent,
}

/// An endless stream of example indexes for one worker, epoch after epoch.
#[derive(Debug, Clone)]
pub struct Sampler {
    pool: Vec<usize>,
    order: Vec<usize>,
    position: usize,
    epoch: u64,
    seed: u64,
}

impl Sampler {
    /// The sampler of `worker` (of `workers`) over `len` examples.
    pub fn new(len: usize, worker: usize, workers: usize, sharding: Sharding, seed: u64) -> Self {
        let workers = workers.max(1);
        let pool = match sharding {
            Sharding::Independent => (0..len).collect(),
            Sharding::Disjoint => {
                let mut all: Vec<usize> = (0..len).collect();
                all.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x0053_4841_5244));
                let start = len * worker / workers;
                let end = len * (worker + 1) / workers;
                all[start..end].to_vec()
            }
        };
        let stream = seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(worker as u64 + 1);
        let mut s = Sampler {
            order: pool.clone(),
            pool,
            position: 0,
            epoch: 0,
            seed: stream,
        };
        s.reshuffle();
        s
    }

    fn reshuffle(&mut self) {
        self.order.clone_from(&self.pool);
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed ^ self.epoch.wrapping_mul(0x2545_f491_4f6c_dd1d));
        self.order.shuffle(&mut rng);
        self.position = 0;
    }

    /// [`Sampler::new`] for a worker that holds only its own examples: returns the data set's
    /// indexes of its pool (in pool order) and a sampler that counts positions in that pool.
    /// With the examples copied out in that order, it draws exactly the examples `new`'s
    /// sampler would.
    pub fn local(
        len: usize,
        worker: usize,
        workers: usize,
        sharding: Sharding,
        seed: u64,
    ) -> (Vec<usize>, Self) {
        let mut s = Sampler::new(len, worker, workers, sharding, seed);
        let positions = (0..s.pool.len()).collect();
        let shard = std::mem::replace(&mut s.pool, positions);
        // A shuffle permutes positions whatever the values, so this is the same order.
        s.reshuffle();
        (shard, s)
    }

    /// Examples in this worker's pool.
    pub fn pool_len(&self) -> usize {
        self.pool.len()
    }

    /// Completed passes over the pool.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The next `size` indexes; an epoch boundary inside the batch starts a new shuffle.
    pub fn next_batch(&mut self, size: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(size);
        if self.pool.is_empty() {
            return out;
        }
        while out.len() < size {
            if self.position == self.order.len() {
                self.epoch += 1;
                self.reshuffle();
            }
            out.push(self.order[self.position]);
            self.position += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_shards_partition_the_set_and_each_epoch_covers_a_shard_once() {
        let (len, workers) = (103, 4);
        let mut seen = vec![0u32; len];
        for w in 0..workers {
            let mut s = Sampler::new(len, w, workers, Sharding::Disjoint, 9);
            let n = s.pool_len();
            let first = s.next_batch(n);
            let mut sorted = first.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), n, "an epoch visits every shard example once");
            for &i in &first {
                seen[i] += 1;
            }
            let second = s.next_batch(n);
            assert_eq!(s.epoch(), 1);
            assert_ne!(first, second, "each epoch is shuffled anew");
            let mut again = second.clone();
            again.sort_unstable();
            assert_eq!(again, sorted);
        }
        assert!(
            seen.iter().all(|&c| c == 1),
            "shards are disjoint and cover the set"
        );
    }

    #[test]
    fn a_localized_sampler_draws_the_same_examples_by_position() {
        for sharding in [Sharding::Disjoint, Sharding::Independent] {
            let mut global = Sampler::new(97, 2, 3, sharding, 11);
            let (shard, mut local) = Sampler::local(97, 2, 3, sharding, 11);
            assert_eq!(shard.len(), global.pool_len());
            for _ in 0..5 {
                let want = global.next_batch(16);
                let got: Vec<usize> = local.next_batch(16).iter().map(|&p| shard[p]).collect();
                assert_eq!(got, want, "{sharding:?}");
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_order_and_independent_workers_differ() {
        let a = Sampler::new(50, 1, 3, Sharding::Independent, 5).next_batch(120);
        let b = Sampler::new(50, 1, 3, Sharding::Independent, 5).next_batch(120);
        let c = Sampler::new(50, 2, 3, Sharding::Independent, 5).next_batch(120);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|&i| i < 50));
    }
}
