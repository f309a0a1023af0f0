//! The deadline of a synchronous round on the server: a worker that holds the round's parameters
//! for `net.round_timeout_s` without delivering a gradient (its compute hangs while its heartbeats
//! go on) is dropped, so the round completes with the others; if it is alive it rejoins.

use std::time::Instant;

use actix::{AsyncContext, Context, Handler};

use super::actor::ServerActor;
use super::handlers::Disconnected;

impl ServerActor {
    /// Looks for overdue workers regularly (only a synchronous round waits for anyone).
    pub(super) fn start_round_deadline(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.round_deadline.check_every(), |act, ctx| {
            if act.finishing {
                return;
            }
            let waited_for = act.core.round_waits_for();
            for worker in act.round_deadline.overdue(&waited_for, Instant::now()) {
                let Some(connection) = act.peers.get(worker).and_then(|p| p.as_ref()) else {
                    continue;
                };
                tracing::warn!(
                    "worker {worker} held the round's parameters for net.round_timeout_s without \
                     a gradient; dropped so the round goes on"
                );
                let connection = connection.connection;
                act.handle(Disconnected { worker, connection }, ctx);
            }
        });
    }
}
