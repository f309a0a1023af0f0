//! A decentralized worker's shell: joins the rendezvous, takes and dials peer connections, and
//! drives its node core one iteration at a time through [`NodeDriver`] — gradient on the compute
//! thread, gossip to its peers, a bounded wait for theirs (then the sender counts as absent),
//! exact averages through the rendezvous, and a report every `eval_every` iterations.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use anyhow::{anyhow, bail, Context, Result};
use quinn::Connection;
use tokio::sync::mpsc;

use super::compute_actor::{ComputeActor, ComputeGradient, ComputeLoss};
use super::peer_net::{peer_accept_loop, Inbound, PeerCheck, PeerLinks};
use super::worker::WorkerExit;
use crate::algo::{AlgorithmConfig, LrSchedule};
use crate::decen::{build_node, delayed_nodes, topology, NodeDriver, Outgoing, Reduction};
use crate::net::{connect, peer_endpoint, recv_sized, send, NodeIdentity, TransportSettings};
use crate::proto::{frame_limit, Message, NodeStats, ReduceKind, Role, CONTROL_FRAME_LIMIT};

/// Everything a decentralized worker needs.
#[derive(Debug, Clone)]
pub struct DecenWorkerSpec {
    /// Slot.
    pub worker: usize,
    /// Slots in the run.
    pub workers: usize,
    /// This process's incarnation.
    pub incarnation: u64,
    /// The rendezvous (server) address.
    pub server: SocketAddr,
    /// Where to take peer connections.
    pub peer_listen: SocketAddr,
    /// Certificate, key and cluster CA.
    pub identity: NodeIdentity,
    /// The model's layout hash.
    pub layout_hash: u64,
    /// The model's parameter count.
    pub params_len: usize,
    /// The compute device.
    pub device: String,
    /// QUIC settings.
    pub transport: TransportSettings,
    /// How long to wait for `Welcome` (and a peer's introduction).
    pub hello_timeout: Duration,
    /// Interval between heartbeats to the server.
    pub heartbeat: Duration,
    /// How long to wait for a peer's message before counting it absent.
    pub peer_wait: Duration,
    /// `[algorithm]`.
    pub algorithm: AlgorithmConfig,
    /// Nesterov momentum for the local optimizer.
    pub nesterov: bool,
    /// The slots the heterogeneity model slows down (PC-ASGD's delayed nodes by default).
    pub slow_nodes: Vec<usize>,
    /// Iterations of the run.
    pub iterations: u64,
    /// Report every this many iterations (0: only at the end).
    pub eval_every: u64,
}

/// Messages from the server and peers, and what they say about the run.
struct Mailbox {
    inbox: mpsc::UnboundedReceiver<Inbound>,
    server: mpsc::UnboundedReceiver<Result<(Message, usize)>>,
    reduced: BTreeMap<(u64, ReduceKind), Vec<f32>>,
    present: Vec<bool>,
    stopped: bool,
    received: Arc<AtomicU64>,
}

/// What woke a wait.
enum Woke {
    Message,
    Timeout,
}

impl Mailbox {
    /// Handles one message from the server.
    fn on_server(
        &mut self,
        msg: Option<Result<(Message, usize)>>,
        links: &PeerLinks,
    ) -> Result<()> {
        match msg {
            None => bail!("the server connection ended"),
            Some(Err(e)) => Err(e),
            Some(Ok((message, bytes))) => {
                match message {
                    Message::Members { peers } => {
                        self.present = peers.iter().map(Option::is_some).collect();
                        links.set_addresses(&peers);
                    }
                    Message::Reduced {
                        iteration,
                        kind,
                        values,
                        ..
                    } => {
                        self.received.fetch_add(bytes as u64, Ordering::Relaxed);
                        self.reduced.insert((iteration, kind), values);
                    }
                    Message::Stop { reason } => {
                        tracing::info!("stopped by the server: {reason}");
                        self.stopped = true;
                    }
                    Message::Heartbeat { .. } => {}
                    other => tracing::warn!("unexpected {} from the server; ignored", other.kind()),
                }
                Ok(())
            }
        }
    }

    /// Waits for one message (peer or server) or the deadline.
    async fn pump(
        &mut self,
        driver: &mut NodeDriver<f32>,
        links: &PeerLinks,
        deadline: tokio::time::Instant,
    ) -> Result<Woke> {
        tokio::select! {
            inbound = self.inbox.recv() => {
                let Some(Inbound { lateness, message }) = inbound else {
                    bail!("the peer listener stopped");
                };
                let from = message.from;
                if let Err(e) = driver.receive(lateness, message) {
                    tracing::warn!("message from peer {from} refused: {e}");
                }
                Ok(Woke::Message)
            }
            msg = self.server.recv() => {
                self.on_server(msg, links)?;
                Ok(Woke::Message)
            }
            () = tokio::time::sleep_until(deadline) => Ok(Woke::Timeout),
        }
    }
}

