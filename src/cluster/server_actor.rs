//! The parameter server's actor: a thin shell that feeds network events to the pure
//! `ServerCore` and carries out its actions — parameters to peers, metrics, evaluations, stop.

use std::collections::BTreeMap;
use std::time::Instant;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler,
    Message as ActixMessage, WrapFuture,
};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::{Checkpoint, CHECKPOINT_VERSION};
use super::eval_actor::{EvalActor, Evaluate};
use crate::compute::EvalOutput;
use crate::proto::{Message, RefusalCode};
use crate::run::{
    MetricsWriter, PerWorker, PolicyAction, PolicyConfig, Progress, RunDir, RunPolicy, Summary,
};
use crate::server::{Action, Event, GradientIn, RejectReason, ServerCore};

/// A connected worker: where its outgoing messages go.
struct Peer {
    connection: u64,
    tx: mpsc::UnboundedSender<Message>,
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
    /// Kind-specific summary fields (model, data set, …).
    pub extra: BTreeMap<String, serde_json::Value>,
    /// Progress, evaluation and checkpoint cadence, and the divergence rule.
    pub policy: PolicyConfig,
}

/// Where the server checkpoints (how often is the run policy's).
#[derive(Debug)]
pub struct Checkpointing {
    /// The run directory (the checkpoint goes next to the metrics).
    pub dir: RunDir,
    /// Layout hash recorded in the checkpoint.
    pub layout_hash: u64,
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
    core: ServerCore<f32>,
    metrics: MetricsWriter,
    evaluator: Addr<EvalActor>,
    info: ServerRunInfo,
    peers: Vec<Option<Peer>>,
    received: u64,
    loss_window: (f64, u64),
    eval_in_flight: bool,
    last_eval: Option<(u64, EvalOutput)>,
    started: Instant,
    finishing: bool,
    checkpointing: Option<Checkpointing>,
    progress: Progress,
    policy: RunPolicy,
    /// The index of the last update applied (0-based), for progress events.
    last_applied: u64,
    done: Option<oneshot::Sender<Summary>>,
    /// Updates the core had when this process started (a resumed run's earlier work).
    applied_at_start: u64,
    /// Gradients applied since this process started, by (worker, incarnation).
    applied_by_incarnation: BTreeMap<(usize, u64), u64>,
}

