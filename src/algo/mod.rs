//! The parameter-server algorithms of the OrMo paper and DC-ASGD, as pure state machines over flat
//! vectors (spec: `docs/algorithms.md` §1–§8).
//!
//! Nothing here knows about sockets, threads, clocks or candle: an algorithm is handed one gradient
//! at a time, with the iteration index it was computed on, and updates its parameters. What is sent
//! back to a worker is asked for separately ([`ServerAlgorithm::dispatch`]), because SMEGA² sends an
//! estimate and DC-ASGD remembers what each worker got.

mod dcasgd;
mod decen_params;
mod delay_rule;
mod local_sgd;
mod lr_schedule;
mod naive_asgdm;
pub mod ormo;
mod params;
mod real;
mod sgd;
mod shifted_momentum;
mod smega2;
mod ssgdm;
mod state;
pub mod vector;

use std::borrow::Cow;

pub use dcasgd::DcAsgd;
pub use decen_params::{
    BmufParams, BufferStrategy, DpsgdForm, GossipParams, LocalSgdParams, LookaheadParams,
    PcAsgdParams, SlowMoBase, SlowMoParams, Theta, ThetaRule, TopologyName,
};
pub use delay_rule::DelayRule;
pub use local_sgd::LocalSgd;
pub use lr_schedule::LrSchedule;
pub use naive_asgdm::NaiveAsgdm;
pub use ormo::OrMo;
pub use params::{
    AlgorithmConfig, AlgorithmName, DcAsgdParams, OrmoDaParams, Scheduler, Smega2Estimate,
    Smega2Params,
};
pub use real::Real;
pub use sgd::Sgd;
pub use shifted_momentum::ShiftedMomentum;
pub use smega2::Smega2;
pub use ssgdm::Ssgdm;
pub use state::AlgorithmState;

/// One gradient as the server applies it at iteration `t`.
#[derive(Debug, Clone, Copy)]
pub struct Update<'a, T> {
    /// The worker that computed it (`k_t`).
    pub worker: usize,
    /// The server iteration that applies it (0-based; `w_t` is the parameter before it).
    pub t: u64,
    /// The index of the parameters it was computed on (`ite(k_t, t) ≤ t`).
    pub ite: u64,
    /// The mini-batch gradient, already including the worker's weight decay where the algorithm
    /// puts weight decay on the worker (see [`ServerAlgorithm::worker_weight_decay`]).
    pub grad: &'a [T],
    /// True at a round's first applied gradient (the spec's "waiting set C is empty"): always
    /// under the asynchronous scheduler, once per broadcast under the synchronous one.
    pub round_start: bool,
    /// The scheduled learning rate of this iteration (warm-up and decay applied).
    pub lr: T,
}

impl<T> Update<'_, T> {
    /// The staleness `τ_t = t − ite`.
    pub fn staleness(&self) -> u64 {
        self.t.saturating_sub(self.ite)
    }
}

/// What applying one gradient did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Applied {
    /// The fraction of the scheduled learning rate the gradient was applied with: 1, except
    /// where OrMo-DA reduces it for a stale gradient (0 when dropped).
    pub lr_factor: f64,
}

impl Applied {
    /// Applied with the full scheduled learning rate.
    pub const FULL: Applied = Applied { lr_factor: 1.0 };
}

/// An update that an algorithm refuses because its own invariants would break.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlgorithmError {
    /// OrMo: the gradient's group is newer than the latest group (`n < 0`): an index is wrong.
    #[error("gradient group {group} is newer than the latest group {latest} (index {ite} at iteration {t})")]
    GroupFromTheFuture {
        /// `⌈ite/K⌉`.
        group: u64,
        /// `I_t`.
        latest: u64,
        /// The gradient's parameter index.
        ite: u64,
        /// The server iteration.
        t: u64,
    },
    /// The worker id is outside the algorithm's per-worker state.
    #[error("worker {worker} is outside 0..{workers}")]
    UnknownWorker {
        /// The offending id.
        worker: usize,
        /// The number of worker slots.
        workers: usize,
    },
}

/// A parameter-server algorithm: the server side of one of the spec's update rules.
pub trait ServerAlgorithm<T: Real>: Send {
    /// The master parameters `w_t` (what is evaluated and checkpointed).
    fn params(&self) -> &[T];
    /// Applies one gradient; on error the state is unchanged.
    fn apply(&mut self, update: &Update<'_, T>) -> Result<Applied, AlgorithmError>;
    /// The parameters to send to `worker` now, having recorded whatever the algorithm must
    /// remember about that send: `w` itself by default (borrowed, so a caller can convert it for
    /// the wire without copying it first); SMEGA² computes its estimate, DC-ASGD keeps a backup.
    fn dispatch_view(&mut self, _worker: usize) -> Result<Cow<'_, [T]>, AlgorithmError> {
        Ok(Cow::Borrowed(self.params()))
    }
    /// [`ServerAlgorithm::dispatch_view`] written into `out` (its previous contents replaced).
    fn dispatch(&mut self, worker: usize, out: &mut Vec<T>) -> Result<(), AlgorithmError> {
        let values = self.dispatch_view(worker)?;
        out.clear();
        out.extend_from_slice(&values);
        Ok(())
    }
    /// The weight decay a worker must add to its gradient (`wd·w_ite`); 0 when the algorithm
    /// applies weight decay on the server (SMEGA², DC-ASGD).
    fn worker_weight_decay(&self) -> f64;
    /// Everything the algorithm has learned (for checkpoints); hyper-parameters excluded.
    fn save_state(&self) -> AlgorithmState<T>;
    /// Replaces the learned state with a saved one from the same algorithm and model; on error
    /// (a missing or wrongly sized entry) the state is unchanged.
    fn load_state(&mut self, state: &AlgorithmState<T>) -> Result<(), String>;
}

/// Builds the configured parameter-server algorithm for `workers` workers, starting from `w0`;
/// an error for a name of the decentralized family, which has no server update rule.
pub fn build<T: Real>(
    config: &AlgorithmConfig,
    workers: usize,
    w0: Vec<T>,
) -> Result<Box<dyn ServerAlgorithm<T>>, String> {
    let beta = config.momentum;
    let wd = config.weight_decay;
    Ok(match config.name {
        AlgorithmName::Asgd | AlgorithmName::Ssgd => Box::new(Sgd::new(w0, wd)),
        AlgorithmName::Ssgdm => Box::new(Ssgdm::new(w0, beta, wd)),
        AlgorithmName::NaiveAsgdm => Box::new(NaiveAsgdm::new(w0, beta, wd)),
        AlgorithmName::ShiftedMomentum => Box::new(ShiftedMomentum::new(w0, workers, beta, wd)),
        AlgorithmName::Smega2 => Box::new(Smega2::new(w0, workers, beta, wd, config.smega2)),
        AlgorithmName::Ormo | AlgorithmName::OrmoDa => {
            let rule = match config.name {
                AlgorithmName::OrmoDa => config.ormo_da.rule(),
                _ => DelayRule::Constant,
            };
            let ormo = OrMo::new(w0, workers, beta, wd, rule);
            match config.scheduler() {
                Scheduler::Sync => Box::new(ormo.synchronous()),
                Scheduler::Async => Box::new(ormo),
            }
        }
        AlgorithmName::Dcasgd => Box::new(DcAsgd::new(w0, workers, beta, wd, config.dcasgd)),
        name => {
            return Err(format!(
                "`{name}` is a decentralized algorithm: it has no parameter-server update rule"
            ))
        }
    })
}
