//! The simulation loop: workers take the parameters the server core sends, finish after a
//! modelled compute time, and hand back a gradient (noisy analytic, or a real model's on the
//! worker's next mini-batch) computed on exactly those parameters.

use std::time::{Duration, Instant};

use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::host_time::{HostTime, TimedSource};
use super::setup::SimSetup;
use super::source::{Evaluation, GradientSource, LossWindow};
use super::{build_source, VirtualClock};
use crate::algo::{self, Real};
use crate::heterogeneity::jitter_factor;
use crate::run::event::{
    Diverged, End, Eval, LossDiverged, Rejected, SimEnd, SimEval, SimStart, Start,
};
use crate::run::{
    MetricsWriter, PerWorker, PolicyAction, Progress, RunDetails, RunEvent, RunPolicy, SimDetails,
    Summary,
};
use crate::server::{
    Action, AppliedWindow, Event, GradientIn, ServerCore, ServerCoreConfig, NEW_PROCESS,
};

/// What a simulation produced besides its files.
#[derive(Debug, Clone)]
pub struct SimResult {
    /// The run summary (also written as `summary.json` by the caller).
    pub summary: Summary,
    /// The final server parameters.
    pub params: Vec<f32>,
    /// Where the host's time went (not part of any output: it differs between runs).
    pub host: HostTime,
}

/// One virtual worker: the parameters it holds and its private timing stream (its gradient
/// stream lives in the source).
struct VirtualWorker {
    held: Vec<f32>,
    index: u64,
    seq: u64,
    speed: f64,
    time_rng: ChaCha8Rng,
}

