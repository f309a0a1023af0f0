//! The event loop of a decentralized worker: executes what its [`NodeDriver`] asks for and feeds
//! back what happens. It never decides the order of protocol steps (the driver does) and never
//! blocks: computations run on the compute thread and come back as events, like peer messages,
//! the rendezvous' messages and the driver's deadlines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::Addr;
use anyhow::{anyhow, bail, Result};
use quinn::Connection;
use tokio::sync::mpsc;

use super::decentralized_report::{finish_iteration, send_state, Window};
use super::peer_links::PeerLinks;
use super::peer_listener::Inbound;
use crate::decen::{DriverAction, GossipMessage, NodeDriver};
use crate::net::send_as;
use crate::node::compute::{ComputeActor, ComputeGradient, ComputeLoss, ComputedGradient};
use crate::node::warn_limit::WarnLimit;
use crate::proto::{Message, WireDtype};
use crate::run::{PolicyAction, PolicyConfig, RunPolicy};

/// A computation's result, back from the compute thread.
enum Computed {
    Gradient(u64, Result<ComputedGradient>),
    Losses(u64, Vec<f64>),
}

/// The worker's inputs: peers' messages, the rendezvous' messages, and byte counters.
pub struct Inputs {
    /// Peers' gossip, already checked for its sender (bounded: see `INBOX_CAPACITY`).
    pub inbox: mpsc::Receiver<Inbound>,
    /// The rendezvous' messages with their frame sizes.
    pub server: mpsc::UnboundedReceiver<Result<(Message, usize)>>,
    /// Algorithm bytes received (gossip frames counted by the peer listener, averages here).
    pub received: std::sync::Arc<AtomicU64>,
    /// Algorithm bytes sent (gossip frames counted by the peer links, averages here).
    pub sent: std::sync::Arc<AtomicU64>,
}

/// What the loop needs to know about its run.
pub struct LoopSpec {
    /// This slot.
    pub worker: usize,
    /// Iterations of the run.
    pub iterations: u64,
    /// The report cadence (`eval_every`) and learning-rate schedule.
    pub policy: PolicyConfig,
    /// The precision of the tensors it sends.
    pub wire_dtype: WireDtype,
}

/// Sends a driver's gossip to its peers; one whose peer's queue is full goes back to the node.
fn gossip(links: &mut PeerLinks, driver: &mut NodeDriver<f32>, o: crate::decen::Outgoing<f32>) {
    let to = o.to;
    let message = Message::Gossip {
        from: o.message.from as u32,
        iteration: o.message.iteration,
        lateness: o.lateness,
        weight: o.message.weight,
        x: o.message.x,
    };
    let Err(back) = links.send(to, message) else {
        return;
    };
    if let Message::Gossip {
        from,
        iteration,
        weight,
        x,
        ..
    } = *back
    {
        tracing::debug!("peer {to} is not taking messages; this one goes back to the node");
        driver.take_back(&GossipMessage {
            from: from as usize,
            iteration,
            x,
            weight,
        });
    }
}

