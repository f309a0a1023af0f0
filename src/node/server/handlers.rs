//! What the server actor is told by its network side: a worker joined, a gradient came, a
//! connection ended. Each handler feeds the core and carries out what it returns.

use actix::{Context, Handler, Message as ActixMessage};
use tokio::sync::mpsc;

use super::actor::{Peer, ServerActor};
use crate::node::serve::Queued;
use crate::node::shutdown::Shutdown;
use crate::proto::RefusalCode;
use crate::run::event::{Join, Leave, ServerJoin, ServerLeave};
use crate::run::RunEvent;
use crate::server::{Action, Event, GradientIn, RejectReason};

/// A worker passed the handshake checks and wants to join.
pub struct Register {
    /// Slot.
    pub worker: usize,
    /// The incarnation it claims (see `server::Event::Join`).
    pub incarnation: u64,
    /// Its device, for logs.
    pub device: String,
    /// A number unique to this connection.
    pub connection: u64,
    /// Where its outgoing messages go.
    pub tx: mpsc::UnboundedSender<Queued>,
}

/// What a registered worker is told in its `Welcome`.
#[derive(Debug, Clone, Copy)]
pub struct Registered {
    /// The server's update count.
    pub updates: u64,
    /// The weight decay workers add to their gradients.
    pub weight_decay: f64,
    /// The incarnation the server issued (or kept) for this process.
    pub incarnation: u64,
}

/// The server's answer to `Register`: the worker's `Welcome` or a refusal.
pub type RegisterResult = Result<Registered, (RefusalCode, String)>;

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
        let incarnation = self
            .core
            .workers()
            .get(msg.worker)
            .map_or(0, |r| r.incarnation);
        tracing::info!(
            "worker {} joined (incarnation {incarnation}, {})",
            msg.worker,
            msg.device
        );
        let event = RunEvent::Join(Join::Server(ServerJoin {
            t_s: self.t_s(),
            updates: self.core.updates(),
            worker: msg.worker,
            incarnation,
            device: msg.device.clone(),
        }));
        self.write(event);
        self.peers[msg.worker] = Some(Peer {
            connection: msg.connection,
            tx: msg.tx,
        });
        let answer = Registered {
            updates: self.core.updates(),
            weight_decay: self.core.worker_weight_decay(),
            incarnation,
        };
        self.carry_out(actions, ctx);
        Ok(answer)
    }
}

/// A gradient from a registered worker.
pub struct Deliver(pub GradientIn<f32>, pub f32);

impl ActixMessage for Deliver {
    type Result = ();
}

impl Handler<Shutdown> for ServerActor {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) {
        self.shut_down(ctx, msg.signal);
    }
}

impl Handler<Deliver> for ServerActor {
    type Result = ();

    fn handle(&mut self, Deliver(g, loss): Deliver, ctx: &mut Context<Self>) {
        self.received += 1;
        crate::monitor::gradient_received();
        let loss = f64::from(loss);
        if !self.policy.is_diverging(loss) {
            self.loss_window.0 += loss;
            self.loss_window.1 += 1;
        }
        let worker = g.worker;
        let actions = self.core.handle(Event::Gradient(g));
        // Some(true): refused as non-finite; Some(false): refused for another reason.
        let rejected = actions.iter().find_map(|a| match a {
            Action::Rejected { worker: w, reason } if *w == worker => {
                Some(matches!(reason, RejectReason::NonFinite))
            }
            _ => None,
        });
        let verdict = match rejected {
            // A gradient refused for non-finite values counts as one more diverging loss.
            Some(true) => self.policy.on_training_loss(worker, f64::NAN),
            // A stale, duplicate or unexpected gradient says nothing about the model's loss.
            Some(false) => None,
            None => self.policy.on_training_loss(worker, loss),
        };
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
        let event = RunEvent::Leave(Leave::Server(ServerLeave {
            t_s: self.t_s(),
            updates: self.core.updates(),
            worker: msg.worker,
        }));
        self.write(event);
        let actions = self.core.handle(Event::Leave { worker: msg.worker });
        self.carry_out(actions, ctx);
    }
}
