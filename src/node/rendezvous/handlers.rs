//! What the rendezvous actor is told by its network side: a worker joined, a worker sent a
//! message, a connection ended. Each handler feeds the core and carries out what it returns.

use actix::{ActorContext, Context, Handler, Message as ActixMessage};
use tokio::sync::mpsc;

use super::actor::RendezvousActor;
use super::net::Link;
use crate::decen::RendezvousError;
use crate::node::serve::Queued;
use crate::node::shutdown::Shutdown;
use crate::proto::Message;
use crate::run::event::{self, RendezvousJoin, WorkerOnly};
use crate::run::RunEvent;

/// A worker passed its `Hello`: register it and issue its incarnation (refused once the run is
/// over).
pub struct Join {
    /// Slot.
    pub worker: usize,
    /// Where its peers reach it.
    pub addr: String,
    /// Connection id.
    pub connection: u64,
    /// Its outgoing queue.
    pub tx: mpsc::UnboundedSender<Queued>,
}

impl ActixMessage for Join {
    type Result = Result<u64, String>;
}

impl Handler<Join> for RendezvousActor {
    type Result = Result<u64, String>;

    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) -> Self::Result {
        if self.finishing {
            return Err("the run is over".into());
        }
        let (incarnation, actions) = self.core.join(msg.worker, msg.addr.clone());
        tracing::info!(
            "worker {} joined (incarnation {incarnation}, peers reach it at {})",
            msg.worker,
            msg.addr
        );
        self.write(RunEvent::Join(event::Join::Rendezvous(RendezvousJoin {
            t_s: self.t_s(),
            worker: msg.worker,
            incarnation,
        })));
        self.links[msg.worker] = Some(Link {
            connection: msg.connection,
            incarnation,
            tx: msg.tx,
        });
        self.carry_out(actions, ctx);
        Ok(incarnation)
    }
}

/// A message from a joined worker.
pub struct FromWorker {
    /// Slot.
    pub worker: usize,
    /// The message.
    pub message: Message,
}

impl ActixMessage for FromWorker {
    type Result = Result<(), RendezvousError>;
}

impl Handler<FromWorker> for RendezvousActor {
    type Result = Result<(), RendezvousError>;

    /// A refused message is recorded as a `rejected` event (and the worker is dropped by the
    /// network side).
    fn handle(&mut self, msg: FromWorker, ctx: &mut Context<Self>) -> Self::Result {
        let worker = msg.worker;
        let result = match msg.message {
            Message::Reduce {
                iteration,
                kind,
                values,
                ..
            } => self.core.on_reduce(worker, iteration, kind, values),
            Message::Report {
                iteration,
                stats,
                params,
                ..
            } => self.core.on_report(worker, iteration, stats, params),
            Message::Progress { iteration, .. } => self.core.on_progress(worker, iteration),
            Message::State {
                iteration,
                params,
                shared,
                ..
            } => {
                tracing::info!("worker {worker}: its state after iteration {iteration} received");
                self.core.on_state(worker, iteration, params, shared)
            }
            other => {
                tracing::warn!("worker {worker}: unexpected {}; ignored", other.kind());
                Ok(Vec::new())
            }
        };
        match result {
            Ok(actions) => {
                self.carry_out(actions, ctx);
                Ok(())
            }
            Err(e) => {
                self.write(RunEvent::Rejected(event::Rejected {
                    t_s: self.t_s(),
                    updates: self.core.progress(),
                    worker,
                    reason: e.code().into(),
                    detail: e.to_string(),
                }));
                Err(e)
            }
        }
    }
}

/// A worker's connection ended.
#[derive(ActixMessage)]
#[rtype(result = "()")]
pub struct Left {
    /// Slot.
    pub worker: usize,
    /// The connection that ended.
    pub connection: u64,
}

impl Handler<Left> for RendezvousActor {
    type Result = ();

    fn handle(&mut self, msg: Left, ctx: &mut Context<Self>) {
        let Some(link) = &self.links[msg.worker] else {
            return;
        };
        if link.connection != msg.connection {
            return;
        }
        let incarnation = link.incarnation;
        self.links[msg.worker] = None;
        if self.finishing {
            return;
        }
        tracing::warn!("worker {} left; the others go on without it", msg.worker);
        self.write(RunEvent::Leave(event::Leave::Rendezvous(WorkerOnly {
            t_s: self.t_s(),
            worker: msg.worker,
        })));
        let actions = self.core.leave(msg.worker, incarnation);
        self.carry_out(actions, ctx);
    }
}

impl Handler<Shutdown> for RendezvousActor {
    type Result = ();

    /// Ends the run now: the nodes are told, the summary is written from the last report (which
    /// is also the last checkpoint).
    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) {
        self.write(RunEvent::Shutdown(event::Shutdown {
            t_s: self.t_s(),
            signal: msg.signal.clone(),
        }));
        if self.finishing {
            return;
        }
        tracing::warn!(
            "{}: ending the run (summary from the last report)",
            msg.signal
        );
        self.stopped_by = Some(msg.signal);
        self.finish();
        ctx.stop();
    }
}
