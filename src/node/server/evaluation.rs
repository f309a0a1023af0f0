//! The server's evaluations: the parameters go to the evaluator actor (its own thread), the
//! result comes back as an `eval` event and a judgement of the divergence rule.

use actix::{ActorContext, ActorFutureExt, AsyncContext, Context, WrapFuture};

use super::actor::ServerActor;
use crate::node::eval::Evaluate;
use crate::run::event::{Eval, ServerEval};
use crate::run::RunEvent;

impl ServerActor {
    /// Evaluates the parameters off the actor's thread (skipped, never queued, while one runs);
    /// `last`: the run's final evaluation, after which the run finishes — the parameters are
    /// evaluated once per update count, so when they already are (or are being) evaluated at
    /// this update, that evaluation is the final one.
    pub(super) fn start_eval(&mut self, ctx: &mut Context<Self>, last: bool) {
        let updates = self.core.updates();
        if last && self.eval_in_flight == Some(updates) {
            self.finish_after_eval = true;
            return;
        }
        if last && self.eval_in_flight.is_none() && self.last_eval.map(|(u, _)| u) == Some(updates)
        {
            self.finish();
            ctx.stop();
            return;
        }
        if self.eval_in_flight.is_some() && !last {
            return; // the previous evaluation is still running: skip, never queue
        }
        self.eval_in_flight = Some(updates);
        let applied = self.applied.take();
        let request = Evaluate {
            updates,
            params: self.core.params().to_vec(),
        };
        let fut = self
            .evaluator
            .send(request)
            .into_actor(self)
            .map(move |res, act, ctx| {
                act.eval_in_flight = None;
                let last = last || std::mem::take(&mut act.finish_after_eval);
                match res {
                    Ok(Ok((updates, e))) => {
                        let event = RunEvent::Eval(Eval::Server(ServerEval {
                            t_s: act.t_s(),
                            updates,
                            test_loss: e.loss.is_finite().then_some(e.loss),
                            test_accuracy: e.accuracy,
                            applied,
                        }));
                        act.write(event);
                        crate::monitor::evaluated(updates, e.accuracy, e.loss);
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
}
