//! A worker's connection to the server, whatever the algorithm: the first exchange — its
//! `Hello` is checked (certificate role, protocol version, model layout, worker slot) before the
//! worker reaches an actor, a mismatch refused with a stable code and a clear reason — and the
//! ordered writer of what the server sends it.

use quinn::Connection;
use tokio::sync::mpsc;

use super::server_net::PeerRequirements;
use crate::net::{peer_has_role, recv, send};
use crate::proto::{Message, ProtoError, RefusalCode, Role, CONTROL_FRAME_LIMIT};

/// A worker whose `Hello` passed every check.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Its slot.
    pub worker: usize,
    /// Its incarnation.
    pub incarnation: u64,
    /// Its compute device.
    pub device: String,
    /// The port it takes peers' connections on (0: none).
    pub peer_port: u16,
}

/// Sends what the server queues for `worker` on its connection, in order, on a task of its own,
/// until the queue closes, a send fails, or a `Stop` has gone out.
pub fn spawn_writer(conn: Connection, mut rx: mpsc::UnboundedReceiver<Message>, worker: usize) {
    actix::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let stop = matches!(msg, Message::Stop { .. });
            if let Err(e) = send(&conn, msg).await {
                tracing::debug!("worker {worker}: {e:#}");
                break;
            }
            if stop {
                break;
            }
        }
    });
}

/// Sends a refusal and closes the connection.
pub async fn refuse(conn: &Connection, code: RefusalCode, detail: String) {
    tracing::warn!("refusing {} ({code:?}): {detail}", conn.remote_address());
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
            } else if worker as usize >= req.workers {
                let detail = format!("worker {worker} is outside 0..{}", req.workers);
                (RefusalCode::WorkerId, detail)
            } else {
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
