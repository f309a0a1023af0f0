//! The rendezvous actor of a decentralized run: a thin shell over [`RendezvousCore`] that sends
//! what it returns, evaluates the combined model of every report off the message path, writes
//! metrics and checkpoints, and ends the run after the last iteration's report.

use std::collections::BTreeMap;
use std::time::Instant;

use actix::{Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, WrapFuture};
use tokio::sync::oneshot;

use super::checkpoint::DecenCheckpoints;
use super::net::Link;
use crate::compute::EvalOutput;
use crate::decen::{RendezvousCore, RoundReport};
use crate::node::eval::{EvalActor, Evaluate};
use crate::node::round_deadline::RoundDeadline;
use crate::proto::{Message, WireDtype};
use crate::run::event::{ClusterDiverged, ClusterEnd, Diverged, End, Eval, RendezvousEval};
use crate::run::{
    MetricsWriter, ModelFacts, PerWorker, PolicyAction, PolicyConfig, Progress, RendezvousDetails,
    RunDetails, RunDir, RunEvent, RunPolicy, Summary,
};
use crate::server::StalenessHistogram;

/// What the rendezvous needs besides its core.
pub struct RendezvousSetup {
    /// Iterations of the run.
    pub iterations: u64,
    /// Algorithm name.
    pub algorithm: String,
    /// Relative speed of each slot as configured.
    pub speeds: Vec<f64>,
    /// The run seed.
    pub seed: u64,
    /// What the summary says of the model.
    pub facts: ModelFacts,
    /// Where checkpoints go, and the layout hash they record.
    pub checkpoint: Option<(RunDir, u64)>,
    /// Wall-clock seconds of a resumed run before this process.
    pub resumed_wall_s: f64,
    /// The run policy (its divergence rule judges every evaluation).
    pub policy: PolicyConfig,
    /// `net.round_timeout_s`.
    pub round_timeout: std::time::Duration,
    /// `net.wire_dtype`: what averages are sent in.
    pub wire_dtype: WireDtype,
}

/// The actor (see the module docs).
pub struct RendezvousActor {
    pub(super) core: RendezvousCore<f32>,
    pub(super) setup: RendezvousSetup,
    pub(super) links: Vec<Option<Link>>,
    metrics: MetricsWriter,
    evaluator: Addr<EvalActor>,
    pub(super) checkpoints: Option<DecenCheckpoints>,
    pub(super) round_deadline: RoundDeadline,
    pub(super) started: Instant,
    progress: Progress,
    last_eval: Option<EvalOutput>,
    last_report: Option<RoundReport<f32>>,
    policy: RunPolicy,
    pub(super) finishing: bool,
    /// The signal that ended the run early, if one did.
    pub(super) stopped_by: Option<String>,
    done: Option<oneshot::Sender<Summary>>,
}

impl RendezvousActor {
    /// The actor over `core`; `done` receives the summary at the end.
    pub fn new(
        core: RendezvousCore<f32>,
        setup: RendezvousSetup,
        metrics: MetricsWriter,
        evaluator: Addr<EvalActor>,
        done: oneshot::Sender<Summary>,
    ) -> Self {
        let n = core.completed().len();
        let progress = Progress::new("rendezvous", setup.iterations);
        let now = Instant::now();
        let started = std::time::Duration::try_from_secs_f64(setup.resumed_wall_s)
            .ok()
            .and_then(|d| now.checked_sub(d))
            .unwrap_or(now);
        let policy = RunPolicy::new(setup.policy.clone(), setup.resumed_wall_s);
        let checkpoints = setup
            .checkpoint
            .as_ref()
            .map(|(dir, _)| DecenCheckpoints::start(dir.clone()));
        RendezvousActor {
            round_deadline: RoundDeadline::new(n, setup.round_timeout),
            checkpoints,
            policy,
            core,
            setup,
            links: (0..n).map(|_| None).collect(),
            metrics,
            evaluator,
            started,
            progress,
            last_eval: None,
            last_report: None,
            finishing: false,
            stopped_by: None,
            done: Some(done),
        }
    }

    /// Seconds since the run started (a resumed run's earlier time included).
    pub(super) fn t_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Writes and flushes an event line; a failure is logged, never fatal.
    pub(super) fn write(&mut self, event: RunEvent) {
        if let Err(e) = self
            .metrics
            .write(&event)
            .and_then(|()| self.metrics.flush())
        {
            tracing::error!("cannot write metrics: {e:#}");
        }
    }

    /// Evaluates a combined model (queued behind earlier ones, in order), then records it.
    pub(super) fn evaluate(&mut self, report: RoundReport<f32>, ctx: &mut Context<Self>) {
        let request = Evaluate {
            updates: report.iteration,
            params: report.params.clone(),
        };
        let fut = self
            .evaluator
            .send(request)
            .into_actor(self)
            .map(move |res, act, ctx| {
                let eval = match res {
                    Ok(Ok((_, e))) => Some(e),
                    Ok(Err(e)) => {
                        tracing::error!("evaluation failed: {e:#}");
                        None
                    }
                    Err(e) => {
                        tracing::error!("the evaluator is gone: {e}");
                        None
                    }
                };
                act.record(report, eval, ctx);
            });
        ctx.spawn(fut);
    }

