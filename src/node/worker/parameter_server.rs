//! The worker's network shell: dial the server (with retry and backoff), introduce itself, and
//! turn every `Params` into a `Gradient` via the compute actor, until the server says `Stop`.
//! A lost connection (a server restart) is redialled with the same incarnation, so the server
//! can tell a reconnection from a restart and never applies a gradient twice.

use std::net::SocketAddr;
use std::time::Duration;

use actix::Addr;
use anyhow::{anyhow, bail, Result};
use quinn::Connection;

use super::spawn_heartbeats;
use super::untrusted;
use crate::net::{
    client_endpoint, closed_by_refusal, connect, handshake_refusal, recv, send_as, NodeIdentity,
    TransportSettings,
};
use crate::node::compute::{ComputeActor, ComputeGradient};
use crate::node::hello::{say_hello, HelloAnswer, WorkerHello};
use crate::proto::{frame_limit, Message, RefusalCode};
use crate::server::NEW_PROCESS;

/// Everything a worker needs to join a server.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// Worker slot.
    pub worker: u32,
    /// The server's address.
    pub server: SocketAddr,
    /// Certificate, key and cluster CA.
    pub identity: NodeIdentity,
    /// The model's layout hash.
    pub layout_hash: u64,
    /// The model's parameter count.
    pub params_len: usize,
    /// The compute device, for the server's records.
    pub device: String,
    /// QUIC settings.
    pub transport: TransportSettings,
    /// How long to wait for `Welcome`.
    pub hello_timeout: Duration,
    /// Longest pause between reconnection attempts.
    pub reconnect_max: Duration,
    /// Interval between heartbeats while joined.
    pub heartbeat: Duration,
}

/// How a worker's run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerExit {
    /// The server ended the run.
    Stopped {
        /// Gradients this worker sent.
        gradients: u64,
    },
    /// The server refused this worker (a configuration mismatch: retrying cannot help).
    Refused {
        /// The reason code.
        code: RefusalCode,
        /// The server's explanation.
        detail: String,
    },
}

enum SessionEnd {
    Stopped,
    Refused(RefusalCode, String),
    Lost(String),
}

/// Runs the worker until the server stops it or refuses it.
pub async fn run_worker(spec: WorkerSpec, compute: Addr<ComputeActor>) -> Result<WorkerExit> {
    let endpoint = client_endpoint(&spec.identity, &spec.transport)?;
    let first_backoff = Duration::from_millis(100);
    let mut backoff = first_backoff;
    let mut seq = 0u64;
    // Issued by the server in the first Welcome; said again on every redial.
    let mut incarnation = NEW_PROCESS;
    loop {
        let conn = match connect(&endpoint, spec.server).await {
            Ok(c) => c,
            Err(e) => {
                if let Some(why) = handshake_refusal(&e) {
                    return Err(untrusted(spec.server, &why));
                }
                tracing::debug!("worker {}: {e:#}; retrying in {backoff:?}", spec.worker);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(spec.reconnect_max);
                continue;
            }
        };
        let end = session(&conn, &spec, &compute, &mut incarnation, &mut seq).await;
        match end {
            Ok(SessionEnd::Stopped) => {
                conn.close(0u32.into(), b"done");
                endpoint.wait_idle().await;
                return Ok(WorkerExit::Stopped { gradients: seq });
            }
            Ok(SessionEnd::Refused(code, detail)) => {
                conn.close(0u32.into(), b"refused");
                return Ok(WorkerExit::Refused { code, detail });
            }
            Ok(SessionEnd::Lost(_)) | Err(_) if closed_by_refusal(&conn).is_some() => {
                let why = closed_by_refusal(&conn);
                return Err(untrusted(spec.server, why.as_deref().unwrap_or("refused")));
            }
            Ok(SessionEnd::Lost(why)) => {
                tracing::warn!("worker {}: {why}; reconnecting", spec.worker);
            }
            Err(e) => {
                tracing::warn!("worker {}: {e:#}; reconnecting", spec.worker);
                conn.close(1u32.into(), b"protocol error");
            }
        }
        backoff = first_backoff;
        tokio::time::sleep(backoff).await;
    }
}