/// Sends a node's outgoing messages to its peers.
fn send_all(links: &mut PeerLinks, out: Vec<Outgoing<f32>>) {
    for o in out {
        links.send(
            o.to,
            Message::Gossip {
                from: o.message.from as u32,
                iteration: o.message.iteration,
                lateness: o.lateness,
                weight: o.message.weight,
                x: o.message.x,
            },
        );
    }
}

/// Waits until the node has every message it needs (`all`: every one sent to it so far),
/// giving up at once on absent peers and on the others after `wait`. Returns seconds waited.
async fn wait_for_peers(
    driver: &mut NodeDriver<f32>,
    mail: &mut Mailbox,
    links: &PeerLinks,
    all: bool,
    wait: Duration,
) -> Result<f64> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let missing = driver.missing(all);
        let mut waiting = false;
        for (s, from) in missing {
            if mail.present.get(from).copied().unwrap_or(false) {
                waiting = true;
            } else {
                driver.give_up(s, from);
            }
        }
        if !waiting || mail.stopped {
            return Ok(started.elapsed().as_secs_f64());
        }
        if let Woke::Timeout = mail.pump(driver, links, deadline).await? {
            let missing = driver.missing(all);
            tracing::warn!(
                "no message from {:?} within {wait:?} (net.peer_wait_s): counted absent",
                missing.iter().map(|m| m.1).collect::<Vec<_>>()
            );
            for (s, from) in missing {
                driver.give_up(s, from);
            }
        }
    }
}

/// Sends this node's part of an exact average and waits for the result.
#[allow(clippy::too_many_arguments)]
async fn reduce(
    conn: &Connection,
    spec: &DecenWorkerSpec,
    driver: &mut NodeDriver<f32>,
    mail: &mut Mailbox,
    links: &PeerLinks,
    sent: &AtomicU64,
    iteration: u64,
    kind: ReduceKind,
    values: Vec<f32>,
) -> Result<Option<Vec<f32>>> {
    let bytes = send(
        conn,
        Message::Reduce {
            worker: spec.worker as u32,
            iteration,
            kind,
            values,
        },
    )
    .await?;
    sent.fetch_add(bytes as u64, Ordering::Relaxed);
    let far = tokio::time::Instant::now() + Duration::from_secs(24 * 3600);
    loop {
        if let Some(v) = mail.reduced.remove(&(iteration, kind)) {
            return Ok(Some(v));
        }
        if mail.stopped {
            return Ok(None);
        }
        mail.pump(driver, links, far).await?;
    }
}

/// The counters of the current reporting window.
#[derive(Default)]
struct Window {
    iterations: u64,
    loss: f64,
    compute_s: f64,
    wait_s: f64,
    theta: f64,
    thetas: u64,
    started: Option<Instant>,
}