/// Runs the driver until the run's iterations are done or the rendezvous stops the run;
/// returns the iterations this process completed.
pub async fn run_loop(
    spec: &LoopSpec,
    driver: &mut NodeDriver<f32>,
    conn: &Connection,
    compute: &Addr<ComputeActor>,
    links: &mut PeerLinks,
    inputs: &mut Inputs,
) -> Result<u64> {
    let clock = Instant::now();
    let (computed_tx, mut computed) = mpsc::unbounded_channel::<Computed>();
    let mut window = Window::default();
    let mut done = 0u64;
    let mut stopped = false;
    let mut computing: Option<Instant> = None;
    let mut policy = RunPolicy::new(spec.policy.clone(), 0.0);
    // An absent peer is given up on every iteration: warn about it now and then, not each time.
    let mut gave_up = WarnLimit::default();
    let mut refused = WarnLimit::default();
    // The rendezvous asked for this node's state (for a rejoining peer): sent when an iteration
    // ends, when the node's parameters are whole.
    let mut state_asked = false;
    if driver.iteration() < spec.iterations {
        driver.start(policy.lr(driver.iteration()));
    }
    while driver.iteration() < spec.iterations && !stopped {
        window.started.get_or_insert_with(Instant::now);
        let mut deadline = None;
        let mut completed = None;
        for action in driver.poll(clock.elapsed().as_secs_f64()) {
            match action {
                DriverAction::Send(o) => gossip(links, driver, o),
                DriverAction::ComputeGradient { iteration, point } => {
                    computing = Some(Instant::now());
                    let (compute, tx) = (compute.clone(), computed_tx.clone());
                    actix::spawn(async move {
                        let request = ComputeGradient {
                            index: iteration,
                            params: point,
                            weight_decay: 0.0,
                        };
                        let result = match compute.send(request).await {
                            Ok(r) => r,
                            Err(e) => Err(anyhow!("the compute thread is gone: {e}")),
                        };
                        let _ = tx.send(Computed::Gradient(iteration, result));
                    });
                }
                DriverAction::ComputeLosses { iteration, points } => {
                    computing = Some(Instant::now());
                    let (compute, tx) = (compute.clone(), computed_tx.clone());
                    actix::spawn(async move {
                        let mut losses = Vec::with_capacity(points.len());
                        for params in points {
                            losses.push(match compute.send(ComputeLoss { params }).await {
                                Ok(Ok(l)) => l,
                                Ok(Err(e)) => {
                                    tracing::warn!("loss for the adaptive θ failed: {e:#}");
                                    f64::INFINITY
                                }
                                Err(_) => f64::INFINITY,
                            });
                        }
                        let _ = tx.send(Computed::Losses(iteration, losses));
                    });
                }
                DriverAction::Reduce {
                    iteration,
                    kind,
                    values,
                } => {
                    let message = Message::Reduce {
                        worker: spec.worker as u32,
                        iteration,
                        kind,
                        values,
                    };
                    let bytes = send_as(conn, message, spec.wire_dtype).await?;
                    inputs.sent.fetch_add(bytes as u64, Ordering::Relaxed);
                }
                DriverAction::WaitUntil(at) => deadline = Some(at),
                DriverAction::GaveUp { iteration, senders } => gave_up.warn(&format!(
                    "worker {}: no message from {senders:?} for iteration {iteration} within \
                     net.peer_wait_s (or they left): counted absent",
                    spec.worker
                )),
                DriverAction::Completed { completed: c, .. } => completed = Some(c),
            }
        }
        if let Some(c) = completed {
            done += 1;
            window.iterations += 1;
            if let Some(theta) = driver.node().last_theta() {
                window.theta += theta;
                window.thetas += 1;
            }
            let due = policy.after_update(c, clock.elapsed().as_secs_f64());
            let report = due.contains(&PolicyAction::Evaluate) || c == spec.iterations;
            finish_iteration(spec, driver, conn, inputs, &mut window, c, report).await?;
            if std::mem::take(&mut state_asked) {
                send_state(spec, driver, conn).await;
            }
            if c < spec.iterations {
                driver.start(policy.lr(c));
            }
            continue;
        }
        // Nothing to do until something happens.
        let far = Duration::from_secs(24 * 3600);
        let wake = tokio::time::Instant::from_std(
            clock + deadline.map_or(far, |d| Duration::from_secs_f64(d.max(0.0))),
        );
        let waited = Instant::now();
        tokio::select! {
            inbound = inputs.inbox.recv() => {
                let Some(Inbound { lateness, message }) = inbound else {
                    bail!("the peer listener stopped");
                };
                let from = message.from;
                if let Err(e) = driver.receive(lateness, message) {
                    window.refused += 1;
                    refused.warn(&format!("message from peer {from} refused: {e}"));
                }
            }
            msg = inputs.server.recv() => {
                stopped = on_server(msg, driver, links, &inputs.received, &mut state_asked)?;
            }
            result = computed.recv() => {
                let took = computing.take().map_or(0.0, |t| t.elapsed().as_secs_f64());
                window.compute_s += took;
                match result {
                    Some(Computed::Gradient(iteration, result)) => {
                        let g = result?;
                        window.loss += f64::from(g.loss);
                        if let Err(e) = driver.on_gradient(iteration, g.grad) {
                            tracing::warn!("gradient dropped: {e}");
                        }
                    }
                    Some(Computed::Losses(iteration, losses)) => {
                        if let Err(e) = driver.on_losses(iteration, losses) {
                            tracing::warn!("losses dropped: {e}");
                        }
                    }
                    None => bail!("the compute results channel closed"),
                }
            }
            () = tokio::time::sleep_until(wake) => {}
        }
        if computing.is_none() {
            window.wait_s += waited.elapsed().as_secs_f64();
        }
    }
    if stopped {
        driver.stop();
        return Ok(done);
    }
    // Wait for the rendezvous' Stop (it comes after the last report is evaluated).
    loop {
        let msg = inputs.server.recv().await;
        let stopped = on_server(msg, driver, links, &inputs.received, &mut state_asked)?;
        if std::mem::take(&mut state_asked) {
            send_state(spec, driver, conn).await;
        }
        if stopped {
            return Ok(done);
        }
    }
}

/// Handles one message from the rendezvous; returns true when the run stopped. A request for
/// this node's state sets `state_asked`.
fn on_server(
    msg: Option<Result<(Message, usize)>>,
    driver: &mut NodeDriver<f32>,
    links: &PeerLinks,
    received: &AtomicU64,
    state_asked: &mut bool,
) -> Result<bool> {
    let (message, bytes) = match msg {
        None => bail!("the server connection ended"),
        Some(result) => result?,
    };
    match message {
        Message::Members { peers } => {
            let present: Vec<bool> = peers.iter().map(Option::is_some).collect();
            driver.set_present(&present);
            links.directory().set(&peers);
        }
        Message::Reduced {
            iteration,
            kind,
            values,
            ..
        } => {
            received.fetch_add(bytes as u64, Ordering::Relaxed);
            if let Err(e) = driver.on_reduced(iteration, kind, values) {
                tracing::warn!("exact average dropped: {e}");
            }
        }
        Message::Stop { reason } => {
            tracing::info!("stopped by the server: {reason}");
            return Ok(true);
        }
        Message::Heartbeat { .. } => {}
        Message::StateRequest {} => *state_asked = true,
        other => tracing::warn!("unexpected {} from the server; ignored", other.kind()),
    }
    Ok(false)
}
