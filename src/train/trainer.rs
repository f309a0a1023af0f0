//! `lagom train`: one process, one model, local SGD — the baseline a cluster run is measured
//! against. Writes the common `metrics.jsonl` events and returns the run summary.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::TrainSetup;
use crate::algo::vector::all_finite;
use crate::algo::LocalSgd;
use crate::compute::{describe, Engine, EvalOutput};
use crate::data::{self, Batch, DataError, Dataset, Sampler, Sharding};
use crate::model::{to_safetensors, BnEval, InputSpec, Network};
use crate::run::event::{
    Diverged, End, Eval, LossDiverged, Start, TrainEnd, TrainEval, TrainStart, TrainWindow,
};
use crate::run::{MetricsWriter, PerWorker, Progress, RunDetails, RunEvent, Summary, TrainDetails};
use crate::server::StalenessHistogram;

/// Seed stream of the augmentation draws (kept apart from the shuffling stream).
const AUGMENT_STREAM: u64 = 0x4155_474d;
/// Seed stream of the batches that recompute batch-norm statistics.
const BN_STREAM: u64 = 0x424e_5354;

/// What a training run produced besides its files.
#[derive(Debug, Clone)]
pub struct TrainResult {
    /// The run summary (also written as `summary.json` by the caller).
    pub summary: Summary,
    /// The final parameters.
    pub params: Vec<f32>,
    /// The last evaluation on the test set.
    pub final_eval: EvalOutput,
    /// The trained model as a safetensors file (the caller writes it as `model.safetensors`):
    /// the final parameters and the running statistics that evaluation used.
    pub model: Vec<u8>,
}

/// Running sums between two `train` metric lines.
#[derive(Default)]
struct Window {
    loss: f64,
    correct: usize,
    samples: usize,
    steps: u64,
    compute: Duration,
}

/// Trains the model of `config` on its data set, writing events to `metrics`.
pub fn run(
    config: &TrainSetup,
    metrics: &mut MetricsWriter,
    show_progress: bool,
) -> Result<TrainResult> {
    let seed = config.seed;
    let tc = &config.train;
    let device = config.compute.device.open()?;
    let split = data::load(config.data.name, config.data.dir.as_deref(), seed)?;
    let (train, test) = (&split.train, &split.test);
    let input = InputSpec::of(train);
    let engine = Engine::new(Network::with_kernels(
        config.model.name,
        input,
        &device,
        seed,
        config.compute.cpu_kernels,
    )?)
    .with_activations(config.compute.activations);
    let mut params = engine.params()?;
    let alg = &config.algorithm;
    let mut optimizer =
        LocalSgd::<f32>::new(params.len(), alg.momentum, tc.nesterov, alg.weight_decay);
    let schedule = alg.lr_schedule();
    let mut sampler = Sampler::new(train.len(), 0, 1, config.data.sharding, seed);
    let mut augment_rng = ChaCha8Rng::seed_from_u64(seed ^ AUGMENT_STREAM);
    let augment = config.data.augment && train.augmentable;

    let steps_per_epoch = sampler.pool_len().div_ceil(tc.batch_size) as u64;
    let total_steps = (tc.epochs * steps_per_epoch).min(tc.max_steps.unwrap_or(u64::MAX));
    let eval_every = if tc.eval_every == 0 {
        steps_per_epoch
    } else {
        tc.eval_every
    };
    let budget = tc.time_budget_s.map(Duration::from_secs_f64);

    metrics.write(&RunEvent::Start(Start::Train(TrainStart {
        t_s: 0.0,
        updates: 0,
        kind: "train".into(),
        model: config.model.name.as_str().into(),
        params: params.len(),
        layout_hash: format!("{:016x}", engine.network().layout().hash()),
        dataset: config.data.name.as_str().into(),
        train_examples: train.len(),
        test_examples: test.len(),
        device: describe(&device),
        fast_kernels: engine.network().uses_fast_kernels(),
        batch_size: tc.batch_size,
        steps_per_epoch,
        seed,
    })))?;
    tracing::info!(
        "training {} ({} parameters) on {} ({} examples) for up to {} steps on {}",
        config.model.name.as_str(),
        params.len(),
        config.data.name.as_str(),
        train.len(),
        total_steps,
        describe(&device)
    );

    let started = Instant::now();
    let mut progress = show_progress.then(|| Progress::new("train", total_steps));
    let (mut window, mut compute_total) = (Window::default(), Duration::ZERO);
    let (mut steps, mut images, mut diverged) = (0u64, 0u64, false);
    let mut last_loss = f64::NAN;
    let mut last_eval: Option<(u64, EvalOutput)> = None;

    while steps < total_steps {
        if budget.is_some_and(|b| started.elapsed() >= b) {
            tracing::info!("time budget reached after {steps} steps");
            break;
        }
        let indices = sampler.next_batch(tc.batch_size);
        let batch = train.batch(&indices, augment.then_some(&mut augment_rng))?;
        let t0 = Instant::now();
        let out = engine.gradient(&batch)?;
        if !out.loss.is_finite() || out.loss > config.divergence_loss || !all_finite(&out.grad) {
            diverged = true;
            last_loss = out.loss;
            metrics.write(&RunEvent::Diverged(Diverged::Loss(LossDiverged {
                t_s: started.elapsed().as_secs_f64(),
                updates: steps,
                loss: finite(out.loss),
            })))?;
            tracing::warn!("training diverged at step {steps} (loss {})", out.loss);
            break;
        }
        let lr = schedule.at(steps);
        optimizer.step(&mut params, &out.grad, lr);
        engine.set_params(&params)?;
        let dt = t0.elapsed();
        steps += 1;
        images += out.samples as u64;
        compute_total += dt;
        last_loss = out.loss;
        window.loss += out.loss;
        window.correct += out.correct;
        window.samples += out.samples;
        window.steps += 1;
        window.compute += dt;

        if steps % tc.log_every == 0 || steps == total_steps {
            let w = std::mem::take(&mut window);
            metrics.write(&RunEvent::Train(TrainWindow {
                t_s: started.elapsed().as_secs_f64(),
                updates: steps,
                epoch: epoch(images, sampler.pool_len()),
                lr,
                train_loss: w.loss / w.steps as f64,
                train_accuracy: w.correct as f64 / w.samples.max(1) as f64,
                images_per_s: w.samples as f64 / w.compute.as_secs_f64().max(1e-9),
            }))?;
            metrics.flush()?;
        }
        if steps % eval_every == 0 && steps < total_steps {
            let e = evaluate(config, &engine, train, test, seed)?;
            write_eval(metrics, started, steps, images, sampler.pool_len(), &e)?;
            last_eval = Some((steps, e));
        }
        if let Some(p) = progress.as_mut() {
            let acc = last_eval.map_or(String::new(), |(_, e)| {
                format!(", test acc {:.2} %", 100.0 * e.accuracy)
            });
            p.update(steps, &format!("loss {:.4}{acc}", out.loss));
        }
    }
    if let Some(p) = &progress {
        p.finish();
    }

    let final_eval = match last_eval {
        Some((at, e)) if at == steps => e,
        _ => {
            let e = evaluate(config, &engine, train, test, seed)?;
            write_eval(metrics, started, steps, images, sampler.pool_len(), &e)?;
            e
        }
    };
    let wall_s = started.elapsed().as_secs_f64();
    let images_per_s = images as f64 / compute_total.as_secs_f64().max(1e-9);
    metrics.write(&RunEvent::End(End::Train(TrainEnd {
        t_s: wall_s,
        updates: steps,
        loss: finite(last_loss),
        test_accuracy: final_eval.accuracy,
        images_per_s,
    })))?;
    metrics.flush()?;
    tracing::info!(
        "{steps} steps in {wall_s:.1} s: test accuracy {:.2} %, {images_per_s:.0} images/s",
        100.0 * final_eval.accuracy
    );

    let details = RunDetails::Train(TrainDetails {
        batch_size: tc.batch_size,
        dataset: config.data.name.as_str().into(),
        device: describe(&device),
        epochs: epoch(images, sampler.pool_len()),
        fast_kernels: engine.network().uses_fast_kernels(),
        final_test_accuracy: final_eval.accuracy,
        final_test_loss: finite(final_eval.loss),
        images_per_s,
        model: config.model.name.as_str().into(),
        params: params.len(),
    });
    let summary = Summary {
        kind: "train".to_string(),
        algorithm: if tc.nesterov { "sgd-nesterov" } else { "sgd" }.to_string(),
        scheduler: "local".to_string(),
        workers: 1,
        updates: steps,
        wall_s,
        final_loss: finite(last_loss),
        diverged,
        staleness: StalenessHistogram::default().summary(),
        per_worker: vec![PerWorker {
            id: 0,
            gradients: steps,
            mean_staleness: 0.0,
            speed: 1.0,
            effective_speed: 1.0,
        }],
        gradients_rejected: BTreeMap::new(),
        seed,
        stopped_by: None,
        details,
    };
    Ok(TrainResult {
        summary,
        params,
        final_eval,
        model: to_safetensors(engine.network())?,
    })
}

