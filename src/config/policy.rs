//! The run policy each kind of run follows, read from its configuration sections, so that every
//! shell builds its [`PolicyConfig`] the same way.

use super::Config;
use crate::run::PolicyConfig;

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
            lr: self.algorithm.lr_schedule(),
        }
    }
}