impl ServerActor {
    /// A server over `core` (fresh or restored; `resumed` says where it left off); `done`
    /// receives the summary when the run ends.
    pub fn new(
        core: ServerCore<f32>,
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
        let started = now
            .checked_sub(std::time::Duration::from_secs_f64(resumed.wall_s))
            .unwrap_or(now);
        let applied_at_start = core.updates();
        let policy = RunPolicy::new(info.policy.clone(), resumed.wall_s);
        ServerActor {
            applied_at_start,
            applied_by_incarnation: BTreeMap::new(),
            core,
            metrics,
            evaluator,
            info,
            peers: (0..k).map(|_| None).collect(),
            received: resumed.received,
            loss_window: (0.0, 0),
            eval_in_flight: false,
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

    fn t_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn write(&mut self, event: serde_json::Value) {
        if let Err(e) = self.metrics.write(&event) {
            tracing::error!("cannot write metrics: {e:#}");
        }
    }

    /// Writes an event and flushes, so the file can be followed while the run goes on.
    fn write_now(&mut self, event: serde_json::Value) {
        self.write(event);
        if let Err(e) = self.metrics.flush() {
            tracing::error!("cannot flush metrics: {e:#}");
        }
    }

    /// Writes a checkpoint now (if checkpointing is on); a failure is logged, not fatal.
    fn checkpoint(&mut self) {
        let Some(c) = &self.checkpointing else {
            return;
        };
        let cp = Checkpoint {
            version: CHECKPOINT_VERSION,
            layout_hash: c.layout_hash,
            algorithm: self.info.algorithm.clone(),
            received: self.received,
            wall_s: self.started.elapsed().as_secs_f64(),
            core: self.core.snapshot(),
        };
        match cp.save(&c.dir) {
            Ok(()) => {
                let event = json!({
                    "event": "checkpoint", "t_s": self.t_s(), "updates": self.core.updates(),
                });
                self.write_now(event);
            }
            Err(e) => tracing::error!("checkpoint failed (training goes on): {e:#}"),
        }
    }

    /// Ends the run early (divergence): workers stop, the parameters are evaluated once more.
    fn abort(&mut self, ctx: &mut Context<Self>, reason: &str) {
        if self.finishing {
            return;
        }
        tracing::error!("stopping the run: {reason}");
        self.finishing = true;
        let event = json!({
            "event": "diverged", "t_s": self.t_s(), "updates": self.core.updates(),
            "reason": reason,
        });
        self.write_now(event);
        self.stop_peers(reason);
        self.start_eval(ctx, true);
    }

    fn carry_out(&mut self, actions: Vec<Action<f32>>, ctx: &mut Context<Self>) {
        for action in actions {
            match action {
                Action::SendParams {
                    worker,
                    index,
                    params,
                } => {
                    if let Some(peer) = self.peers.get(worker).and_then(Option::as_ref) {
                        let _ = peer.tx.send(Message::Params { index, params });
                    }
                }
                Action::Applied { worker, t, .. } => {
                    self.last_applied = t;
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
                    let event = json!({
                        "event": "rejected", "t_s": self.t_s(), "updates": self.core.updates(),
                        "worker": worker, "reason": reason.code(), "detail": reason.to_string(),
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
    fn carry_out_policy(&mut self, due: Vec<PolicyAction>, ctx: &mut Context<Self>) {
        for action in due {
            match action {
                PolicyAction::Progress => {
                    let (sum, n) = std::mem::take(&mut self.loss_window);
                    let event = json!({
                        "event": "progress", "t_s": self.t_s(),
                        "updates": self.last_applied,
                        "train_loss": if n > 0 { Some(sum / n as f64) } else { None },
                        "lr": self.core.current_lr(), "gradients_received": self.received,
                    });
                    self.write_now(event);
                }
                PolicyAction::Evaluate => self.start_eval(ctx, false),
                PolicyAction::Checkpoint => self.checkpoint(),
                PolicyAction::Diverged(reason) => self.abort(ctx, &reason),
            }
        }
    }

    fn stop_peers(&mut self, reason: &str) {
        for peer in self.peers.iter().flatten() {
            let _ = peer.tx.send(Message::Stop {
                reason: reason.to_string(),
            });
        }
    }

    fn start_eval(&mut self, ctx: &mut Context<Self>, last: bool) {
        if self.eval_in_flight && !last {
            return; // the previous evaluation is still running: skip, never queue
        }
        self.eval_in_flight = true;
        let request = Evaluate {
            updates: self.core.updates(),
            params: self.core.params().to_vec(),
        };
        let fut = self
            .evaluator
            .send(request)
            .into_actor(self)
            .map(move |res, act, ctx| {
                act.eval_in_flight = false;
                match res {
                    Ok(Ok((updates, e))) => {
                        let event = json!({
                            "event": "eval", "t_s": act.t_s(), "updates": updates,
                            "test_loss": e.loss.is_finite().then_some(e.loss),
                            "test_accuracy": e.accuracy,
                        });
                        act.write(event);
                        tracing::info!(
                            "update {updates}: test accuracy {:.2} %",
                            100.0 * e.accuracy
                        );
                        act.last_eval = Some((updates, e));
                        if !last {
                            if let Some(d) = act.policy.on_evaluated_loss(e.loss) {
                                act.carry_out_policy(vec![d], ctx);
                            }
                        }
                    }
                    Ok(Err(e)) => tracing::error!("evaluation failed: {e:#}"),
                    Err(e) => tracing::error!("the evaluator is gone: {e}"),
                }
                if last {
                    act.finish();
                    ctx.stop();
                }
            });
        ctx.spawn(fut);
    }

    fn finish(&mut self) {
        self.progress.finish();
        self.checkpoint();
        let wall_s = self.t_s();
        let applied = self.core.updates();
        let final_eval = self.last_eval.map(|(_, e)| e);
        let event = json!({
            "event": "end", "t_s": wall_s, "updates": applied,
            "test_accuracy": final_eval.map(|e| e.accuracy),
        });
        self.write(event);
        if let Err(e) = self.metrics.flush() {
            tracing::error!("cannot flush metrics: {e:#}");
        }
        let rejected: u64 = self.core.rejections().values().sum();
        let per_worker = PerWorker::from_records(self.core.workers(), &self.info.speeds);
        let mut extra = self.info.extra.clone();
        extra.insert(
            "final_test_accuracy".into(),
            json!(final_eval.map(|e| e.accuracy)),
        );
        extra.insert("gradients_received".into(), json!(self.received));
        extra.insert("gradients_applied".into(), json!(applied));
        extra.insert("gradients_rejected_total".into(), json!(rejected));
        extra.insert("applied_before_start".into(), json!(self.applied_at_start));
        let by_incarnation: Vec<_> = self
            .applied_by_incarnation
            .iter()
            .map(|(&(worker, incarnation), &applied)| {
                json!({"worker": worker, "incarnation": incarnation, "applied": applied})
            })
            .collect();
        extra.insert("applied_by_incarnation".into(), json!(by_incarnation));
        let summary = Summary {
            kind: "server".into(),
            algorithm: self.info.algorithm.clone(),
            scheduler: self.info.scheduler.clone(),
            workers: self.peers.len(),
            updates: applied,
            wall_s,
            final_loss: final_eval.and_then(|e| e.loss.is_finite().then_some(e.loss)),
            diverged: self.policy.diverged().is_some(),
            staleness: self.core.staleness().summary(),
            per_worker,
            gradients_rejected: self
                .core
                .rejections()
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            seed: self.info.seed,
            extra,
        };
        if let Some(done) = self.done.take() {
            let _ = done.send(summary);
        }
    }
}

/// The update budget of a core, for the progress bar.
fn core_target(core: &ServerCore<f32>) -> u64 {
    core.max_updates().unwrap_or(0)
}

impl Actor for ServerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Bulk gradients arrive with `send().await`: a small mailbox is the backpressure.
        ctx.set_mailbox_capacity(64);
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

/// A worker passed the handshake checks and wants to join.
pub struct Register {
    /// Slot.
    pub worker: usize,
    /// Its incarnation.
    pub incarnation: u64,
    /// Its device, for logs.
    pub device: String,
    /// A number unique to this connection.
    pub connection: u64,
    /// Where its outgoing messages go.
    pub tx: mpsc::UnboundedSender<Message>,
}

/// The server's answer to `Register`: `(updates, weight_decay)` or a refusal.
pub type RegisterResult = Result<(u64, f64), (RefusalCode, String)>;

impl ActixMessage for Register {
    type Result = RegisterResult;
}

impl Handler<Register> for ServerActor {
    type Result = RegisterResult;

    fn handle(&mut self, msg: Register, ctx: &mut Context<Self>) -> RegisterResult {
        if self.finishing {
            return Err((RefusalCode::Finished, "the run is over".into()));
        }
        let actions = self.core.handle(Event::Join {
            worker: msg.worker,
            incarnation: msg.incarnation,
        });
        if let Some(Action::Rejected { reason, .. }) = actions
            .iter()
            .find(|a| matches!(a, Action::Rejected { worker, .. } if *worker == msg.worker))
        {
            return Err((RefusalCode::WorkerId, reason.to_string()));
        }
        tracing::info!(
            "worker {} joined (incarnation {}, {})",
            msg.worker,
            msg.incarnation,
            msg.device
        );
        let event = json!({
            "event": "join", "t_s": self.t_s(), "updates": self.core.updates(),
            "worker": msg.worker, "incarnation": msg.incarnation, "device": msg.device,
        });
        self.write(event);
        self.peers[msg.worker] = Some(Peer {
            connection: msg.connection,
            tx: msg.tx,
        });
        let answer = (self.core.updates(), self.core.worker_weight_decay());
        self.carry_out(actions, ctx);
        Ok(answer)
    }
}

/// A gradient from a registered worker.
pub struct Deliver(pub GradientIn<f32>, pub f32);

impl ActixMessage for Deliver {
    type Result = ();
}

impl Handler<Deliver> for ServerActor {
    type Result = ();

    fn handle(&mut self, Deliver(g, loss): Deliver, ctx: &mut Context<Self>) {
        self.received += 1;
        let loss = f64::from(loss);
        if !self.policy.is_diverging(loss) {
            self.loss_window.0 += loss;
            self.loss_window.1 += 1;
        }
        let mut verdict = self.policy.on_training_loss(loss);
        let actions = self.core.handle(Event::Gradient(g));
        let non_finite = actions.iter().any(|a| {
            matches!(
                a,
                Action::Rejected {
                    reason: RejectReason::NonFinite,
                    ..
                }
            )
        });
        if non_finite && verdict.is_none() {
            // A gradient refused for non-finite values counts as one more diverging loss.
            verdict = self.policy.on_training_loss(f64::NAN);
        }
        self.carry_out(actions, ctx);
        self.carry_out_policy(verdict.into_iter().collect(), ctx);
    }
}

/// A worker's connection ended.
pub struct Disconnected {
    /// Slot.
    pub worker: usize,
    /// The connection that ended (see `Register::connection`).
    pub connection: u64,
}

impl ActixMessage for Disconnected {
    type Result = ();
}

impl Handler<Disconnected> for ServerActor {
    type Result = ();

    fn handle(&mut self, msg: Disconnected, ctx: &mut Context<Self>) {
        let current = self
            .peers
            .get(msg.worker)
            .and_then(Option::as_ref)
            .is_some_and(|p| p.connection == msg.connection);
        if !current {
            return; // an older connection of a slot that has reconnected since
        }
        self.peers[msg.worker] = None;
        tracing::info!("worker {} left", msg.worker);
        let event = json!({
            "event": "leave", "t_s": self.t_s(), "updates": self.core.updates(),
            "worker": msg.worker,
        });
        self.write(event);
        let actions = self.core.handle(Event::Leave { worker: msg.worker });
        self.carry_out(actions, ctx);
    }
}
