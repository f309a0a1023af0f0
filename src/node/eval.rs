//! Evaluation of the server's parameters on its own thread, so updates never wait for it.

use actix::{Actor, Handler, Message as ActixMessage, SyncContext};
use anyhow::Result;

use crate::compute::{Engine, EvalOutput};
use crate::data::{Batch, Dataset};
use crate::model::{to_safetensors, MODEL_FILE};
use crate::run::RunDir;

/// Evaluate `params` (the server's parameters after `updates` updates).
#[derive(Debug)]
pub struct Evaluate {
    /// The update count the parameters belong to.
    pub updates: u64,
    /// The parameters.
    pub params: Vec<f32>,
}

impl ActixMessage for Evaluate {
    type Result = Result<(u64, EvalOutput)>;
}

/// A model, the test set, and the training batches that recompute batch-norm statistics.
#[derive(Clone)]
pub struct EvalActor {
    engine: Engine,
    /// Shared with the clones an actix sync arbiter's factory makes, not copied.
    test: std::sync::Arc<Dataset>,
    bn_batches: std::sync::Arc<Vec<Batch>>,
    batch_size: usize,
    /// Where each evaluated model is written as `model.safetensors`, if anywhere.
    model_out: Option<RunDir>,
}

impl EvalActor {
    /// An evaluator; `bn_batches` recompute the statistics of models with batch norm.
    pub fn new(engine: Engine, test: Dataset, bn_batches: Vec<Batch>, batch_size: usize) -> Self {
        EvalActor {
            engine,
            test: std::sync::Arc::new(test),
            bn_batches: std::sync::Arc::new(bn_batches),
            batch_size,
            model_out: None,
        }
    }

    /// The same evaluator, writing every model it evaluates — parameters and the batch-norm
    /// statistics it recomputed for them — to `dir/model.safetensors` (atomically), so the file
    /// always holds the last evaluated model.
    pub fn writing_model_to(self, dir: RunDir) -> Self {
        EvalActor {
            model_out: Some(dir),
            ..self
        }
    }
}

impl Actor for EvalActor {
    type Context = SyncContext<Self>;
}

impl Handler<Evaluate> for EvalActor {
    type Result = Result<(u64, EvalOutput)>;

    fn handle(&mut self, msg: Evaluate, _: &mut SyncContext<Self>) -> Self::Result {
        let out = self.engine.evaluate_params(
            &msg.params,
            &self.bn_batches,
            &self.test,
            self.batch_size,
        )?;
        if let Some(dir) = &self.model_out {
            let written = to_safetensors(self.engine.network())
                .and_then(|bytes| dir.write_atomically(MODEL_FILE, &bytes));
            if let Err(e) = written {
                tracing::error!("the model of update {} was not written: {e:#}", msg.updates);
            }
        }
        Ok((msg.updates, out))
    }
}
