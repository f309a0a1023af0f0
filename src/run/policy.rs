//! The run policy, as a pure core shared by the parameter-server actor, the rendezvous and both
//! simulators: when to report progress, evaluate and checkpoint (by update count and by time),
//! the learning rate of an update, and the one rule that says a run has diverged. Time is passed
//! in as seconds since the run started; nothing here reads a clock.
//!
//! The divergence rule: a run has diverged when `patience` training losses in a row, reported by
//! at least `reporters` distinct workers, are above `divergence_loss` or not finite (a gradient
//! refused for non-finite values counts as such a loss), or when an evaluated loss is. The cluster
//! sets `patience` to two rounds of workers and `reporters` to a majority of them, so one broken
//! or hostile worker sending NaN losses cannot end everyone's run (its gradients are refused, and
//! the evaluated loss still decides); the simulators have no per-gradient losses and decide on
//! evaluated losses alone.

use std::collections::BTreeSet;

use crate::algo::LrSchedule;

/// How a run is paced and when it counts as diverged.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// Report progress every this many updates (0: never).
    pub progress_every: u64,
    /// Evaluate every this many updates (0: not by count).
    pub eval_every: u64,
    /// Evaluate at least every this many seconds (0: not by time).
    pub eval_every_s: f64,
    /// Checkpoint every this many updates (0: not by count).
    pub checkpoint_every: u64,
    /// Checkpoint at least every this many seconds (0: not by time).
    pub checkpoint_every_s: f64,
    /// A loss above this, or not finite, is a diverging loss.
    pub divergence_loss: f64,
    /// Diverging training losses in a row that end the run (0: training losses never do).
    pub patience: u64,
    /// Distinct workers among those losses needed to end the run (at least 1).
    pub reporters: usize,
    /// The learning rate of each update.
    pub lr: LrSchedule,
}

impl PolicyConfig {
    /// Only an evaluation cadence and a learning-rate schedule: what a decentralized worker
    /// follows (it reports every `eval_every` iterations; the rendezvous judges divergence).
    pub fn evaluate_every(eval_every: u64, lr: LrSchedule) -> Self {
        PolicyConfig {
            progress_every: 0,
            eval_every,
            eval_every_s: 0.0,
            checkpoint_every: 0,
            checkpoint_every_s: 0.0,
            divergence_loss: f64::INFINITY,
            patience: 0,
            reporters: 1,
            lr,
        }
    }
}

/// What the policy says the run must do now.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyAction {
    /// Record progress (a progress event).
    Progress,
    /// Evaluate the current model.
    Evaluate,
    /// Write a checkpoint.
    Checkpoint,
    /// The run has diverged: stop it, saying why.
    Diverged(String),
}

/// The policy's state (see the module docs).
#[derive(Debug, Clone)]
pub struct RunPolicy {
    config: PolicyConfig,
    bad_in_a_row: u64,
    bad_reporters: BTreeSet<usize>,
    last_eval_s: f64,
    last_checkpoint_s: f64,
    diverged: Option<String>,
}

impl RunPolicy {
    /// A policy for a run that starts (or resumes) at time `now_s`.
    pub fn new(config: PolicyConfig, now_s: f64) -> Self {
        RunPolicy {
            config,
            bad_in_a_row: 0,
            bad_reporters: BTreeSet::new(),
            last_eval_s: now_s,
            last_checkpoint_s: now_s,
            diverged: None,
        }
    }

    /// The learning rate of update `t` (0-based).
    pub fn lr(&self, t: u64) -> f64 {
        self.config.lr.at(t)
    }

    /// Why the run diverged, once it has.
    pub fn diverged(&self) -> Option<&str> {
        self.diverged.as_deref()
    }

    /// True when `loss` is a diverging loss (above the limit or not finite).
    pub fn is_diverging(&self, loss: f64) -> bool {
        !(loss.is_finite() && loss <= self.config.divergence_loss)
    }

    /// `updates` updates are done: what their count makes due.
    pub fn after_update(&mut self, updates: u64, now_s: f64) -> Vec<PolicyAction> {
        let due = |every: u64| every > 0 && updates > 0 && updates % every == 0;
        let mut out = Vec::new();
        if due(self.config.progress_every) {
            out.push(PolicyAction::Progress);
        }
        if due(self.config.eval_every) {
            self.last_eval_s = now_s;
            out.push(PolicyAction::Evaluate);
        }
        if due(self.config.checkpoint_every) {
            self.last_checkpoint_s = now_s;
            out.push(PolicyAction::Checkpoint);
        }
        out
    }

    /// The time is `now_s`: what the clock makes due.
    pub fn on_tick(&mut self, now_s: f64) -> Vec<PolicyAction> {
        let mut out = Vec::new();
        let every = self.config.eval_every_s;
        if every > 0.0 && now_s - self.last_eval_s >= every {
            self.last_eval_s = now_s;
            out.push(PolicyAction::Evaluate);
        }
        let every = self.config.checkpoint_every_s;
        if every > 0.0 && now_s - self.last_checkpoint_s >= every {
            self.last_checkpoint_s = now_s;
            out.push(PolicyAction::Checkpoint);
        }
        out
    }

    /// How often the shell should call [`on_tick`](Self::on_tick), if ever: the shorter of the
    /// positive time cadences.
    pub fn tick_every_s(&self) -> Option<f64> {
        [self.config.eval_every_s, self.config.checkpoint_every_s]
            .into_iter()
            .filter(|&s| s > 0.0)
            .reduce(f64::min)
    }

