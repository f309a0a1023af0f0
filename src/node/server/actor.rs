//! The parameter server's actor: a thin shell that feeds network events to the pure
//! `ServerCore` and carries out its actions — parameters to peers, metrics, evaluations, stop.

use std::collections::BTreeMap;
use std::time::Instant;

use actix::{Actor, ActorContext, Addr, AsyncContext, Context};
use tokio::sync::{mpsc, oneshot};

use crate::compute::EvalOutput;
use crate::node::eval::EvalActor;
use crate::node::round_deadline::RoundDeadline;
use crate::node::serve::Queued;
use crate::proto::{Message, WireTensor};
use crate::run::event::{ClusterDiverged, Diverged, Rejected, ServerProgress, Shutdown};
use crate::run::{
    CheckpointWriter, MetricsWriter, ModelFacts, PerWorker, PolicyAction, PolicyConfig, Progress,
    RunDir, RunEvent, RunPolicy, Summary,
};
use crate::server::{Action, AppliedWindow, ServerCore};

/// A connected worker: where its outgoing messages go.
pub(super) struct Peer {
    /// A number unique to its connection.
    pub(super) connection: u64,
    /// Its outgoing queue.
    pub(super) tx: mpsc::UnboundedSender<Queued>,
}

/// What the summary needs to know besides the core's counters.
#[derive(Debug, Clone)]
pub struct ServerRunInfo {
    /// Algorithm name.
    pub algorithm: String,
    /// `async` or `sync`.
    pub scheduler: String,
    /// Relative speed of each worker slot as configured (1 = nominal).
    pub speeds: Vec<f64>,
    /// The run seed.
    pub seed: u64,
    /// What the summary says of the model.
    pub facts: ModelFacts,
    /// Progress, evaluation and checkpoint cadence, and the divergence rule.
    pub policy: PolicyConfig,
    /// `net.round_timeout_s`.
    pub round_timeout: std::time::Duration,
}

/// Where the server checkpoints (how often is the run policy's).
pub struct Checkpointing {
    /// The run directory (the checkpoint goes next to the metrics).
    pub dir: RunDir,
    /// Layout hash recorded in the checkpoint.
    pub layout_hash: u64,
    /// Writes checkpoints off the actor's thread; `None` until the actor starts it.
    pub writer: Option<CheckpointWriter>,
    /// The update count of the newest checkpoint recorded in the metrics.
    pub recorded: Option<u64>,
}

/// Where a resumed run left off.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resumed {
    /// Gradients received before the restart.
    pub received: u64,
    /// Wall-clock seconds before the restart.
    pub wall_s: f64,
}

/// The server actor.
pub struct ServerActor {
    pub(super) core: ServerCore<f32, WireTensor>,
    pub(super) metrics: MetricsWriter,
    pub(super) evaluator: Addr<EvalActor>,
    pub(super) info: ServerRunInfo,
    pub(super) peers: Vec<Option<Peer>>,
    pub(super) received: u64,
    pub(super) loss_window: (f64, u64),
    /// The update count of the evaluation running now, if one is.
    pub(super) eval_in_flight: Option<u64>,
    /// The run finishes when the evaluation in flight comes back (it is the final one).
    pub(super) finish_after_eval: bool,
    pub(super) last_eval: Option<(u64, EvalOutput)>,
    pub(super) started: Instant,
    pub(super) finishing: bool,
    pub(super) checkpointing: Option<Checkpointing>,
    pub(super) progress: Progress,
    pub(super) policy: RunPolicy,
    /// The index of the last update applied (0-based), for progress events.
    pub(super) last_applied: u64,
    pub(super) done: Option<oneshot::Sender<Summary>>,
    /// Updates the core had when this process started (a resumed run's earlier work).
    pub(super) applied_at_start: u64,
    /// Gradients applied since this process started, by (worker, incarnation).
    pub(super) applied_by_incarnation: BTreeMap<(usize, u64), u64>,
    /// Gradients applied since the last evaluation started (its `eval` event's `applied`).
    pub(super) applied: AppliedWindow,
    /// The signal that ended the run early, if one did.
    pub(super) stopped_by: Option<String>,
    /// How long a synchronous round has waited for each worker.
    pub(super) round_deadline: RoundDeadline,
}

