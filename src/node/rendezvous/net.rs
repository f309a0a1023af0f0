//! The rendezvous's network side: each worker's connection is checked by its `Hello`, told where
//! its peers are, and then carries its averages, reports and progress to the actor and the
//! actor's messages back. A worker that misbehaves or goes silent is dropped; the others go on.

use std::net::SocketAddr;

use actix::Addr;
use quinn::{Connection, Endpoint};
use tokio::sync::mpsc;

use super::actor::RendezvousActor;
use super::handlers::{FromWorker, Join, Left};
use crate::net::send;
use crate::node::hello::{accept_hello, refuse, Joined, PeerRequirements};
use crate::node::serve::{
    accept_each, connection_limit, next_connection, read_until_gone, spawn_writer, Flow, Queued,
};
use crate::proto::{frame_limit, Message, RefusalCode};

/// Accepts workers until the endpoint closes, one task per worker.
pub async fn rendezvous_accept_loop(
    endpoint: Endpoint,
    actor: Addr<RendezvousActor>,
    req: PeerRequirements,
) {
    let limit = connection_limit(req.workers);
    accept_each(endpoint, limit, move |conn| {
        serve_worker(conn, actor.clone(), req)
    })
    .await;
}

/// Where peers reach a worker: the address it connected from, with the port it announced.
fn peer_address(conn: &Connection, port: u16) -> String {
    SocketAddr::new(conn.remote_address().ip(), port).to_string()
}

async fn serve_worker(conn: Connection, actor: Addr<RendezvousActor>, req: PeerRequirements) {
    let Some(Joined {
        worker, peer_port, ..
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
    let connection = next_connection();
    let (tx, rx) = mpsc::unbounded_channel();
    // The actor issues the incarnation and queues Start (or waits for the others); Welcome goes
    // out first, then whatever the actor queued (Start, Members, Reduced, Stop).
    let joined = actor
        .send(Join {
            worker,
            addr: peer_address(&conn, peer_port),
            connection,
            tx,
        })
        .await;
    let incarnation = match joined {
        Ok(Ok(incarnation)) => incarnation,
        Ok(Err(detail)) => return refuse(&conn, RefusalCode::Finished, detail).await,
        Err(_) => return refuse(&conn, RefusalCode::Finished, "the run is over".into()).await,
    };
    let welcome = Message::Welcome {
        worker: worker as u32,
        workers: req.workers as u32,
        incarnation,
        updates: 0,
        weight_decay: 0.0,
    };
    if send(&conn, welcome).await.is_err() {
        actor.do_send(Left { worker, connection });
        return;
    }
    spawn_writer(conn.clone(), rx, worker, req.wire_dtype);
    read_worker(&conn, &actor, worker, &req).await;
    actor.do_send(Left { worker, connection });
}

/// Hands the worker's averages, reports and progress to the actor until the worker is gone.
async fn read_worker(
    conn: &Connection,
    actor: &Addr<RendezvousActor>,
    worker: usize,
    req: &PeerRequirements,
) {
    let limit = frame_limit(req.message_len);
    read_until_gone(conn, worker, limit, req.heartbeat_timeout, |message| {
        let actor = actor.clone();
        async move {
            let claimed = match &message {
                Message::Reduce { worker, .. }
                | Message::Report { worker, .. }
                | Message::Progress { worker, .. }
                | Message::State { worker, .. } => *worker as usize,
                other => {
                    tracing::debug!("worker {worker}: unexpected {}; ignored", other.kind());
                    return Flow::Ignored;
                }
            };
            if claimed != worker {
                let detail = format!(
                    "a {} claims worker {claimed} on the connection of worker {worker}",
                    message.kind()
                );
                return Flow::Refuse(RefusalCode::WorkerId, detail);
            }
            match actor.send(FromWorker { worker, message }).await {
                Ok(Ok(())) => Flow::Continue,
                Ok(Err(e)) => {
                    Flow::Refuse(RefusalCode::Unexpected, format!("worker {worker}: {e}"))
                }
                Err(_) => Flow::End,
            }
        }
    })
    .await;
}

/// A connected worker's outgoing queue.
pub(super) struct Link {
    /// A number unique to its connection.
    pub(super) connection: u64,
    /// The worker's incarnation.
    pub(super) incarnation: u64,
    /// Its outgoing queue.
    pub(super) tx: mpsc::UnboundedSender<Queued>,
}