    /// A training loss came in from `worker` (or `f64::NAN` for a gradient refused as
    /// non-finite).
    pub fn on_training_loss(&mut self, worker: usize, loss: f64) -> Option<PolicyAction> {
        if !self.is_diverging(loss) {
            self.bad_in_a_row = 0;
            self.bad_reporters.clear();
            return None;
        }
        self.bad_in_a_row = self.bad_in_a_row.saturating_add(1);
        // Bounded by the number of slots the caller has.
        self.bad_reporters.insert(worker);
        let patience = self.config.patience;
        let reporters = self.config.reporters.max(1);
        if patience == 0 || self.bad_in_a_row < patience || self.bad_reporters.len() < reporters {
            return None;
        }
        let reason = format!(
            "{} training losses in a row from {} workers were above {} or not finite",
            self.bad_in_a_row,
            self.bad_reporters.len(),
            self.config.divergence_loss
        );
        self.diverge(reason)
    }

    /// An evaluated loss came in.
    pub fn on_evaluated_loss(&mut self, loss: f64) -> Option<PolicyAction> {
        if !self.is_diverging(loss) {
            return None;
        }
        let reason = format!(
            "the evaluated loss {loss} is above {} or not finite",
            self.config.divergence_loss
        );
        self.diverge(reason)
    }

    /// Marks the run diverged (once); returns the action the first time.
    fn diverge(&mut self, reason: String) -> Option<PolicyAction> {
        if self.diverged.is_some() {
            return None;
        }
        self.diverged = Some(reason.clone());
        Some(PolicyAction::Diverged(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(patience: u64) -> RunPolicy {
        RunPolicy::new(
            PolicyConfig {
                progress_every: 100,
                eval_every: 250,
                eval_every_s: 10.0,
                checkpoint_every: 500,
                checkpoint_every_s: 0.0,
                divergence_loss: 1e3,
                patience,
                reporters: 1,
                lr: LrSchedule::constant(0.1),
            },
            0.0,
        )
    }

    #[test]
    fn cadences_fire_on_their_counts_and_the_clock_never_twice_for_one_interval() {
        let mut p = policy(4);
        assert!(p.after_update(99, 0.0).is_empty());
        assert_eq!(p.after_update(100, 0.0), vec![PolicyAction::Progress]);
        assert_eq!(p.after_update(250, 1.0), vec![PolicyAction::Evaluate]);
        assert_eq!(
            p.after_update(500, 2.0),
            vec![
                PolicyAction::Progress,
                PolicyAction::Evaluate,
                PolicyAction::Checkpoint
            ]
        );
        // The count-based evaluation at 2 s restarted the clock: 11 s is only 9 s later.
        assert!(p.on_tick(11.0).is_empty());
        assert_eq!(p.on_tick(12.0), vec![PolicyAction::Evaluate]);
        assert!(p.on_tick(13.0).is_empty());
        assert_eq!(p.tick_every_s(), Some(10.0));
        assert_eq!(p.lr(7), 0.1);
    }

    #[test]
    fn patience_diverging_training_losses_in_a_row_end_the_run_once() {
        let mut p = policy(3);
        assert_eq!(p.on_training_loss(0, 2e3), None);
        assert_eq!(p.on_training_loss(0, f64::NAN), None);
        assert_eq!(
            p.on_training_loss(0, 1.0),
            None,
            "a good loss resets the count"
        );
        assert_eq!(p.on_training_loss(0, f64::INFINITY), None);
        assert_eq!(p.on_training_loss(0, 5e3), None);
        let Some(PolicyAction::Diverged(reason)) = p.on_training_loss(0, f64::NAN) else {
            panic!("the third in a row must end the run");
        };
        assert!(
            reason.contains("3 training losses in a row from 1 workers"),
            "{reason}"
        );
        assert_eq!(p.on_training_loss(0, f64::NAN), None, "only once");
        assert!(p.diverged().is_some());
    }

    #[test]
    fn an_evaluated_loss_decides_alone_and_patience_zero_ignores_training_losses() {
        let mut p = policy(0);
        for _ in 0..100 {
            assert_eq!(p.on_training_loss(0, f64::NAN), None);
        }
        assert_eq!(p.on_evaluated_loss(999.0), None);
        assert!(matches!(
            p.on_evaluated_loss(1001.0),
            Some(PolicyAction::Diverged(_))
        ));
    }

    #[test]
    fn one_worker_alone_cannot_end_the_run_when_a_majority_is_required() {
        let mut p = policy(4);
        p.config.reporters = 2;
        for _ in 0..1000 {
            assert_eq!(p.on_training_loss(3, f64::NAN), None, "worker 3 alone");
        }
        assert!(p.diverged().is_none());
        // A second worker joins the streak: now it ends the run.
        let Some(PolicyAction::Diverged(reason)) = p.on_training_loss(1, 5e3) else {
            panic!("two workers past patience end the run");
        };
        assert!(reason.contains("from 2 workers"), "{reason}");
        // A good loss from anyone resets both the count and the reporters.
        let mut p = policy(2);
        p.config.reporters = 2;
        assert_eq!(p.on_training_loss(0, f64::NAN), None);
        assert_eq!(p.on_training_loss(1, 1.0), None);
        assert_eq!(p.on_training_loss(1, f64::NAN), None);
        assert_eq!(
            p.on_training_loss(1, f64::NAN),
            None,
            "worker 0's bad loss was forgotten"
        );
    }
}