impl ServerActor {
    /// A server over `core` (fresh or restored; `resumed` says where it left off); `done`
    /// receives the summary when the run ends.
    pub fn new(
        core: ServerCore<f32, WireTensor>,
        metrics: MetricsWriter,
        evaluator: Addr<EvalActor>,
        info: ServerRunInfo,
        checkpointing: Option<Checkpointing>,
        resumed: Resumed,
        done: oneshot::Sender<Summary>,
    ) -> Self {
        let k = core.workers().len();
        let progress = Progress::new("server", core_target(&core));
        let now = Instant::now();
        let started = std::time::Duration::try_from_secs_f64(resumed.wall_s)
            .ok()
            .and_then(|d| now.checked_sub(d))
            .unwrap_or(now);
        let applied_at_start = core.updates();
        let policy = RunPolicy::new(info.policy.clone(), resumed.wall_s);
        ServerActor {
            round_deadline: RoundDeadline::new(k, info.round_timeout),
            applied_at_start,
            applied_by_incarnation: BTreeMap::new(),
            applied: AppliedWindow::new(k),
            stopped_by: None,
            core,
            metrics,
            evaluator,
            info,
            peers: (0..k).map(|_| None).collect(),
            received: resumed.received,
            loss_window: (0.0, 0),
            eval_in_flight: None,
            finish_after_eval: false,
            last_eval: None,
            started,
            finishing: false,
            checkpointing,
            progress,
            policy,
            last_applied: 0,
            done: Some(done),
        }
    }

    /// Seconds since the run started (a resumed run's earlier time included).
    pub(super) fn t_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Writes an event line; a failure is logged, never fatal.
    pub(super) fn write(&mut self, event: RunEvent) {
        if let Err(e) = self.metrics.write(&event) {
            tracing::error!("cannot write metrics: {e:#}");
        }
    }

    /// Writes an event and flushes, so the file can be followed while the run goes on.
    pub(super) fn write_now(&mut self, event: RunEvent) {
        self.write(event);
        if let Err(e) = self.metrics.flush() {
            tracing::error!("cannot flush metrics: {e:#}");
        }
    }

    /// Ends the run early because of a stop signal: workers stop, the parameters are evaluated once
    /// more, then the final checkpoint and the summary; a second signal skips the evaluation.
    pub(super) fn shut_down(&mut self, ctx: &mut Context<Self>, signal: String) {
        let event = RunEvent::Shutdown(Shutdown {
            t_s: self.t_s(),
            signal: signal.clone(),
        });
        self.write_now(event);
        if self.finishing {
            tracing::warn!("{signal} again: ending the run without waiting for the evaluation");
            self.finish();
            ctx.stop();
            return;
        }
        tracing::warn!(
            "{signal}: ending the run at update {} (final evaluation, checkpoint, summary)",
            self.core.updates()
        );
        self.finishing = true;
        self.stop_peers(&format!("the server was stopped ({signal})"));
        self.stopped_by = Some(signal);
        self.start_eval(ctx, true);
    }

    /// Ends the run early (divergence): workers stop, the parameters are evaluated once more.
    fn abort(&mut self, ctx: &mut Context<Self>, reason: &str) {
        if self.finishing {
            return;
        }
        tracing::error!("stopping the run: {reason}");
        self.finishing = true;
        let event = RunEvent::Diverged(Diverged::Cluster(ClusterDiverged {
            t_s: self.t_s(),
            updates: self.core.updates(),
            reason: reason.into(),
        }));
        self.write_now(event);
        self.stop_peers(reason);
        self.start_eval(ctx, true);
    }

