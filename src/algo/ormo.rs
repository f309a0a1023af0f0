//! OrMo and OrMo-DA (spec §6–§7): ordered momentum. Gradients are grouped by the iteration index
//! they were computed on (`grp(ite) = ⌈ite/K⌉`), and a gradient of group `j` that arrives while the
//! latest group is `I` enters the momentum with weight `β^n` and the parameters with
//! `c(n) = 1 + β + … + β^n`, `n = I − j`: the state depends only on which gradients arrived.

use super::{AlgorithmError, AlgorithmState, Applied, DelayRule, Real, ServerAlgorithm, Update};
use crate::algo::vector::{axpy_pair, axpy_then_scale, geometric_sum, pow_n};

/// `⌈ite / K⌉`, the gradient group of a parameter index.
pub fn group_of(ite: u64, workers: usize) -> u64 {
    let k = workers.max(1) as u64;
    ite.div_ceil(k)
}

/// OrMo server state: `w`, `u` (scaled convention) and the latest group `I`.
#[derive(Debug, Clone)]
pub struct OrMo<T> {
    w: Vec<T>,
    u: Vec<T>,
    latest_group: u64,
    workers: usize,
    beta: T,
    weight_decay: f64,
    rule: DelayRule,
    /// Groups are the synchronous scheduler's rounds, not `⌈ite/K⌉` (see [`OrMo::synchronous`]).
    rounds: bool,
}

impl<T: Real> OrMo<T> {
    /// Starts from `w0` for `workers` (K) workers. `rule` is `DelayRule::Constant` for OrMo and a
    /// delay-adaptive rule for OrMo-DA.
    pub fn new(w0: Vec<T>, workers: usize, beta: f64, weight_decay: f64, rule: DelayRule) -> Self {
        let u = vec![T::zero(); w0.len()];
        OrMo {
            w: w0,
            u,
            latest_group: 0,
            workers: workers.max(1),
            beta: T::of(beta),
            weight_decay,
            rule,
            rounds: false,
        }
    }

    /// The same OrMo under the synchronous scheduler: each round is a group. Every gradient of a
    /// round is computed on the round's parameters and applied within it (`n = 0`), and the
    /// group advances at each round's first gradient — so OrMo is SSGDm whatever the number of
    /// workers present, where `⌈ite/K⌉` groups would stop advancing once per round as soon as
    /// fewer than K workers take part.
    pub fn synchronous(self) -> Self {
        OrMo {
            rounds: true,
            ..self
        }
    }

    /// The momentum buffer `u` (it holds `η·g` terms).
    pub fn momentum(&self) -> &[T] {
        &self.u
    }

    /// `I_t`, the index of the latest gradient group.
    pub fn latest_group(&self) -> u64 {
        self.latest_group
    }
}

impl<T: Real> ServerAlgorithm<T> for OrMo<T> {
    fn params(&self) -> &[T] {
        &self.w
    }

    fn apply(&mut self, update: &Update<'_, T>) -> Result<Applied, AlgorithmError> {
        // (a) group advance, only when the waiting set is empty (always under async).
        let mut latest = self.latest_group;
        let advance = if self.rounds {
            update.round_start
        } else {
            update.round_start && group_of(update.t, self.workers) > latest
        };
        if advance {
            latest += 1;
        }
        let group = if self.rounds {
            latest
        } else {
            group_of(update.ite, self.workers)
        };
        let n = latest
            .checked_sub(group)
            .ok_or(AlgorithmError::GroupFromTheFuture {
                group,
                latest,
                ite: update.ite,
                t: update.t,
            })?;
        if advance {
            axpy_then_scale(&mut self.w, -self.beta, &mut self.u, self.beta);
            self.latest_group = latest;
        }
        // (b) the delay-adaptive learning rate (plain OrMo keeps η).
        let lr_factor = self.rule.lr(1.0, update.staleness(), self.workers);
        if lr_factor == 0.0 {
            return Ok(Applied { lr_factor });
        }
        let eta = update.lr * T::of(lr_factor);
        // (c) u += β^n η g ; w −= c(n) η g.
        axpy_pair(
            &mut self.u,
            pow_n(self.beta, n) * eta,
            &mut self.w,
            -geometric_sum(self.beta, n) * eta,
            update.grad,
        );
        Ok(Applied { lr_factor })
    }

    fn worker_weight_decay(&self) -> f64 {
        self.weight_decay
    }
    fn save_state(&self) -> AlgorithmState<T> {
        let mut s = AlgorithmState::momentum(&self.w, &self.u);
        s.put_number("latest_group", self.latest_group as f64);
        s
    }

    fn load_state(&mut self, state: &AlgorithmState<T>) -> Result<(), String> {
        let group = state.number("latest_group")?;
        state.load_momentum(&mut self.w, &mut self.u)?;
        self.latest_group = group as u64;
        Ok(())
    }
}
