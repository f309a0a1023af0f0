//! The deadline of the rendezvous's averages and reports: a member that an exact average or a
//! report has waited for `net.round_timeout_s` (its compute hangs while its heartbeats go on) is
//! dropped, so the others go on; its process, if alive, loses its connection and is restarted
//! by its supervisor.

use std::time::Instant;

use actix::{AsyncContext, Context, Handler};

use super::actor::RendezvousActor;
use super::handlers::Left;

impl RendezvousActor {
    /// Looks for overdue members regularly.
    pub(super) fn start_round_deadline(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.round_deadline.check_every(), |act, ctx| {
            if act.finishing {
                return;
            }
            let waited_for = act.core.waiting_for();
            for worker in act.round_deadline.overdue(&waited_for, Instant::now()) {
                let Some(connection) = act.links.get(worker).and_then(|l| l.as_ref()) else {
                    continue;
                };
                tracing::warn!(
                    "worker {worker}: an average or report waited for it net.round_timeout_s; \
                     dropped so the others go on"
                );
                let connection = connection.connection;
                act.handle(Left { worker, connection }, ctx);
            }
        });
    }
}