/// Dials the server (retrying for `hello_timeout` × 3) and joins; returns the connection.
async fn join(
    endpoint: &quinn::Endpoint,
    spec: &DecenWorkerSpec,
    peer_port: u16,
) -> Result<std::result::Result<Connection, WorkerExit>> {
    let give_up = Instant::now() + spec.hello_timeout * 3;
    let mut backoff = Duration::from_millis(100);
    let conn = loop {
        match connect(endpoint, spec.server).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < give_up => {
                tracing::debug!("worker {}: {e:#}; retrying", spec.worker);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    };
    send(
        &conn,
        Message::Hello {
            role: Role::Worker,
            worker: spec.worker as u32,
            incarnation: spec.incarnation,
            layout_hash: spec.layout_hash,
            params_len: spec.params_len as u64,
            device: spec.device.clone(),
            peer_port,
        },
    )
    .await?;
    let reply = tokio::time::timeout(
        spec.hello_timeout,
        crate::net::recv(&conn, CONTROL_FRAME_LIMIT),
    )
    .await
    .map_err(|_| anyhow!("no answer to Hello within {:?}", spec.hello_timeout))??;
    match reply {
        Some(Message::Welcome { .. }) => Ok(Ok(conn)),
        Some(Message::Refuse { code, detail }) => Ok(Err(WorkerExit::Refused { code, detail })),
        Some(other) => bail!("expected Welcome, got {}", other.kind()),
        None => bail!("the server closed the connection"),
    }
}

/// Runs the worker until the run ends (the server's `Stop`) or the server refuses it.
pub async fn run_decen_worker(
    spec: DecenWorkerSpec,
    compute: Addr<ComputeActor>,
) -> Result<WorkerExit> {
    let endpoint = peer_endpoint(spec.peer_listen, &spec.identity, &spec.transport)?;
    let peer_port = endpoint.local_addr()?.port();
    let (inbox_tx, inbox) = mpsc::unbounded_channel();
    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let check = PeerCheck {
        workers: spec.workers,
        layout_hash: spec.layout_hash,
        params_len: spec.params_len,
        hello_timeout: spec.hello_timeout,
    };
    actix::spawn(peer_accept_loop(
        endpoint.clone(),
        check,
        inbox_tx,
        received.clone(),
    ));
    let conn = match join(&endpoint, &spec, peer_port).await? {
        Ok(c) => c,
        Err(exit) => return Ok(exit),
    };
    tracing::info!(
        "worker {} joined the rendezvous at {} (peers: port {peer_port})",
        spec.worker,
        spec.server
    );
    // Heartbeats and the server's messages on their own tasks.
    let beat_conn = conn.clone();
    let every = spec.heartbeat;
    let heartbeat = actix::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if send(&beat_conn, Message::Heartbeat { at_ms: 0 })
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let (server_tx, server_rx) = mpsc::unbounded_channel();
    let read_conn = conn.clone();
    let limit = frame_limit(2 * spec.params_len);
    let reader = actix::spawn(async move {
        loop {
            let msg = recv_sized(&read_conn, limit).await;
            let end = !matches!(msg, Ok(Some(_)));
            let _ = server_tx.send(
                msg.and_then(|m| m.ok_or_else(|| anyhow!("the server closed the connection"))),
            );
            if end {
                return;
            }
        }
    });
    let mut links = PeerLinks::new(
        spec.worker,
        spec.workers,
        endpoint.clone(),
        spec.layout_hash,
        sent.clone(),
        spec.peer_wait,
    );
    let mut mail = Mailbox {
        inbox,
        server: server_rx,
        reduced: BTreeMap::new(),
        present: vec![false; spec.workers],
        stopped: false,
        received: received.clone(),
    };
    let result = train(&spec, &conn, &compute, &mut links, &mut mail, &sent).await;
    heartbeat.abort();
    reader.abort();
    conn.close(0u32.into(), b"done");
    endpoint.close(0u32.into(), b"done");
    result
}

/// Waits for `Start`, then runs the iterations.
async fn train(
    spec: &DecenWorkerSpec,
    conn: &Connection,
    compute: &Addr<ComputeActor>,
    links: &mut PeerLinks,
    mail: &mut Mailbox,
    sent: &AtomicU64,
) -> Result<WorkerExit> {
    let (k0, params) = loop {
        match mail.server.recv().await {
            Some(Ok((
                Message::Start {
                    iteration,
                    peers,
                    params,
                },
                _,
            ))) => {
                mail.present = peers.iter().map(Option::is_some).collect();
                links.set_addresses(&peers);
                break (iteration, params);
            }
            Some(Ok((Message::Stop { .. }, _))) => return Ok(WorkerExit::Stopped { gradients: 0 }),
            other => mail.on_server(other, links)?,
        }
    };
    if params.len() != spec.params_len {
        bail!(
            "Start carries {} values, the model has {}",
            params.len(),
            spec.params_len
        );
    }
    let topo = Arc::new(topology(&spec.algorithm, spec.workers).map_err(|e| anyhow!(e))?);
    let delayed = Arc::new(delayed_nodes(
        &spec.algorithm,
        spec.workers,
        &spec.slow_nodes,
    ));
    let node = build_node(
        &spec.algorithm,
        spec.nesterov,
        spec.worker,
        &topo,
        &delayed,
        params,
    )
    .map_err(|e| anyhow!(e))?;
    let mut driver = NodeDriver::new(spec.worker, spec.workers, spec.params_len, node, k0);
    let lr: LrSchedule = spec.algorithm.lr_schedule();
    let mut window = Window::default();
    let mut done = 0u64;
    tracing::info!("worker {} starts at iteration {k0}", spec.worker);
    while driver.iteration() < spec.iterations && !mail.stopped {
        let k = driver.iteration();
        let gamma = lr.at(k);
        window.started.get_or_insert_with(Instant::now);
        let out = driver.begin();
        send_all(links, out);
        let t = Instant::now();
        let mut g = compute
            .send(ComputeGradient {
                index: k,
                params: driver.eval_point().to_vec(),
                weight_decay: 0.0,
            })
            .await
            .map_err(|e| anyhow!("the compute thread is gone: {e}"))??;
        window.compute_s += t.elapsed().as_secs_f64();
        window.loss += f64::from(g.loss);
        if driver.reduces_gradients() {
            let t = Instant::now();
            match reduce(
                conn,
                spec,
                &mut driver,
                mail,
                links,
                sent,
                k,
                ReduceKind::Gradients,
                g.grad,
            )
            .await?
            {
                Some(mean) => g.grad = mean,
                None => break,
            }
            window.wait_s += t.elapsed().as_secs_f64();
        }
        let out = driver.step(&g.grad, gamma);
        send_all(links, out);
        window.wait_s += wait_for_peers(&mut driver, mail, links, false, spec.peer_wait).await?;
        let mut loss = |p: &[f32]| -> f64 {
            let (tx, rx) = std::sync::mpsc::channel();
            compute.do_send(ComputeLoss {
                params: p.to_vec(),
                reply: tx,
            });
            match rx.recv() {
                Ok(Ok(l)) => l,
                Ok(Err(e)) => {
                    tracing::warn!("loss for the adaptive θ failed: {e:#}");
                    f64::INFINITY
                }
                Err(_) => f64::INFINITY,
            }
        };
        let request = driver.end(gamma, &mut loss);
        if let Some(theta) = driver.node().last_theta() {
            window.theta += theta;
            window.thetas += 1;
        }
        if let Some(r) = request {
            let t = Instant::now();
            wait_for_peers(&mut driver, mail, links, true, spec.peer_wait).await?;
            if !apply_average(conn, spec, &mut driver, mail, links, sent, k, r, gamma).await? {
                break;
            }
            window.wait_s += t.elapsed().as_secs_f64();
        }
        done += 1;
        window.iterations += 1;
        let completed = driver.iteration();
        let _ = send(
            conn,
            Message::Progress {
                worker: spec.worker as u32,
                iteration: completed,
            },
        )
        .await;
        let report_due = completed == spec.iterations
            || (spec.eval_every > 0 && completed % spec.eval_every == 0);
        if report_due {
            let w = std::mem::take(&mut window);
            let n = w.iterations.max(1) as f64;
            let counts = driver.counts();
            let stats = NodeStats {
                iterations: w.iterations,
                loss: w.loss / n,
                weight: f64::from(driver.node().weight()),
                bytes_sent: sent.swap(0, Ordering::Relaxed),
                bytes_received: mail.received.swap(0, Ordering::Relaxed),
                wall_s: w.started.map_or(0.0, |s| s.elapsed().as_secs_f64()),
                compute_s: w.compute_s,
                wait_s: w.wait_s,
                given_up: counts.given_up,
                absorbed_late: counts.absorbed_late,
                theta: (w.thetas > 0).then(|| w.theta / w.thetas as f64),
            };
            send(
                conn,
                Message::Report {
                    worker: spec.worker as u32,
                    iteration: completed,
                    stats,
                    params: driver.node().params(),
                },
            )
            .await
            .context("cannot send the report")?;
        }
    }
    // Wait for the server's Stop (it comes after the last report is evaluated).
    while !mail.stopped {
        let far = tokio::time::Instant::now() + Duration::from_secs(24 * 3600);
        if mail.pump(&mut driver, links, far).await.is_err() {
            break;
        }
    }
    Ok(WorkerExit::Stopped { gradients: done })
}

/// Exchanges this node's parameters (and buffers) for the exact average and applies it.
/// Returns false when the run stopped meanwhile.
#[allow(clippy::too_many_arguments)]
async fn apply_average(
    conn: &Connection,
    spec: &DecenWorkerSpec,
    driver: &mut NodeDriver<f32>,
    mail: &mut Mailbox,
    links: &PeerLinks,
    sent: &AtomicU64,
    k: u64,
    r: Reduction,
    lr: f64,
) -> Result<bool> {
    let d = spec.params_len;
    let mut values = driver.node().params();
    let kind = if r.buffers {
        values.extend_from_slice(driver.node().buffer());
        ReduceKind::ParamsAndBuffers
    } else {
        ReduceKind::Params
    };
    let Some(mean) = reduce(conn, spec, driver, mail, links, sent, k, kind, values).await? else {
        return Ok(false);
    };
    let (params, buffers) = if r.buffers {
        (&mean[..d], Some(&mean[d..]))
    } else {
        (&mean[..], None)
    };
    driver.apply_reduction(r, params, buffers, lr);
    Ok(true)
}