/// Evaluates the engine's current parameters on `test`, with batch-norm statistics as
/// `[model] bn_eval` says.
fn evaluate(
    config: &TrainSetup,
    engine: &Engine,
    train: &Dataset,
    test: &Dataset,
    seed: u64,
) -> Result<EvalOutput> {
    if config.model.bn_eval == BnEval::Recompute && engine.network().has_batch_norm() {
        let batches = bn_batches(
            train,
            config.model.bn_batches,
            config.train.batch_size,
            seed,
        )?;
        engine
            .recompute_bn_stats(&batches)
            .context("recomputing batch-norm statistics")?;
    }
    engine
        .evaluate(test, config.train.eval_batch_size)
        .context("evaluating on the test set")
}

/// `count` batches of un-augmented training examples from a seeded stream of their own; an
/// error when an image cannot be read.
pub fn bn_batches(
    train: &Dataset,
    count: usize,
    batch_size: usize,
    seed: u64,
) -> Result<Vec<Batch>, DataError> {
    let mut sampler = Sampler::new(train.len(), 0, 1, Sharding::Independent, seed ^ BN_STREAM);
    (0..count)
        .map(|_| train.batch(&sampler.next_batch(batch_size), None::<&mut ChaCha8Rng>))
        .collect()
}

fn write_eval(
    metrics: &mut MetricsWriter,
    started: Instant,
    steps: u64,
    images: u64,
    pool: usize,
    e: &EvalOutput,
) -> Result<()> {
    metrics.write(&RunEvent::Eval(Eval::Train(TrainEval {
        t_s: started.elapsed().as_secs_f64(),
        updates: steps,
        epoch: epoch(images, pool),
        test_loss: finite(e.loss),
        test_accuracy: e.accuracy,
    })))?;
    metrics.flush()
}

fn epoch(images: u64, pool: usize) -> f64 {
    images as f64 / pool.max(1) as f64
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}
