//! A decentralized worker's shell: joins the rendezvous, takes and dials peer connections, and
//! hands its [`NodeDriver`] to the event loop (`decentralized_loop`) — gradient on the compute
//! thread, gossip to its peers, a bounded wait for theirs (then the sender counts as absent),
//! exact averages through the rendezvous, and a report every `eval_every` iterations.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use anyhow::{anyhow, bail, Result};
use quinn::Connection;
use tokio::sync::mpsc;

use super::decentralized_loop::{run_loop, Inputs, LoopSpec};
use super::parameter_server::WorkerExit;
use super::peer_links::{Dialler, PeerDirectory, PeerLinks};
use super::peer_listener::{peer_accept_loop, PeerCheck, INBOX_CAPACITY};
use super::spawn_heartbeats;
use crate::algo::AlgorithmConfig;
use crate::decen::{build_node, delayed_nodes, rendezvous_message_len, topology, NodeDriver};
use crate::net::{
    closed_by_refusal, connect, handshake_refusal, peer_endpoint, recv_sized, NodeIdentity,
    TransportSettings,
};
use crate::node::compute::ComputeActor;
use crate::node::hello::{say_hello, HelloAnswer, WorkerHello};
use crate::proto::{frame_limit, Message};
use crate::run::PolicyConfig;
use crate::server::NEW_PROCESS;