    fn record(&mut self, r: RoundReport<f32>, eval: Option<EvalOutput>, ctx: &mut Context<Self>) {
        let finite = |x: f64| x.is_finite().then_some(x);
        let event = RunEvent::Eval(Eval::Rendezvous(RendezvousEval {
            t_s: self.t_s(),
            updates: r.iteration,
            test_loss: eval.and_then(|e| finite(e.loss)),
            test_accuracy: eval.map(|e| e.accuracy),
            train_loss: finite(r.loss),
            nodes: r.nodes,
            consensus_distance: finite(r.consensus_distance),
            bytes_sent_per_node_iteration: r.bytes_sent_per_node_iteration,
            bytes_received_per_node_iteration: r.bytes_received_per_node_iteration,
            iteration_s: r.iteration_s,
            compute_share: r.compute_share,
            weight_sum: r.weight_sum,
            given_up: r.given_up,
            absorbed_late: r.absorbed_late,
            refused: r.refused,
            theta_mean: r.theta,
        }));
        self.write(event);
        if let Some(e) = eval {
            crate::monitor::evaluated(r.iteration, e.accuracy, e.loss);
            tracing::info!(
                "iteration {}: test accuracy {:.2} %, consensus distance {:.3e}",
                r.iteration,
                100.0 * e.accuracy,
                r.consensus_distance
            );
            self.last_eval = Some(e);
        }
        self.progress.update(
            r.iteration,
            &eval.map_or(String::new(), |e| {
                format!("acc {:.2} %", 100.0 * e.accuracy)
            }),
        );
        self.checkpoint_report(&r);
        self.record_checkpoints();
        let mut last = r.iteration >= self.setup.iterations;
        if let Some(PolicyAction::Diverged(reason)) =
            eval.and_then(|e| self.policy.on_evaluated_loss(e.loss))
        {
            tracing::error!("stopping the run: {reason}");
            let event = RunEvent::Diverged(Diverged::Cluster(ClusterDiverged {
                t_s: self.t_s(),
                updates: r.iteration,
                reason,
            }));
            self.write(event);
            last = true;
        }
        self.last_report = Some(r);
        if last && !self.finishing {
            self.finish();
            ctx.stop();
        }
    }

    /// Tells the workers, writes the `end` event and sends the summary (the last report is
    /// already checkpointed).
    pub(super) fn finish(&mut self) {
        self.finishing = true;
        self.progress.finish();
        if let Some(cps) = &mut self.checkpoints {
            cps.finish();
        }
        self.record_checkpoints();
        for link in self.links.iter().flatten() {
            let _ = link.tx.send(
                Message::Stop {
                    reason: "the run is complete".into(),
                }
                .into(),
            );
        }
        let wall_s = self.t_s();
        let eval = self.last_eval;
        let totals = self.core.totals();
        let last = self.last_report.clone();
        self.write(RunEvent::End(End::Cluster(ClusterEnd {
            t_s: wall_s,
            updates: last.as_ref().map_or(self.core.progress(), |r| r.iteration),
            test_accuracy: eval.map(|e| e.accuracy),
        })));
        let per = totals.node_iterations.max(1) as f64;
        let facts = &self.setup.facts;
        let details = RunDetails::Rendezvous(RendezvousDetails {
            batch_size: facts.batch_size,
            bytes_received_per_node_iteration: totals.bytes_received as f64 / per,
            bytes_sent_per_node_iteration: totals.bytes_sent as f64 / per,
            consensus_distance: last.as_ref().map(|r| r.consensus_distance),
            dataset: facts.dataset.clone(),
            exact_averages: totals.averages,
            final_test_accuracy: eval.map(|e| e.accuracy),
            iteration_s: totals.wall_s / per,
            messages_absorbed_late: totals.absorbed_late,
            messages_given_up: totals.given_up,
            messages_refused: totals.refused,
            model: facts.model.clone(),
            params: facts.params,
            theta_mean: last.as_ref().and_then(|r| r.theta),
        });
        let completed = self.core.completed();
        let most = completed.iter().copied().max().unwrap_or(0).max(1);
        let per_worker = completed
            .iter()
            .enumerate()
            .map(|(id, &c)| PerWorker {
                id,
                gradients: c,
                mean_staleness: 0.0,
                speed: self.setup.speeds.get(id).copied().unwrap_or(1.0),
                effective_speed: c as f64 / most as f64,
            })
            .collect();
        let summary = Summary {
            kind: "server".into(),
            algorithm: self.setup.algorithm.clone(),
            scheduler: "decentralized".into(),
            workers: completed.len(),
            updates: last.as_ref().map_or(self.core.progress(), |r| r.iteration),
            wall_s,
            final_loss: eval.and_then(|e| e.loss.is_finite().then_some(e.loss)),
            diverged: self.policy.diverged().is_some(),
            staleness: StalenessHistogram::default().summary(),
            per_worker,
            gradients_rejected: BTreeMap::new(),
            seed: self.setup.seed,
            stopped_by: self.stopped_by.clone(),
            details,
        };
        if let Some(done) = self.done.take() {
            let _ = done.send(summary);
        }
    }
}

impl Actor for RendezvousActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.start_round_deadline(ctx);
    }
}
