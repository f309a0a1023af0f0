//! A returning worker's start from a live peer's state: the peer is asked, and if its state has
//! not come within `net.round_timeout_s` the returning worker starts from the last combined model
//! instead.

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
        // The wait belongs to this process of the slot: a later one has a wait of its own.
        let incarnation = self.links[joiner].as_ref().map(|l| l.incarnation);
        ctx.run_later(self.setup.round_timeout, move |act, ctx| {
            if act.links[joiner].as_ref().map(|l| l.incarnation) != incarnation {
                return;
            }
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
