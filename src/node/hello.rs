//! The first exchange of a worker with the server or the rendezvous, both sides of it. The
//! server side checks the worker's `Hello` (certificate role, protocol version, model layout,
//! worker slot, tensor precision, and that the certificate allows the slot) before the worker reaches an actor, and refuses a mismatch with a stable code and
//! a clear reason; the worker side (one for both kinds of worker) says `Hello` and reads the
//! answer within a bounded wait.

use std::time::Duration;

use quinn::Connection;

use crate::net::{open_windows, peer_has_role, peer_may_take_slot, recv, send, TransportSettings};
use crate::proto::{Message, ProtoError, RefusalCode, Role, WireDtype, CONTROL_FRAME_LIMIT};

use super::warn_limit::WarnLimit;

/// What every worker must match to join.
#[derive(Debug, Clone, Copy)]
pub struct PeerRequirements {
    /// Worker slots K.
    pub workers: usize,
    /// The model's layout hash.
    pub layout_hash: u64,
    /// The model's parameter count.
    pub params_len: usize,
    /// The most values one tensor in a worker's message may hold (the frame limit follows).
    pub message_len: usize,
    /// How long a new connection has to say `Hello`.
    pub hello_timeout: Duration,
    /// A joined worker silent this long (no heartbeat, no message) is dropped.
    pub heartbeat_timeout: Duration,
    /// The precision every node sends tensors in (`net.wire_dtype`).
    pub wire_dtype: WireDtype,
}

/// A worker whose `Hello` passed every check.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Its slot.
    pub worker: usize,
    /// The incarnation it claims (0: a new process).
    pub incarnation: u64,
    /// Its compute device.
    pub device: String,
    /// The port it takes peers' connections on (0: none).
    pub peer_port: u16,
}

thread_local! {
    /// Refusals are logged at most every few seconds (a flood of bad peers cannot flood the log).
    static REFUSALS: std::cell::RefCell<WarnLimit> = std::cell::RefCell::new(WarnLimit::default());
}

/// Sends a refusal and closes the connection.
pub async fn refuse(conn: &Connection, code: RefusalCode, detail: String) {
    let message = format!("refusing {} ({code:?}): {detail}", conn.remote_address());
    REFUSALS.with(|r| r.borrow_mut().warn(&message));
    let _ = send(conn, Message::Refuse { code, detail }).await;
    conn.close(2u32.into(), b"refused");
}

/// Reads and checks the `Hello` of a new connection; `None` once the peer has been refused (or
/// left before saying anything).
pub async fn accept_hello(conn: &Connection, req: &PeerRequirements) -> Option<Joined> {
    let hello = tokio::time::timeout(req.hello_timeout, recv(conn, CONTROL_FRAME_LIMIT)).await;
    let (code, detail) = match hello {
        Err(_) => (RefusalCode::Unexpected, "no Hello in time".to_string()),
        Ok(Err(e)) => {
            let code = match e.downcast_ref::<ProtoError>() {
                Some(ProtoError::Version { .. }) => RefusalCode::ProtocolVersion,
                _ => RefusalCode::Unexpected,
            };
            (code, format!("{e:#}"))
        }
        Ok(Ok(None)) => return None,
        Ok(Ok(Some(Message::Hello {
            role,
            worker,
            incarnation,
            layout_hash,
            params_len,
            device,
            peer_port,
            wire_dtype,
        }))) => {
            if role != Role::Worker || !peer_has_role(conn, Role::Worker) {
                let detail = format!(
                    "claims the {} role; only workers with a worker certificate may join",
                    role.as_str()
                );
                (RefusalCode::Role, detail)
            } else if layout_hash != req.layout_hash || params_len != req.params_len as u64 {
                let detail = format!(
                    "model layout {layout_hash:016x} with {params_len} parameters; the server's is \
                     {:016x} with {} (same [model] and [data] on every node?)",
                    req.layout_hash, req.params_len
                );
                (RefusalCode::LayoutHash, detail)
            } else if wire_dtype != req.wire_dtype {
                let detail = format!(
                    "it sends tensors in {wire_dtype}, this server's net.wire_dtype is {} (set the \
                     same net.wire_dtype on every node)",
                    req.wire_dtype
                );
                (RefusalCode::WireDtype, detail)
            } else if worker as usize >= req.workers {
                let detail = format!("worker {worker} is outside 0..{}", req.workers);
                (RefusalCode::WorkerId, detail)
            } else if !peer_may_take_slot(conn, worker as usize) {
                let detail = format!(
                    "its certificate does not allow slot {worker} (issue the host's certificate \
                     with the slots it runs: `lagom certs --workers HOST:{worker}`)"
                );
                (RefusalCode::WorkerId, detail)
            } else {
                open_windows(conn, &TransportSettings::for_params(req.params_len));
                return Some(Joined {
                    worker: worker as usize,
                    incarnation,
                    device,
                    peer_port,
                });
            }
        }
        Ok(Ok(Some(other))) => (
            RefusalCode::Unexpected,
            format!("expected Hello, got {}", other.kind()),
        ),
    };
    refuse(conn, code, detail).await;
    None
}

