//! The simulation loop: workers take the parameters the server core sends, finish after a
//! modelled compute time, and hand back a noisy gradient computed on exactly those parameters.

use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::setup::SimSetup;
use super::{build_objective, VirtualClock};
use crate::algo::{self, vector::axpy, Real};
use crate::heterogeneity::jitter_factor;
use crate::run::event::{
    Diverged, End, Eval, LossDiverged, Rejected, SimEnd, SimEval, SimStart, Start,
};
use crate::run::{
    MetricsWriter, PerWorker, PolicyAction, Progress, RunDetails, RunEvent, RunPolicy, SimDetails,
    Summary,
};
use crate::server::{Action, Event, GradientIn, ServerCore, ServerCoreConfig, NEW_PROCESS};

/// What a simulation produced besides its files.
#[derive(Debug, Clone)]
pub struct SimResult {
    /// The run summary (also written as `summary.json` by the caller).
    pub summary: Summary,
    /// The final server parameters.
    pub params: Vec<f32>,
}

/// One virtual worker: the parameters it holds and its private random streams.
struct VirtualWorker {
    held: Vec<f32>,
    index: u64,
    seq: u64,
    speed: f64,
    noise_rng: ChaCha8Rng,
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
    let objective = build_objective(&config.sim, seed);
    let speeds = config.heterogeneity.speeds(k, seed);
    let jitter = config.heterogeneity.jitter_distribution();
    let het_seed = config.heterogeneity.seed.unwrap_or(seed);
    let scheduler = config.algorithm.scheduler();

    let algorithm = algo::build::<f32>(&config.algorithm, k, objective.initial())
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
            noise_rng: ChaCha8Rng::seed_from_u64(
                seed.wrapping_mul(1_000_003).wrapping_add(id as u64),
            ),
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
        dim: objective.dim(),
        seed,
    })))?;

    let mut clock = VirtualClock::default();
    let mut progress = show_progress.then(|| Progress::new("sim", config.sim.updates));
    let mut policy = RunPolicy::new(config.policy.clone(), 0.0);
    let mut grad = Vec::with_capacity(objective.dim());
    let step_time = config.sim.step_time_s;

    let mut pending: Vec<Action<f32>> = Vec::new();
    for id in 0..k {
        pending.extend(core.handle(Event::Join {
            worker: id,
            incarnation: NEW_PROCESS,
        }));
    }
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
                Action::Applied { t, lr, .. } => {
                    let updates = t + 1;
                    let due = policy.after_update(updates, clock.now());
                    if due.contains(&PolicyAction::Evaluate) {
                        let loss = objective.loss(core.params());
                        metrics.write(&RunEvent::Eval(Eval::Sim(SimEval {
                            t_s: clock.now(),
                            updates,
                            loss: finite(loss),
                            lr,
                        })))?;
                        if let Some(p) = progress.as_mut() {
                            p.update(updates, &format!("loss {loss:.4e}"));
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
        objective.gradient(&w.held, &mut w.noise_rng, &mut grad);
        if wd != 0.0 {
            axpy(&mut grad, wd, &w.held);
        }
        w.seq += 1;
        let incarnation = core.workers()[worker].incarnation;
        pending = core.handle(Event::Gradient(GradientIn {
            worker,
            incarnation,
            seq: w.seq,
            ite: w.index,
            grad: grad.clone(),
        }));
    }
    core.stop();
    let final_params = core.params().to_vec();
    let last_loss = objective.loss(&final_params);
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
            dim: objective.dim(),
            objective: config.sim.objective.as_str().into(),
        }),
    };
    Ok(SimResult {
        summary,
        params: final_params,
    })
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}