/// One connection's life: `Hello` (with the incarnation issued before, if any), then gradients
/// for parameters until the server stops, refuses or loses this worker.
async fn session(
    conn: &Connection,
    spec: &WorkerSpec,
    compute: &Addr<ComputeActor>,
    incarnation: &mut u64,
    seq: &mut u64,
) -> Result<SessionEnd> {
    let hello = WorkerHello {
        worker: spec.worker,
        incarnation: *incarnation,
        layout_hash: spec.layout_hash,
        params_len: spec.params_len,
        device: spec.device.clone(),
        peer_port: 0,
        wire_dtype: spec.transport.wire_dtype,
    };
    let weight_decay = match say_hello(conn, &hello, spec.hello_timeout).await? {
        HelloAnswer::Welcome {
            weight_decay,
            incarnation: issued,
        } => {
            if issued != *incarnation {
                // A new incarnation starts its sequence numbers afresh on the server.
                *incarnation = issued;
                *seq = 0;
            }
            weight_decay
        }
        HelloAnswer::Refused(code, detail) => return Ok(SessionEnd::Refused(code, detail)),
        HelloAnswer::Stopped => return Ok(SessionEnd::Stopped),
        HelloAnswer::Lost(why) => return Ok(SessionEnd::Lost(why)),
    };
    tracing::info!(
        "worker {} joined the server at {} (incarnation {incarnation})",
        spec.worker,
        spec.server
    );
    // Heartbeats on their own task, so a long compute step never makes the worker look gone.
    let _heartbeats = spawn_heartbeats(conn.clone(), spec.heartbeat);
    let limit = frame_limit(spec.params_len);
    loop {
        let msg = match recv(conn, limit).await {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(SessionEnd::Lost("the server closed the connection".into())),
            Err(e) => return Ok(SessionEnd::Lost(format!("{e:#}"))),
        };
        match msg {
            Message::Params { index, params } => {
                if params.len() != spec.params_len {
                    bail!(
                        "parameters of {} values, the model has {}",
                        params.len(),
                        spec.params_len
                    );
                }
                let out = compute
                    .send(ComputeGradient {
                        index,
                        params,
                        weight_decay,
                    })
                    .await
                    .map_err(|e| anyhow!("the compute thread is gone: {e}"))??;
                *seq += 1;
                let message = match out.indices {
                    None => Message::Gradient {
                        worker: spec.worker,
                        incarnation: *incarnation,
                        seq: *seq,
                        ite: out.ite,
                        loss: out.loss,
                        samples: out.samples,
                        grad: out.grad,
                    },
                    Some(indices) => Message::SparseGradient {
                        worker: spec.worker,
                        incarnation: *incarnation,
                        seq: *seq,
                        ite: out.ite,
                        loss: out.loss,
                        samples: out.samples,
                        indices,
                        values: out.grad,
                    },
                };
                send_as(conn, message, spec.transport.wire_dtype).await?;
                if *seq == 1 {
                    if let Some(age) = crate::compute::process_age() {
                        let rss = crate::compute::resident_memory()
                            .map(|m| {
                                format!(", resident memory {:.1} MiB", m.current as f64 / 1048576.0)
                            })
                            .unwrap_or_default();
                        tracing::info!(
                            "worker {}: first gradient sent {:.2} s after the process started{rss}",
                            spec.worker,
                            age.as_secs_f64()
                        );
                    }
                }
            }
            Message::Stop { reason } => {
                tracing::info!("worker {} stopped by the server: {reason}", spec.worker);
                return Ok(SessionEnd::Stopped);
            }
            Message::Refuse { code, detail } => return Ok(SessionEnd::Refused(code, detail)),
            Message::Heartbeat { .. } => {}
            other => tracing::warn!("worker {}: ignoring {}", spec.worker, other.kind()),
        }
    }
}
