//! The server's network side: accept connections, check each peer (certificate role, protocol
//! version, layout, worker slot) before it reaches the actor, and move messages between the
//! connection and the actor. A peer that misbehaves is dropped; the others keep training.

use actix::Addr;
use quinn::{Connection, Endpoint};
use tokio::sync::mpsc;

use super::actor::ServerActor;
use super::handlers::{Deliver, Disconnected, Register};
use crate::compress::densify;
use crate::net::send;
use crate::node::hello::{accept_hello, refuse, Joined, PeerRequirements};
use crate::node::serve::{
    accept_each, connection_limit, next_connection, read_until_gone, spawn_writer, Flow,
};
use crate::proto::{frame_limit, Message, RefusalCode};
use crate::server::GradientIn;

/// Accepts connections until the endpoint closes, one task per peer.
pub async fn accept_loop(endpoint: Endpoint, server: Addr<ServerActor>, req: PeerRequirements) {
    let limit = connection_limit(req.workers);
    accept_each(endpoint, limit, move |conn| {
        serve_peer(conn, server.clone(), req)
    })
    .await;
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

    let connection = next_connection();
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
    let welcome = match registered {
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
    let incarnation = welcome.incarnation;
    let welcome = Message::Welcome {
        worker: worker as u32,
        workers: req.workers as u32,
        incarnation,
        updates: welcome.updates,
        weight_decay: welcome.weight_decay,
    };
    if send(&conn, welcome).await.is_ok() {
        // Queued: parameters and stop, in order, on their own task.
        spawn_writer(conn.clone(), rx, worker, req.wire_dtype);
        read_gradients(&conn, &server, worker, incarnation, &req).await;
    }
    server.do_send(Disconnected { worker, connection });
}

/// Hands the worker's gradients to the actor until the worker is gone.
async fn read_gradients(
    conn: &Connection,
    server: &Addr<ServerActor>,
    worker: usize,
    incarnation: u64,
    req: &PeerRequirements,
) {
    let limit = frame_limit(req.message_len);
    read_until_gone(conn, worker, limit, req.heartbeat_timeout, |message| {
        let server = server.clone();
        async move {
            let (claimed, inc, seq, ite, loss, grad) = match message {
                Message::Gradient {
                    worker,
                    incarnation,
                    seq,
                    ite,
                    loss,
                    grad,
                    ..
                } => (worker, incarnation, seq, ite, loss, grad),
                Message::SparseGradient {
                    worker: claimed,
                    incarnation,
                    seq,
                    ite,
                    loss,
                    indices,
                    values,
                    ..
                } => match densify(req.params_len, &indices, &values) {
                    Ok(grad) => (claimed, incarnation, seq, ite, loss, grad),
                    Err(detail) => return Flow::Refuse(RefusalCode::Unexpected, detail),
                },
                other => {
                    tracing::debug!("worker {worker}: unexpected {}; ignored", other.kind());
                    return Flow::Ignored;
                }
            };
            if claimed as usize != worker || inc != incarnation {
                let detail = format!(
                    "gradient claims worker {claimed} incarnation {inc} on the connection of \
                     worker {worker} incarnation {incarnation}"
                );
                return Flow::Refuse(RefusalCode::WorkerId, detail);
            }
            let g = GradientIn {
                worker,
                incarnation,
                seq,
                ite,
                grad,
            };
            match server.send(Deliver(g, loss)).await {
                Ok(()) => Flow::Continue,
                Err(_) => Flow::End,
            }
        }
    })
    .await;
}