/// Everything a decentralized worker needs.
#[derive(Debug, Clone)]
pub struct DecenWorkerSpec {
    /// Slot.
    pub worker: usize,
    /// Slots in the run.
    pub workers: usize,
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

/// Dials the server (retrying for `hello_timeout` × 3) and joins; returns the connection and
/// the incarnation the rendezvous issued.
async fn join(
    endpoint: &quinn::Endpoint,
    spec: &DecenWorkerSpec,
    peer_port: u16,
) -> Result<std::result::Result<(Connection, u64), WorkerExit>> {
    let give_up = Instant::now() + spec.hello_timeout * 3;
    let mut backoff = Duration::from_millis(100);
    let conn = loop {
        match connect(endpoint, spec.server).await {
            Ok(c) => break c,
            Err(e) => {
                if let Some(why) = handshake_refusal(&e) {
                    return Err(super::untrusted(spec.server, &why));
                }
                if Instant::now() >= give_up {
                    return Err(e);
                }
                tracing::debug!("worker {}: {e:#}; retrying", spec.worker);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    };
    let hello = WorkerHello {
        worker: spec.worker as u32,
        incarnation: NEW_PROCESS,
        layout_hash: spec.layout_hash,
        params_len: spec.params_len,
        device: spec.device.clone(),
        peer_port,
        wire_dtype: spec.transport.wire_dtype,
    };
    match say_hello(&conn, &hello, spec.hello_timeout).await? {
        HelloAnswer::Welcome { incarnation, .. } => Ok(Ok((conn, incarnation))),
        HelloAnswer::Refused(code, detail) => Ok(Err(WorkerExit::Refused { code, detail })),
        HelloAnswer::Stopped => Ok(Err(WorkerExit::Stopped { gradients: 0 })),
        HelloAnswer::Lost(why) => match closed_by_refusal(&conn) {
            Some(refused) => Err(super::untrusted(spec.server, &refused)),
            None => bail!("joining the rendezvous: {why}"),
        },
    }
}

/// Runs the worker until the run ends (the server's `Stop`) or the server refuses it.
pub async fn run_decen_worker(
    spec: DecenWorkerSpec,
    compute: Addr<ComputeActor>,
) -> Result<WorkerExit> {
    let endpoint = peer_endpoint(spec.peer_listen, &spec.identity, &spec.transport)?;
    let peer_port = endpoint.local_addr()?.port();
    let (inbox_tx, inbox) = mpsc::channel(INBOX_CAPACITY);
    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let directory = PeerDirectory::new(spec.workers);
    let check = PeerCheck {
        me: spec.worker,
        workers: spec.workers,
        layout_hash: spec.layout_hash,
        params_len: spec.params_len,
        hello_timeout: spec.hello_timeout,
    };
    actix::spawn(peer_accept_loop(
        endpoint.clone(),
        check,
        directory.clone(),
        inbox_tx,
        received.clone(),
    ));
    let (conn, incarnation) = match join(&endpoint, &spec, peer_port).await? {
        Ok(joined) => joined,
        Err(exit) => return Ok(exit),
    };
    tracing::info!(
        "worker {} joined the rendezvous at {} (incarnation {incarnation}, peers: port \
         {peer_port})",
        spec.worker,
        spec.server
    );
    // Heartbeats and the server's messages on their own tasks.
    let heartbeat = spawn_heartbeats(conn.clone(), spec.heartbeat);
    let (server_tx, server_rx) = mpsc::unbounded_channel();
    let read_conn = conn.clone();
    let limit = frame_limit(rendezvous_message_len(&spec.algorithm, spec.params_len));
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
    let dialler = Dialler {
        me: spec.worker,
        incarnation,
        layout_hash: spec.layout_hash,
        wire_dtype: spec.transport.wire_dtype,
    };
    let mut links = PeerLinks::new(
        dialler,
        endpoint.clone(),
        directory,
        sent.clone(),
        spec.peer_wait,
    );
    let mut inputs = Inputs {
        inbox,
        server: server_rx,
        received,
        sent,
    };
    let result = train(&spec, &conn, &compute, &mut links, &mut inputs).await;
    drop(heartbeat);
    reader.abort();
    conn.close(0u32.into(), b"done");
    endpoint.close(0u32.into(), b"done");
    result
}

/// Waits for `Start`, builds the node and its driver, and runs the loop.
async fn train(
    spec: &DecenWorkerSpec,
    conn: &Connection,
    compute: &Addr<ComputeActor>,
    links: &mut PeerLinks,
    inputs: &mut Inputs,
) -> Result<WorkerExit> {
    let (k0, peers, params, shared) = loop {
        let (message, _) = match inputs.server.recv().await {
            None => bail!("the server connection ended before the run started"),
            Some(result) => result?,
        };
        match message {
            Message::Start {
                iteration,
                peers,
                shared,
                params,
            } => break (iteration, peers, params, shared),
            Message::Stop { .. } => return Ok(WorkerExit::Stopped { gradients: 0 }),
            Message::Members { peers } => links.directory().set(&peers),
            Message::Heartbeat { .. } => {}
            other => tracing::warn!("unexpected {} before Start; ignored", other.kind()),
        }
    };
    if params.len() != spec.params_len {
        bail!(
            "Start carries {} values, the model has {}",
            params.len(),
            spec.params_len
        );
    }
    links.directory().set(&peers);
    let topo = Arc::new(topology(&spec.algorithm, spec.workers).map_err(|e| anyhow!(e))?);
    let delayed = Arc::new(delayed_nodes(
        &spec.algorithm,
        spec.workers,
        &spec.slow_nodes,
    ));
    let mut node = build_node(
        &spec.algorithm,
        spec.nesterov,
        spec.worker,
        &topo,
        &delayed,
        params,
    )
    .map_err(|e| anyhow!(e))?;
    if !shared.is_empty() {
        node.adopt_shared_state(&shared)
            .map_err(|e| anyhow!("Start from the rendezvous: {e}"))?;
        tracing::info!(
            "worker {} takes a live peer's shared state ({} values)",
            spec.worker,
            shared.len()
        );
    }
    let mut driver = NodeDriver::new(
        spec.worker,
        spec.workers,
        spec.params_len,
        node,
        k0,
        spec.peer_wait.as_secs_f64(),
    );
    let present: Vec<bool> = peers.iter().map(Option::is_some).collect();
    driver.set_present(&present);
    tracing::info!("worker {} starts at iteration {k0}", spec.worker);
    let loop_spec = LoopSpec {
        worker: spec.worker,
        iterations: spec.iterations,
        policy: PolicyConfig::evaluate_every(spec.eval_every, spec.algorithm.lr_schedule()),
        wire_dtype: spec.transport.wire_dtype,
    };
    let done = run_loop(&loop_spec, &mut driver, conn, compute, links, inputs).await?;
    Ok(WorkerExit::Stopped { gradients: done })
}
