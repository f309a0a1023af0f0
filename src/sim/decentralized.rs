//! `lagom sim` for the decentralized family: n virtual nodes run the real node cores on the
//! [`InProcessCluster`](crate::decen::InProcessCluster) — the very node drivers and rendezvous core a
//! networked run executes — each computing noisy gradients of the analytic objective, or a real
//! model's gradients on its own mini-batches.
//!
//! Virtual time: a node's step takes `step_time_s / speed × jitter`, and each loss it computes
//! (PC-ASGD's adaptive θ: two per iteration) a [`FORWARD_SHARE`] of that. An iteration in which nodes
//! exchange messages or average is a barrier (everyone waits for the slowest, then the transfer:
//! latency plus its bytes over `sim.bandwidth_gbps`); an exact average goes through the rendezvous,
//! whose link carries all n vectors each way. OSGP's messages travel behind the next step's
//! compute, so only the part of the transfer longer than a step shows; PC-ASGD's delayed nodes
//! wait for nobody and nobody waits for them (their lateness is the configured delay), except
//! that the global adaptive θ averages two losses through the rendezvous every iteration, a
//! barrier for all nodes. Local SGD's nodes run freely between averages.

use std::cell::RefCell;
use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::driver::describe;
use super::host_time::TimedSource;
use super::setup::SimSetup;
use super::source::{Evaluation, GradientSource, LossWindow};
use super::{build_source, SimResult};
use crate::algo::AlgorithmName;
use crate::decen::{build_nodes, delayed_nodes, InProcessCluster, LOSS_POINTS};
use crate::heterogeneity::jitter_factor;
use crate::run::event::{
    DecentralizedSimEval, Diverged, End, Eval, LossDiverged, SimEnd, SimStart, Start,
};
use crate::run::{
    DecentralizedSimDetails, MetricsWriter, PerWorker, PolicyAction, Progress, RunDetails,
    RunEvent, RunPolicy, Summary,
};
use crate::server::StalenessHistogram;

/// The time of a forward pass (a loss PC-ASGD's adaptive θ asks for) as a share of a step's
/// forward and backward pass.
pub const FORWARD_SHARE: f64 = 1.0 / 3.0;

/// Bytes and time of the iterations since the last report.
#[derive(Default)]
struct Window {
    iterations: u64,
    sent: u64,
    received: u64,
    seconds: f64,
}