    /// Does what the core returned, in order.
    pub(super) fn carry_out(&mut self, actions: Vec<Action<WireTensor>>, ctx: &mut Context<Self>) {
        for action in actions {
            match action {
                Action::SendParams {
                    worker,
                    index,
                    params,
                } => {
                    if let Some(peer) = self.peers.get(worker).and_then(Option::as_ref) {
                        let header = Message::Params {
                            index,
                            params: Vec::new(),
                        };
                        let _ = peer.tx.send(Queued::Encoded(header, params));
                    }
                }
                Action::Applied {
                    worker,
                    t,
                    staleness,
                    ..
                } => {
                    self.last_applied = t;
                    self.applied.record(worker, staleness);
                    crate::monitor::gradient_applied(worker, staleness, t + 1, self.t_s());
                    if let Some(record) = self.core.workers().get(worker) {
                        *self
                            .applied_by_incarnation
                            .entry((worker, record.incarnation))
                            .or_default() += 1;
                    }
                    let acc = self.last_eval.map_or(String::new(), |(_, e)| {
                        format!("test acc {:.2} %, ", 100.0 * e.accuracy)
                    });
                    let msg = format!("{acc}{} gradients received", self.received);
                    self.progress.update(t + 1, &msg);
                    let due = self.policy.after_update(t + 1, self.t_s());
                    self.carry_out_policy(due, ctx);
                }
                Action::Rejected { worker, reason } => {
                    tracing::warn!("rejected a message of worker {worker}: {reason}");
                    crate::monitor::gradient_rejected(reason.code());
                    let event = RunEvent::Rejected(Rejected {
                        t_s: self.t_s(),
                        updates: self.core.updates(),
                        worker,
                        reason: reason.code().into(),
                        detail: reason.to_string(),
                    });
                    self.write(event);
                }
                Action::Stop => {
                    if !self.finishing {
                        self.finishing = true;
                        self.stop_peers("the run reached its update budget");
                        self.start_eval(ctx, true);
                    }
                }
            }
        }
    }

    /// Does what the run policy says is due.
    pub(super) fn carry_out_policy(&mut self, due: Vec<PolicyAction>, ctx: &mut Context<Self>) {
        for action in due {
            match action {
                PolicyAction::Progress => {
                    for w in PerWorker::from_records(self.core.workers(), &[]) {
                        crate::monitor::effective_speed(w.id, w.effective_speed);
                    }
                    let (sum, n) = std::mem::take(&mut self.loss_window);
                    let event = RunEvent::Progress(ServerProgress {
                        t_s: self.t_s(),
                        updates: self.last_applied,
                        train_loss: if n > 0 { Some(sum / n as f64) } else { None },
                        lr: self.core.current_lr(),
                        gradients_received: self.received,
                    });
                    self.write_now(event);
                }
                PolicyAction::Evaluate => self.start_eval(ctx, false),
                PolicyAction::Checkpoint => self.checkpoint(),
                PolicyAction::Diverged(reason) => self.abort(ctx, &reason),
            }
        }
    }

    pub(super) fn stop_peers(&mut self, reason: &str) {
        for peer in self.peers.iter().flatten() {
            let _ = peer.tx.send(Queued::Message(Message::Stop {
                reason: reason.to_string(),
            }));
        }
    }
}

/// The update budget of a core, for the progress bar.
fn core_target(core: &ServerCore<f32, WireTensor>) -> u64 {
    core.max_updates().unwrap_or(0)
}

impl Actor for ServerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Bulk gradients arrive with `send().await`: a small mailbox is the backpressure.
        ctx.set_mailbox_capacity(64);
        self.start_checkpoint_writer(ctx);
        self.start_round_deadline(ctx);
        if let Some(every) = self.policy.tick_every_s() {
            ctx.run_interval(std::time::Duration::from_secs_f64(every), |act, ctx| {
                if !act.finishing {
                    let due = act.policy.on_tick(act.t_s());
                    act.carry_out_policy(due, ctx);
                }
            });
        }
    }
}