/// Runs the simulation described by `config`, writing events to `metrics`.
pub fn run(
    config: &SimSetup,
    metrics: &mut MetricsWriter,
    show_progress: bool,
) -> Result<SimResult> {
    if config.algorithm.name.is_decentralized() {
        return super::decentralized::run(config, metrics, show_progress);
    }
    let k = config.workers;
    let seed = config.seed;
    let mut source = TimedSource::new(build_source(config)?);
    let speeds = config.heterogeneity.speeds(k, seed);
    let jitter = config.heterogeneity.jitter_distribution();
    let het_seed = config.heterogeneity.seed.unwrap_or(seed);
    let scheduler = config.algorithm.scheduler();

    let algorithm = algo::build::<f32>(&config.algorithm, k, source.initial()?)
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut core = ServerCore::new(
        ServerCoreConfig {
            workers: k,
            scheduler,
            max_updates: Some(config.sim.updates),
            lr: config.algorithm.lr_schedule(),
        },
        algorithm,
    );
    let wd = f32::of(core.worker_weight_decay());
    let mut workers: Vec<VirtualWorker> = (0..k)
        .map(|id| VirtualWorker {
            held: Vec::new(),
            index: 0,
            seq: 0,
            speed: speeds[id],
            time_rng: ChaCha8Rng::seed_from_u64(
                het_seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(id as u64 + 1)),
            ),
        })
        .collect();

    metrics.write(&RunEvent::Start(Start::Sim(SimStart {
        t_s: 0.0,
        updates: 0,
        kind: "sim".into(),
        algorithm: config.algorithm.name.as_str().into(),
        scheduler: scheduler.as_str().into(),
        workers: k,
        speeds: speeds.clone(),
        objective: config.sim.objective.as_str().into(),
        dim: source.dim(),
        seed,
    })))?;

    let mut clock = VirtualClock::default();
    let mut progress = show_progress.then(|| Progress::new("sim", config.sim.updates));
    let mut policy = RunPolicy::new(config.policy.clone(), 0.0);
    let mut grad = Vec::with_capacity(source.dim());
    let mut applied = AppliedWindow::new(k);
    let mut train_loss = LossWindow::default();
    let mut last_train_loss = None;
    let mut evaluated: Option<(u64, Evaluation)> = None;
    let step_time = config.sim.step_time_s;

    let mut pending: Vec<Action<Vec<f32>>> = Vec::new();
    // Host time inside the server core, for the `host time:` line (never in an output file).
    let mut core_time = Duration::ZERO;
    let started = Instant::now();
    for id in 0..k {
        pending.extend(core.handle(Event::Join {
            worker: id,
            incarnation: NEW_PROCESS,
        }));
    }
    core_time += started.elapsed();
    loop {
        // Carry out the core's actions in order.
        let mut stop = false;
        for action in pending.drain(..) {
            match action {
                Action::SendParams {
                    worker,
                    index,
                    params,
                } => {
                    let w = &mut workers[worker];
                    w.held = params;
                    w.index = index;
                    let duration =
                        step_time / w.speed * jitter_factor(jitter.as_ref(), &mut w.time_rng);
                    clock.schedule(worker, duration);
                }
                Action::Applied {
                    worker,
                    t,
                    staleness,
                    lr,
                } => {
                    applied.record(worker, staleness);
                    let updates = t + 1;
                    let due = policy.after_update(updates, clock.now());
                    if due.contains(&PolicyAction::Evaluate) {
                        let e = source.evaluate(core.params())?;
                        evaluated = Some((updates, e));
                        let loss = e.loss;
                        last_train_loss = train_loss.take();
                        metrics.write(&RunEvent::Eval(Eval::Sim(SimEval {
                            t_s: clock.now(),
                            updates,
                            loss: finite(loss),
                            test_accuracy: e.accuracy,
                            train_loss: last_train_loss,
                            lr,
                            applied: applied.take(),
                        })))?;
                        if let Some(p) = progress.as_mut() {
                            p.update(updates, &describe(&e));
                        }
                        if policy.on_evaluated_loss(loss).is_some() {
                            stop = true;
                        }
                    }
                }
                Action::Rejected { worker, reason } => {
                    metrics.write(&RunEvent::Rejected(Rejected {
                        t_s: clock.now(),
                        updates: core.updates(),
                        worker,
                        reason: reason.code().into(),
                        detail: reason.to_string(),
                    }))?;
                }
                Action::Stop => stop = true,
            }
        }
        if stop {
            break;
        }
        if config.sim.time_budget_s.is_some_and(|b| clock.now() >= b) {
            break;
        }
        let Some(worker) = clock.advance() else {
            anyhow::bail!(
                "simulation stalled: no worker is computing at update {}",
                core.updates()
            );
        };
        let w = &mut workers[worker];
        train_loss.add(source.gradient(worker, &w.held, wd, &mut grad)?);
        w.seq += 1;
        let incarnation = core.workers()[worker].incarnation;
        let started = Instant::now();
        pending = core.handle(Event::Gradient(GradientIn {
            worker,
            incarnation,
            seq: w.seq,
            ite: w.index,
            grad: std::mem::take(&mut grad),
        }));
        core_time += started.elapsed();
    }
    core.stop();
    let final_params = core.params().to_vec();
    let last = match evaluated {
        Some((at, e)) if at == core.updates() => e,
        _ => source.evaluate(&final_params)?,
    };
    let last_loss = last.loss;
    policy.on_evaluated_loss(last_loss);
    let diverged = policy.diverged().is_some();
    if let Some(p) = &progress {
        p.finish();
    }
    if diverged {
        metrics.write(&RunEvent::Diverged(Diverged::Loss(LossDiverged {
            t_s: clock.now(),
            updates: core.updates(),
            loss: finite(last_loss),
        })))?;
    }
    metrics.write(&RunEvent::End(End::Sim(SimEnd {
        t_s: clock.now(),
        updates: core.updates(),
        loss: finite(last_loss),
        test_accuracy: last.accuracy,
    })))?;
    metrics.flush()?;

    let per_worker = PerWorker::from_records(core.workers(), &speeds);
    let summary = Summary {
        kind: "sim".to_string(),
        algorithm: config.algorithm.name.as_str().to_string(),
        scheduler: scheduler.as_str().to_string(),
        workers: k,
        updates: core.updates(),
        wall_s: clock.now(),
        final_loss: finite(last_loss),
        diverged,
        staleness: core.staleness().summary(),
        per_worker,
        gradients_rejected: core
            .rejections()
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        seed,
        stopped_by: None,
        details: RunDetails::Sim(SimDetails {
            dim: source.dim(),
            objective: config.sim.objective.as_str().into(),
            final_test_accuracy: last.accuracy,
            final_train_loss: train_loss.take().or(last_train_loss),
        }),
    };
    Ok(SimResult {
        summary,
        params: final_params,
        host: HostTime {
            core_s: Some(core_time.as_secs_f64()),
            ..source.host_time()
        },
    })
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// The progress bar's text for an evaluation.
pub(super) fn describe(e: &Evaluation) -> String {
    match e.accuracy {
        Some(a) => format!("test acc {:.2} %, loss {:.4}", 100.0 * a, e.loss),
        None => format!("loss {:.4e}", e.loss),
    }
}
