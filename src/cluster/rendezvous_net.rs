//! The rendezvous's network side: each worker's connection is checked by its `Hello`, told where
//! its peers are, and then carries its averages, reports and progress to the actor and the
//! actor's messages back. A worker that misbehaves or goes silent is dropped; the others go on.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::Addr;
use quinn::{Connection, Endpoint};
use tokio::sync::mpsc;

use super::hello::{accept_hello, refuse, spawn_writer, Joined};
use super::rendezvous::{FromWorker, Join, Left, RendezvousActor};
use super::server_net::PeerRequirements;
use crate::net::{recv, send};
use crate::proto::{frame_limit, Message, RefusalCode};

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Accepts workers until the endpoint closes, one task per worker.
pub async fn rendezvous_accept_loop(
    endpoint: Endpoint,
    actor: Addr<RendezvousActor>,
    req: PeerRequirements,
) {
    while let Some(incoming) = endpoint.accept().await {
        let actor = actor.clone();
        actix::spawn(async move {
            match incoming.await {
                Ok(conn) => serve_worker(conn, actor, req).await,
                Err(e) => tracing::warn!("refused a connection: {e}"),
            }
        });
    }
}

/// Where peers reach a worker: the address it connected from, with the port it announced.
fn peer_address(conn: &Connection, port: u16) -> String {
    SocketAddr::new(conn.remote_address().ip(), port).to_string()
}

async fn serve_worker(conn: Connection, actor: Addr<RendezvousActor>, req: PeerRequirements) {
    let Some(Joined {
        worker,
        incarnation,
        peer_port,
        ..
    }) = accept_hello(&conn, &req).await
    else {
        return;
    };
    if peer_port == 0 {
        let detail = "this is a decentralized run: the worker must take peer connections \
                      (a worker of another lagom version or algorithm?)"
            .to_string();
        return refuse(&conn, RefusalCode::Unexpected, detail).await;
    }
    let connection = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::unbounded_channel();
    let welcome = Message::Welcome {
        worker: worker as u32,
        workers: req.workers as u32,
        updates: 0,
        weight_decay: 0.0,
    };
    // Welcome goes first, then whatever the actor queues (Start, Members, Reduced, Stop).
    if send(&conn, welcome).await.is_err() {
        return;
    }
    let joined = actor
        .send(Join {
            worker,
            incarnation,
            addr: peer_address(&conn, peer_port),
            connection,
            tx,
        })
        .await;
    match joined {
        Ok(Ok(())) => {}
        Ok(Err(detail)) => return refuse(&conn, RefusalCode::Finished, detail).await,
        Err(_) => return refuse(&conn, RefusalCode::Finished, "the run is over".into()).await,
    }
    spawn_writer(conn.clone(), rx, worker);
    read_worker(&conn, &actor, worker, &req).await;
    actor.do_send(Left { worker, connection });
}

async fn read_worker(
    conn: &Connection,
    actor: &Addr<RendezvousActor>,
    worker: usize,
    req: &PeerRequirements,
) {
    // Parameters and buffers together are the largest message.
    let limit = frame_limit(2 * req.params_len);
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
        let message = match received {
            Ok(Some(Message::Heartbeat { .. })) => continue,
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("worker {worker}: {e:#}; dropping the connection");
                conn.close(3u32.into(), b"protocol error");
                return;
            }
        };
        let claimed = match &message {
            Message::Reduce { worker, .. }
            | Message::Report { worker, .. }
            | Message::Progress { worker, .. } => Some(*worker as usize),
            _ => None,
        };
        if claimed.is_some_and(|c| c != worker) {
            let detail = format!(
                "a {} claims worker {} on the connection of worker {worker}",
                message.kind(),
                claimed.unwrap_or(worker)
            );
            return refuse(conn, RefusalCode::WorkerId, detail).await;
        }
        match actor.send(FromWorker { worker, message }).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return refuse(
                    conn,
                    RefusalCode::Unexpected,
                    format!("worker {worker}: {e}"),
                )
                .await
            }
            Err(_) => return,
        }
    }
}