/// Runs the decentralized simulation described by `config`, writing events to `metrics`.
pub fn run(
    config: &SimSetup,
    metrics: &mut MetricsWriter,
    show_progress: bool,
) -> Result<SimResult> {
    let n = config.workers;
    let seed = config.seed;
    let source = RefCell::new(TimedSource::new(build_source(config)?));
    let dim = source.borrow().dim();
    let speeds = config.heterogeneity.speeds(n, seed);
    let slow_nodes: Vec<usize> = (0..n).filter(|&i| speeds[i] < 1.0).collect();
    let jitter = config.heterogeneity.jitter_distribution();
    let het_seed = config.heterogeneity.seed.unwrap_or(seed);
    let alg = &config.algorithm;
    let nodes = build_nodes::<f32>(
        alg,
        config.nesterov,
        n,
        &slow_nodes,
        &source.borrow().initial()?,
    )
    .map_err(|e| anyhow!("algorithm: {e}"))?;
    let mut cluster = InProcessCluster::new(nodes, seed ^ 0x05e9_d00d);
    let mut timing: Vec<ChaCha8Rng> = (0..n)
        .map(|i| {
            ChaCha8Rng::seed_from_u64(
                het_seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1)),
            )
        })
        .collect();
    let mut policy = RunPolicy::new(config.policy.clone(), 0.0);
    let bytes_per_second = config.sim.bandwidth_gbps * 1e9 / 8.0;
    let latency = config.sim.latency_ms * 1e-3;
    let overlap = alg.name == AlgorithmName::Osgp;
    let delayed: Vec<bool> = if alg.name == AlgorithmName::PcAsgd && alg.pc_asgd.delay > 0 {
        delayed_nodes(alg, n, &slow_nodes)
    } else {
        vec![false; n]
    };

    metrics.write(&RunEvent::Start(Start::Sim(SimStart {
        t_s: 0.0,
        updates: 0,
        kind: "sim".into(),
        algorithm: alg.name.as_str().into(),
        scheduler: "decentralized".into(),
        workers: n,
        speeds: speeds.clone(),
        objective: config.sim.objective.as_str().into(),
        dim,
        seed,
    })))?;

    let mut clocks = vec![0.0f64; n];
    let mut progress = show_progress.then(|| Progress::new("sim", config.sim.updates));
    let mut window = Window::default();
    let (mut total_sent, mut total_received) = (0u64, 0u64);
    let (mut averages, mut slow_steps) = (0u64, 0u64);
    let mut theta_sum = 0.0;
    let mut theta_count = 0u64;
    let mut train_loss = LossWindow::default();
    let mut last_train_loss = None;
    let mut evaluated: Option<(u64, Evaluation)> = None;
    let failure: RefCell<Option<anyhow::Error>> = RefCell::new(None);
    for k in 0..config.sim.updates {
        let lr = policy.lr(k);
        let mut compute = vec![0.0f64; n];
        for i in 0..n {
            compute[i] =
                config.sim.step_time_s / speeds[i] * jitter_factor(jitter.as_ref(), &mut timing[i]);
        }
        let mut losses_computed = vec![0u32; n];
        let report = cluster.iterate(
            lr,
            &mut |i, point, out| match source.borrow_mut().gradient(i, point, 0.0, out) {
                Ok(loss) => train_loss.add(loss),
                Err(e) => {
                    out.clear();
                    out.resize(dim, 0.0);
                    failure.borrow_mut().get_or_insert(e);
                }
            },
            &mut |i, point| match source.borrow_mut().local_loss(i, point) {
                Ok(loss) => {
                    losses_computed[i] += 1;
                    loss
                }
                Err(e) => {
                    failure.borrow_mut().get_or_insert(e);
                    f64::NAN
                }
            },
        );
        if let Some(e) = failure.borrow_mut().take() {
            return Err(e.context(format!("iteration {k} of the simulation")));
        }
        for i in 0..n {
            compute[i] *= 1.0 + FORWARD_SHARE * f64::from(losses_computed[i]);
        }
        let before = clocks.iter().copied().fold(0.0, f64::max);
        for i in 0..n {
            clocks[i] += compute[i];
        }
        let most = |v: &[u64]| v.iter().copied().max().unwrap_or(0) as f64;
        let rendezvous = report.averaged || report.reduced_gradients;
        let p2p = report.bytes_sent.iter().any(|&b| b > 0) && !rendezvous;
        if rendezvous {
            let transfer =
                2.0 * latency + 2.0 * n as f64 * most(&report.bytes_sent) / bytes_per_second;
            let done = clocks.iter().copied().fold(0.0, f64::max) + transfer;
            clocks.iter_mut().for_each(|c| *c = done);
        } else if p2p {
            let upload = latency + most(&report.bytes_sent) / bytes_per_second;
            let transfer = latency
                + most(&report.bytes_sent).max(most(&report.bytes_received)) / bytes_per_second;
            // PC-ASGD's delayed nodes hold nobody up: their messages are modelled as late; but
            // averaging the losses for one θ_k is a barrier that waits for every node.
            let slowest = (0..n)
                .filter(|&i| !delayed[i] || report.reduced_losses)
                .map(|i| clocks[i])
                .fold(0.0, f64::max);
            let loss_mean = if report.reduced_losses {
                2.0 * latency + 2.0 * n as f64 * (LOSS_POINTS * 4) as f64 / bytes_per_second
            } else {
                0.0
            };
            let step = compute.iter().copied().fold(f64::INFINITY, f64::min);
            // OSGP sends while the next step computes; what arrives is absorbed when it lands.
            let shown = if overlap {
                (upload - step).max(0.0)
            } else {
                transfer
            };
            clocks
                .iter_mut()
                .for_each(|c| *c = slowest + shown + loss_mean);
        }
        let after = clocks.iter().copied().fold(0.0, f64::max);
        let sent: u64 = report.bytes_sent.iter().sum();
        let received: u64 = report.bytes_received.iter().sum();
        total_sent += sent;
        total_received += received;
        window.iterations += 1;
        window.sent += sent;
        window.received += received;
        window.seconds += after - before;
        averages += u64::from(report.averaged);
        slow_steps += u64::from(report.slow_step);
        for node in cluster.nodes() {
            if let Some(t) = node.last_theta() {
                theta_sum += t;
                theta_count += 1;
            }
        }
        let updates = k + 1;
        let due = policy.after_update(updates, after);
        let out_of_time = config.sim.time_budget_s.is_some_and(|b| after >= b);
        if due.contains(&PolicyAction::Evaluate) || updates == config.sim.updates || out_of_time {
            let e = source.borrow_mut().evaluate(&cluster.mean_params())?;
            evaluated = Some((updates, e));
            let loss = e.loss;
            last_train_loss = train_loss.take();
            let per = (window.iterations * n as u64).max(1) as f64;
            metrics.write(&RunEvent::Eval(Eval::DecentralizedSim(
                DecentralizedSimEval {
                    t_s: after,
                    updates,
                    loss: finite(loss),
                    test_accuracy: e.accuracy,
                    train_loss: last_train_loss,
                    lr,
                    consensus_distance: finite(cluster.consensus_distance()),
                    bytes_sent_per_node_iteration: window.sent as f64 / per,
                    bytes_received_per_node_iteration: window.received as f64 / per,
                    iteration_s: window.seconds / window.iterations.max(1) as f64,
                },
            )))?;
            window = Window::default();
            if let Some(p) = progress.as_mut() {
                p.update(updates, &describe(&e));
            }
            if policy.on_evaluated_loss(loss).is_some() {
                break;
            }
        }
        if out_of_time {
            break;
        }
    }
    let iterations = cluster.iteration();
    let final_params = cluster.mean_params();
    let last = match evaluated {
        Some((at, e)) if at == iterations => e,
        _ => source.borrow_mut().evaluate(&final_params)?,
    };
    let last_loss = last.loss;
    policy.on_evaluated_loss(last_loss);
    let diverged = policy.diverged().is_some();
    if let Some(p) = &progress {
        p.finish();
    }
    let wall = clocks.iter().copied().fold(0.0, f64::max);
    if diverged {
        metrics.write(&RunEvent::Diverged(Diverged::Loss(LossDiverged {
            t_s: wall,
            updates: iterations,
            loss: finite(last_loss),
        })))?;
    }
    metrics.write(&RunEvent::End(End::Sim(SimEnd {
        t_s: wall,
        updates: iterations,
        loss: finite(last_loss),
        test_accuracy: last.accuracy,
    })))?;
    metrics.flush()?;

    let per_node_iteration = (iterations * n as u64).max(1) as f64;
    let details = RunDetails::DecentralizedSim(DecentralizedSimDetails {
        bytes_received_per_node_iteration: total_received as f64 / per_node_iteration,
        bytes_sent_per_node_iteration: total_sent as f64 / per_node_iteration,
        consensus_distance: finite(cluster.consensus_distance()),
        dim,
        exact_averages: averages,
        iteration_s: wall / iterations.max(1) as f64,
        objective: config.sim.objective.as_str().into(),
        slow_steps,
        final_test_accuracy: last.accuracy,
        final_train_loss: train_loss.take().or(last_train_loss),
        theta_mean: (theta_count > 0).then(|| theta_sum / theta_count as f64),
    });
    let per_worker = (0..n)
        .map(|id| PerWorker {
            id,
            gradients: iterations,
            mean_staleness: 0.0,
            speed: speeds[id],
            effective_speed: 1.0,
        })
        .collect();
    let summary = Summary {
        kind: "sim".to_string(),
        algorithm: alg.name.as_str().to_string(),
        scheduler: "decentralized".to_string(),
        workers: n,
        updates: iterations,
        wall_s: wall,
        final_loss: finite(last_loss),
        diverged,
        staleness: StalenessHistogram::default().summary(),
        per_worker,
        gradients_rejected: BTreeMap::new(),
        seed,
        stopped_by: None,
        details,
    };
    let host = source.borrow().host_time();
    Ok(SimResult {
        summary,
        params: final_params,
        host,
    })
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}
