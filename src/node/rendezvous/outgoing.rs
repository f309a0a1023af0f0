//! What the rendezvous does with its core's actions: messages queued for the workers, each exact
//! average converted for the wire once and the same tensor queued for every member, and the
//! evaluation of reported models.

use std::borrow::Cow;
use std::sync::Arc;

use actix::Context;

use super::actor::RendezvousActor;
use crate::decen::RendezvousAction;
use crate::node::serve::Queued;
use crate::proto::{Message, WireTensor};

impl RendezvousActor {
    /// Turns the core's actions into messages for the workers and evaluations of reports.
    pub(super) fn carry_out(
        &mut self,
        actions: Vec<RendezvousAction<f32>>,
        ctx: &mut Context<Self>,
    ) {
        // The average of one reduction goes to each contributor: converted for the wire once.
        let mut encoded: Option<(Arc<Vec<f32>>, WireTensor)> = None;
        for action in actions {
            let (worker, message): (usize, Queued) = match action {
                RendezvousAction::Report(report) => {
                    self.evaluate(report, ctx);
                    continue;
                }
                RendezvousAction::Start {
                    worker,
                    iteration,
                    peers,
                    params,
                    shared,
                } => (
                    worker,
                    Message::Start {
                        iteration,
                        peers,
                        shared,
                        params,
                    }
                    .into(),
                ),
                RendezvousAction::Members { worker, peers } => {
                    (worker, Message::Members { peers }.into())
                }
                RendezvousAction::RequestState { worker, joiner } => {
                    let (worker, message) = self.ask_for_state(worker, joiner, ctx);
                    (worker, message.into())
                }
                RendezvousAction::Reduced {
                    worker,
                    iteration,
                    kind,
                    contributors,
                    values,
                } => {
                    let tensor = match &encoded {
                        Some((mean, tensor)) if Arc::ptr_eq(mean, &values) => tensor.clone(),
                        _ => {
                            let tensor = self.setup.wire_dtype.wire_tensor(Cow::Borrowed(&values));
                            encoded = Some((values, tensor.clone()));
                            tensor
                        }
                    };
                    let header = Message::Reduced {
                        iteration,
                        kind,
                        contributors: contributors as u32,
                        values: Vec::new(),
                    };
                    (worker, Queued::Encoded(header, tensor))
                }
            };
            if let Some(link) = &self.links[worker] {
                let _ = link.tx.send(message);
            }
        }
    }
}