/// Who a worker says it is in its `Hello`.
#[derive(Debug, Clone)]
pub struct WorkerHello {
    /// Its slot.
    pub worker: u32,
    /// The incarnation issued to this process before (0: none yet).
    pub incarnation: u64,
    /// The model's layout hash.
    pub layout_hash: u64,
    /// The model's parameter count.
    pub params_len: usize,
    /// Its compute device.
    pub device: String,
    /// The port it takes peers' connections on (0: a parameter-server worker takes none).
    pub peer_port: u16,
    /// The precision it sends tensors in.
    pub wire_dtype: WireDtype,
}

/// What the server answered a worker's `Hello`.
#[derive(Debug, Clone, PartialEq)]
pub enum HelloAnswer {
    /// Joined; the weight decay workers add to their gradients and the incarnation issued.
    Welcome {
        /// `Welcome::weight_decay`.
        weight_decay: f64,
        /// `Welcome::incarnation`: what this process says in its messages and redials.
        incarnation: u64,
    },
    /// Refused, and why: never worth retrying.
    Refused(RefusalCode, String),
    /// The run is over.
    Stopped,
    /// The connection broke before an answer (worth redialling).
    Lost(String),
}

/// Says `hello` on `conn` and waits at most `timeout` for the answer.
pub async fn say_hello(
    conn: &Connection,
    hello: &WorkerHello,
    timeout: Duration,
) -> anyhow::Result<HelloAnswer> {
    let message = Message::Hello {
        role: Role::Worker,
        worker: hello.worker,
        incarnation: hello.incarnation,
        layout_hash: hello.layout_hash,
        params_len: hello.params_len as u64,
        device: hello.device.clone(),
        peer_port: hello.peer_port,
        wire_dtype: hello.wire_dtype,
    };
    send(conn, message).await?;
    let reply = tokio::time::timeout(timeout, recv(conn, CONTROL_FRAME_LIMIT))
        .await
        .map_err(|_| anyhow::anyhow!("no answer to Hello within {timeout:?}"))?;
    Ok(match reply {
        Ok(Some(Message::Welcome {
            weight_decay,
            incarnation,
            ..
        })) => HelloAnswer::Welcome {
            weight_decay,
            incarnation,
        },
        Ok(Some(Message::Refuse { code, detail })) => HelloAnswer::Refused(code, detail),
        Ok(Some(Message::Stop { .. })) => HelloAnswer::Stopped,
        Ok(Some(other)) => anyhow::bail!("expected Welcome, got {}", other.kind()),
        Ok(None) => HelloAnswer::Lost("the server closed the connection".into()),
        // A certificate the server rejects shows here: the handshake "succeeded" on our side.
        Err(e) => HelloAnswer::Lost(format!("{e:#}")),
    })
}
