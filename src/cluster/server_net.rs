//! The server's network side: accept connections, check each peer (certificate role, protocol
//! version, layout, worker slot) before it reaches the actor, and move messages between the
//! connection and the actor. A peer that misbehaves is dropped; the others keep training.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::Addr;
use quinn::{Connection, Endpoint};
use tokio::sync::mpsc;

use super::hello::{accept_hello, refuse, spawn_writer, Joined};
use super::server_actor::{Deliver, Disconnected, Register, ServerActor};
use crate::net::{recv, send};
use crate::proto::{frame_limit, Message, RefusalCode};
use crate::server::GradientIn;

/// What every peer must match.
#[derive(Debug, Clone, Copy)]
pub struct PeerRequirements {
    /// Worker slots K.
    pub workers: usize,
    /// The model's layout hash.
    pub layout_hash: u64,
    /// The model's parameter count.
    pub params_len: usize,
    /// How long a new connection has to say `Hello`.
    pub hello_timeout: Duration,
    /// A joined worker silent this long (no heartbeat, no gradient) is dropped.
    pub heartbeat_timeout: Duration,
}

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Accepts connections until the endpoint closes, one task per peer.
pub async fn accept_loop(endpoint: Endpoint, server: Addr<ServerActor>, req: PeerRequirements) {
    while let Some(incoming) = endpoint.accept().await {
        let server = server.clone();
        actix::spawn(async move {
            match incoming.await {
                Ok(conn) => serve_peer(conn, server, req).await,
                // A wrong CA, no certificate, a wrong ALPN: the handshake fails here.
                Err(e) => tracing::warn!("refused a connection: {e}"),
            }
        });
    }
}

async fn serve_peer(conn: Connection, server: Addr<ServerActor>, req: PeerRequirements) {
    let Some(Joined {
        worker,
        incarnation,
        device,
        ..
    }) = accept_hello(&conn, &req).await
    else {
        return;
    };

    let connection = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::unbounded_channel();
    let registered = server
        .send(Register {
            worker,
            incarnation,
            device,
            connection,
            tx,
        })
        .await;
    let (updates, weight_decay) = match registered {
        Ok(Ok(answer)) => answer,
        Ok(Err((code, detail))) => return refuse(&conn, code, detail).await,
        Err(_) => {
            return refuse(
                &conn,
                RefusalCode::Finished,
                "the server is stopping".into(),
            )
            .await
        }
    };
    let welcome = Message::Welcome {
        worker: worker as u32,
        workers: req.workers as u32,
        updates,
        weight_decay,
    };
    if send(&conn, welcome).await.is_ok() {
        // Outgoing: parameters and stop, in order, on their own task.
        spawn_writer(conn.clone(), rx, worker);
        read_gradients(&conn, &server, worker, incarnation, &req).await;
    }
    server.do_send(Disconnected { worker, connection });
}

async fn read_gradients(
    conn: &Connection,
    server: &Addr<ServerActor>,
    worker: usize,
    incarnation: u64,
    req: &PeerRequirements,
) {
    let limit = frame_limit(req.params_len);
    loop {
        let Ok(received) = tokio::time::timeout(req.heartbeat_timeout, recv(conn, limit)).await
        else {
            tracing::warn!(
                "worker {worker}: nothing heard for {:?} (net.heartbeat_timeout_s); it is gone",
                req.heartbeat_timeout
            );
            conn.close(4u32.into(), b"heartbeat timeout");
            return;
        };
        match received {
            Ok(Some(Message::Gradient {
                worker: claimed,
                incarnation: inc,
                seq,
                ite,
                loss,
                grad,
                ..
            })) => {
                if claimed as usize != worker || inc != incarnation {
                    let detail = format!(
                        "gradient claims worker {claimed} incarnation {inc} on the connection of \
                         worker {worker} incarnation {incarnation}"
                    );
                    return refuse(conn, RefusalCode::WorkerId, detail).await;
                }
                let g = GradientIn {
                    worker,
                    incarnation,
                    seq,
                    ite,
                    grad,
                };
                if server.send(Deliver(g, loss)).await.is_err() {
                    return;
                }
            }
            Ok(Some(Message::Heartbeat { .. })) => {}
            Ok(Some(other)) => {
                tracing::warn!("worker {worker}: unexpected {}; ignored", other.kind());
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("worker {worker}: {e:#}; dropping the connection");
                conn.close(3u32.into(), b"protocol error");
                return;
            }
        }
    }
}
