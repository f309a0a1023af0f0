//! A returning worker's start from a live peer's state: the peer is asked, and if its state has not come within `net.round_timeout_s` the returning worker starts from the
//! last combined model instead.

use actix::{AsyncContext, Context};

use super::actor::RendezvousActor;
use crate::proto::Message;

impl RendezvousActor {
    /// The request to send to worker `donor` for `joiner`; waits at most `net.round_timeout_s`
    /// for the answer.
    pub(super) fn ask_for_state(
        &mut self,
        donor: usize,
        joiner: usize,
        ctx: &mut Context<Self>,
    ) -> (usize, Message) {
        tracing::info!("worker {joiner} rejoins from worker {donor}'s state");
        ctx.run_later(self.setup.round_timeout, move |act, ctx| {
            let actions = act.core.state_timed_out(joiner);
            if !actions.is_empty() {
                tracing::warn!(
                    "worker {joiner}: no state from worker {donor} within net.round_timeout_s; \
                     it starts from the last combined model"
                );
            }
            act.carry_out(actions, ctx);
        });
        (donor, Message::StateRequest {})
    }
}
