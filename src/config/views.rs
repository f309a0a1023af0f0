//! What each kind of run takes from the whole configuration: its run policy, and the setup
//! views of the simulator, single-process training and the supervisor (which own their
//! sections but never see the aggregate, so no arrow runs back up to `config`).

use super::Config;
use crate::run::PolicyConfig;
use crate::sim::SimSetup;
use crate::supervisor::SupervisionSetup;
use crate::train::TrainSetup;

impl Config {
    /// The simulator's policy: evaluate every `sim.eval_every` updates; an evaluated loss above
    /// `run.divergence_loss` (or not finite) ends the run; no checkpoints, no progress events.
    pub fn sim_policy(&self) -> PolicyConfig {
        PolicyConfig {
            progress_every: 0,
            eval_every: self.sim.eval_every,
            eval_every_s: 0.0,
            checkpoint_every: 0,
            checkpoint_every_s: 0.0,
            divergence_loss: self.run.divergence_loss,
            patience: 0,
            reporters: 1,
            lr: self.algorithm.lr_schedule(),
        }
    }

    /// A cluster server's policy for `workers` slots: progress every 100 updates, evaluation and
    /// checkpoints as `[server]` says, and two rounds of diverging training losses in a row end
    /// the run.
    pub fn server_policy(&self, workers: usize) -> PolicyConfig {
        PolicyConfig {
            progress_every: 100,
            eval_every: self.server.eval_every,
            eval_every_s: self.server.eval_every_s,
            checkpoint_every: self.server.checkpoint_every,
            checkpoint_every_s: self.server.checkpoint_every_s,
            divergence_loss: self.run.divergence_loss,
            patience: 2 * workers as u64,
            reporters: workers / 2 + 1,
            lr: self.algorithm.lr_schedule(),
        }
    }

    /// What `lagom sim` runs with.
    pub fn sim_setup(&self) -> SimSetup {
        SimSetup {
            algorithm: self.algorithm.clone(),
            workers: self.cluster.workers,
            heterogeneity: self.heterogeneity.clone(),
            sim: self.sim.clone(),
            seed: self.run.seed,
            nesterov: self.train.nesterov,
            policy: self.sim_policy(),
            model: self.model.clone(),
            data: self.data.clone(),
            compute: self.compute.clone(),
            train: self.train.clone(),
        }
    }

    /// What `lagom train` runs with.
    pub fn train_setup(&self) -> TrainSetup {
        TrainSetup {
            algorithm: self.algorithm.clone(),
            model: self.model.clone(),
            data: self.data.clone(),
            compute: self.compute.clone(),
            train: self.train.clone(),
            seed: self.run.seed,
            divergence_loss: self.run.divergence_loss,
        }
    }

    /// What `--role supervisor` (and `--role local`'s supervisor) runs with.
    pub fn supervision_setup(&self) -> SupervisionSetup {
        SupervisionSetup {
            supervisor: self.supervisor.clone(),
            chaos: self.chaos.clone(),
            heterogeneity: self.heterogeneity.clone(),
            workers: self.cluster.workers,
            threads: self.compute.threads,
            seed: self.run.seed,
        }
    }
}
