//! The accepting side of worker-to-worker gossip: each in-peer's connection must present a worker
//! certificate that allows the slot it claims, address this worker, come from the process the
//! rendezvous announced for that slot (or a newer one), and carry this run's model. Its gossip
//! goes into a bounded inbox: when the worker falls behind, reading stops and QUIC's flow control
//! holds the sender back. One connection per slot (a newer one replaces the older), a bounded
//! number still introducing themselves, and a connection that sends what it should not is closed.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::{Connection, Endpoint};
use tokio::sync::mpsc;

use super::peer_links::PeerDirectory;
use crate::decen::GossipMessage;
use crate::net::{open_windows, peer_may_take_slot, recv, recv_sized, TransportSettings};
use crate::proto::{frame_limit, Message, CONTROL_FRAME_LIMIT};

/// Gossip messages that may wait in a worker's inbox before its listeners stop reading.
pub const INBOX_CAPACITY: usize = 64;

/// Messages of a kind a peer connection must not carry before it is closed.
pub const MAX_IGNORED_PER_CONNECTION: u32 = 16;

/// A gossip message received from a peer.
#[derive(Debug)]
pub struct Inbound {
    /// The sender's lateness.
    pub lateness: u64,
    /// The message.
    pub message: GossipMessage<f32>,
}

/// What a peer connection must match.
#[derive(Debug, Clone, Copy)]
pub struct PeerCheck {
    /// This worker's slot.
    pub me: usize,
    /// Slots in the run.
    pub workers: usize,
    /// The model's layout hash.
    pub layout_hash: u64,
    /// The model's parameter count.
    pub params_len: usize,
    /// How long a new connection has to introduce itself.
    pub hello_timeout: Duration,
}

/// Accepts in-peers until the endpoint closes; their gossip goes to `inbox`, their frame bytes
/// are added to `received`. `directory` holds the incarnations the rendezvous announced.
pub async fn peer_accept_loop(
    endpoint: Endpoint,
    check: PeerCheck,
    directory: PeerDirectory,
    inbox: mpsc::Sender<Inbound>,
    received: Arc<AtomicU64>,
) {
    // At most one live connection per slot (a newer one closes the older), plus at most
    // `workers` connections still introducing themselves.
    let current: Arc<Mutex<Vec<Option<Connection>>>> =
        Arc::new(Mutex::new(vec![None; check.workers]));
    let introducing = Arc::new(AtomicUsize::new(0));
    while let Some(incoming) = endpoint.accept().await {
        if introducing.load(Ordering::Relaxed) >= check.workers.max(1) {
            tracing::debug!(
                "peer {}: too many connections introducing themselves; refused",
                incoming.remote_address()
            );
            incoming.refuse();
            continue;
        }
        let (inbox, received, directory) = (inbox.clone(), received.clone(), directory.clone());
        let (current, introducing) = (current.clone(), introducing.clone());
        introducing.fetch_add(1, Ordering::Relaxed);
        actix::spawn(async move {
            let introduced = match incoming.await {
                Ok(conn) => introduce(&conn, &check, &directory)
                    .await
                    .map(|from| (conn, from)),
                Err(e) => {
                    tracing::debug!("refused a peer connection: {e}");
                    None
                }
            };
            introducing.fetch_sub(1, Ordering::Relaxed);
            let Some((conn, from)) = introduced else {
                return;
            };
            let older = current
                .lock()
                .ok()
                .and_then(|mut c| c.get_mut(from).and_then(|slot| slot.replace(conn.clone())));
            if let Some(older) = older {
                older.close(5u32.into(), b"superseded");
            }
            serve_in_peer(conn, from, &check, inbox, received).await;
        });
    }
}

/// Reads and checks the `PeerHello`; the dialler's slot, or `None` once it is refused.
async fn introduce(
    conn: &Connection,
    check: &PeerCheck,
    directory: &PeerDirectory,
) -> Option<usize> {
    let remote = conn.remote_address();
    let hello = tokio::time::timeout(check.hello_timeout, recv(conn, CONTROL_FRAME_LIMIT)).await;
    let problem = match hello {
        Ok(Ok(Some(Message::PeerHello {
            worker,
            incarnation,
            to,
            layout_hash,
        }))) => {
            let from = worker as usize;
            let announced = directory.incarnation(from);
            if from >= check.workers || from == check.me {
                format!(
                    "claims slot {worker} (this run: {} slots, this is {})",
                    check.workers, check.me
                )
            } else if !peer_may_take_slot(conn, from) {
                format!("claims slot {worker}, which its certificate does not allow")
            } else if to as usize != check.me {
                format!("addresses slot {to}; this is slot {}", check.me)
            } else if layout_hash != check.layout_hash {
                format!(
                    "model layout {layout_hash:016x}, this run's is {:016x}",
                    check.layout_hash
                )
            } else if announced.is_some_and(|a| incarnation < a) {
                format!(
                    "slot {worker} incarnation {incarnation}, replaced by incarnation {}",
                    announced.unwrap_or_default()
                )
            } else {
                open_windows(conn, &TransportSettings::for_params(check.params_len));
                return Some(from);
            }
        }
        other => format!("no valid PeerHello in time ({})", describe(&other)),
    };
    tracing::warn!("peer {remote} refused: {problem}");
    conn.close(2u32.into(), b"refused");
    None
}

fn describe(
    hello: &Result<anyhow::Result<Option<Message>>, tokio::time::error::Elapsed>,
) -> String {
    match hello {
        Err(_) => "timed out".into(),
        Ok(Err(e)) => format!("{e:#}"),
        Ok(Ok(None)) => "closed".into(),
        Ok(Ok(Some(m))) => format!("a {}", m.kind()),
    }
}

/// Hands `from`'s gossip to the inbox (waiting while it is full) until the peer is gone, breaks
/// the protocol, or a newer connection of the slot closes this one.
async fn serve_in_peer(
    conn: Connection,
    from: usize,
    check: &PeerCheck,
    inbox: mpsc::Sender<Inbound>,
    received: Arc<AtomicU64>,
) {
    let limit = frame_limit(check.params_len);
    let mut ignored = 0u32;
    loop {
        match recv_sized(&conn, limit).await {
            Ok(Some((
                Message::Gossip {
                    from: claimed,
                    iteration,
                    lateness,
                    weight,
                    x,
                },
                bytes,
            ))) => {
                if claimed as usize != from {
                    tracing::warn!("peer {from}: gossip claims worker {claimed}; closing");
                    conn.close(3u32.into(), b"wrong sender");
                    return;
                }
                received.fetch_add(bytes as u64, Ordering::Relaxed);
                let message = GossipMessage {
                    from,
                    iteration,
                    x,
                    weight,
                };
                if inbox.send(Inbound { lateness, message }).await.is_err() {
                    return;
                }
            }
            Ok(Some((other, _))) => {
                ignored += 1;
                tracing::debug!("peer {from}: unexpected {}; ignored", other.kind());
                if ignored >= MAX_IGNORED_PER_CONNECTION {
                    tracing::warn!("peer {from}: {ignored} unexpected messages; closing");
                    conn.close(3u32.into(), b"protocol error");
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                tracing::debug!("peer {from}: {e:#}; connection closed");
                conn.close(3u32.into(), b"protocol error");
                return;
            }
        }
    }
}
