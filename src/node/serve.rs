//! What the server and the rendezvous do alike for every worker connection: accept it on a task
//! of its own, read its frames until it is gone — bounded by the heartbeat timeout, a protocol
//! error dropping that worker only — and write what the actor queues for it, in order.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quinn::{Connection, Endpoint};
use tokio::sync::mpsc;

use super::hello::refuse;
use super::warn_limit::WarnLimit;
use crate::net::{recv, send_as, send_encoded};
use crate::proto::{Message, RefusalCode, WireDtype, WireTensor};

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// A number no other connection of this process has (tells a reconnection from the old one).
pub fn next_connection() -> u64 {
    NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed)
}

/// Connections an endpoint serving `workers` slots keeps at once: one per slot, as many again
/// redialling or replacing a superseded one, and a few handshakes in flight. Beyond that a new
/// connection is refused before its handshake (a flood costs the others nothing).
pub fn connection_limit(workers: usize) -> usize {
    2 * workers + 16
}

/// Accepts connections until the endpoint closes, serving each on a task of its own, at most
/// `limit` at once (see [`connection_limit`]); a failed handshake (wrong CA, no certificate,
/// wrong ALPN) is dropped and logged, rate-limited.
pub async fn accept_each<F, Fut>(endpoint: Endpoint, limit: usize, serve: F)
where
    F: Fn(Connection) -> Fut + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    // A peer that keeps dialling with a bad certificate cannot flood the log.
    let failures = Rc::new(RefCell::new(WarnLimit::default()));
    let live = Rc::new(std::cell::Cell::new(0usize));
    while let Some(incoming) = endpoint.accept().await {
        if live.get() >= limit {
            failures.borrow_mut().warn(&format!(
                "refused a connection: {limit} connections already (before its handshake)"
            ));
            incoming.refuse();
            continue;
        }
        let serve = serve.clone();
        let failures = failures.clone();
        live.set(live.get() + 1);
        let live = live.clone();
        actix::spawn(async move {
            match incoming.await {
                Ok(conn) => serve(conn).await,
                Err(e) => failures
                    .borrow_mut()
                    .warn(&format!("refused a connection: {e}")),
            }
            live.set(live.get().saturating_sub(1));
        });
    }
}

/// Messages a worker connection may carry that its reader ignores (of a kind it must not send)
/// before the worker is refused.
pub const MAX_IGNORED_PER_CONNECTION: u32 = 16;

/// What the reader does after a message.
#[derive(Debug)]
pub enum Flow {
    /// Read the next one.
    Continue,
    /// The message was of a kind this connection must not carry: ignored, and counted (see
    /// [`MAX_IGNORED_PER_CONNECTION`]).
    Ignored,
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
    let mut ignored = 0u32;
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
            Flow::Ignored => {
                ignored += 1;
                if ignored >= MAX_IGNORED_PER_CONNECTION {
                    let detail = format!("{ignored} messages of kinds a worker must not send");
                    return refuse(conn, RefusalCode::Unexpected, detail).await;
                }
            }
            Flow::Refuse(code, detail) => return refuse(conn, code, detail).await,
            Flow::End => return,
        }
    }
}

/// What an actor queues for a connection's writer task.
#[derive(Debug)]
pub enum Queued {
    /// A message; its tensor, if any, converted to the connection's wire dtype on the way.
    Message(Message),
    /// A message with its tensor left empty and the tensor already in wire form (the server's
    /// parameters, encoded straight from the algorithm's memory), sent as it is.
    Encoded(Message, WireTensor),
}

impl From<Message> for Queued {
    fn from(msg: Message) -> Self {
        Queued::Message(msg)
    }
}

/// Sends what the actor queues for `worker` on its connection (tensors in `dtype`), in order, on
/// a task of its own, until a send fails or a `Stop` has gone out; when the actor drops the queue
/// (a newer connection of the slot replaced this one) the connection is closed.
pub fn spawn_writer(
    conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    worker: usize,
    dtype: WireDtype,
) {
    actix::spawn(async move {
        loop {
            let Some(next) = rx.recv().await else {
                conn.close(5u32.into(), b"superseded");
                return;
            };
            let (stop, sent) = match next {
                Queued::Message(msg) => (
                    matches!(msg, Message::Stop { .. }),
                    send_as(&conn, msg, dtype).await,
                ),
                Queued::Encoded(msg, tensor) => (false, send_encoded(&conn, msg, tensor).await),
            };
            if let Err(e) = sent {
                tracing::debug!("worker {worker}: {e:#}");
                return;
            }
            if stop {
                return;
            }
        }
    });
}
