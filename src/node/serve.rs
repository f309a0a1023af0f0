//! What the server and the rendezvous do alike for every worker connection: accept it on a task
//! of its own, read its frames until it is gone — bounded by the heartbeat timeout, a protocol
//! error dropping that worker only — and write what the actor queues for it, in order.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quinn::{Connection, Endpoint};
use tokio::sync::mpsc;

use super::hello::refuse;
use crate::net::{recv, send};
use crate::proto::{Message, RefusalCode};

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// A number no other connection of this process has (tells a reconnection from the old one).
pub fn next_connection() -> u64 {
    NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed)
}

/// Accepts connections until the endpoint closes, serving each on a task of its own; a failed
/// handshake (wrong CA, no certificate, wrong ALPN) is logged and dropped.
pub async fn accept_each<F, Fut>(endpoint: Endpoint, serve: F)
where
    F: Fn(Connection) -> Fut + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    while let Some(incoming) = endpoint.accept().await {
        let serve = serve.clone();
        actix::spawn(async move {
            match incoming.await {
                Ok(conn) => serve(conn).await,
                Err(e) => tracing::warn!("refused a connection: {e}"),
            }
        });
    }
}

/// What the reader does after a message.
#[derive(Debug)]
pub enum Flow {
    /// Read the next one.
    Continue,
    /// Refuse the worker with this code and reason, and stop reading.
    Refuse(RefusalCode, String),
    /// Stop reading (the actor is gone).
    End,
}

/// Reads `worker`'s frames (each at most `limit` bytes) and hands every message but heartbeats
/// to `on_message`, until the worker closes, sends a bad frame, is silent for
/// `heartbeat_timeout`, or `on_message` says otherwise.
pub async fn read_until_gone<F, Fut>(
    conn: &Connection,
    worker: usize,
    limit: usize,
    heartbeat_timeout: Duration,
    mut on_message: F,
) where
    F: FnMut(Message) -> Fut,
    Fut: Future<Output = Flow>,
{
    loop {
        let Ok(received) = tokio::time::timeout(heartbeat_timeout, recv(conn, limit)).await else {
            tracing::warn!(
                "worker {worker}: nothing heard for {heartbeat_timeout:?} \
                 (net.heartbeat_timeout_s); it is gone"
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
        match on_message(message).await {
            Flow::Continue => {}
            Flow::Refuse(code, detail) => return refuse(conn, code, detail).await,
            Flow::End => return,
        }
    }
}

/// Sends what the actor queues for `worker` on its connection, in order, on a task of its own,
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
