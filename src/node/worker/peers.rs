//! Worker-to-worker gossip over QUIC with the cluster's mutual TLS: each worker accepts its
//! in-peers' connections (they must present a worker certificate and the same model) and dials
//! its out-peers lazily, one ordered queue per peer, at the addresses the rendezvous gave it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::{Connection, Endpoint};
use tokio::sync::mpsc;

use crate::decen::GossipMessage;
use crate::net::{connect_to, peer_has_role, recv, recv_sized, send};
use crate::proto::{frame_limit, frame_size, Message, Role, CONTROL_FRAME_LIMIT};

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
/// are added to `received`.
pub async fn peer_accept_loop(
    endpoint: Endpoint,
    check: PeerCheck,
    inbox: mpsc::UnboundedSender<Inbound>,
    received: Arc<AtomicU64>,
) {
    while let Some(incoming) = endpoint.accept().await {
        let inbox = inbox.clone();
        let received = received.clone();
        actix::spawn(async move {
            match incoming.await {
                Ok(conn) => serve_in_peer(conn, check, inbox, received).await,
                Err(e) => tracing::warn!("refused a peer connection: {e}"),
            }
        });
    }
}

async fn serve_in_peer(
    conn: Connection,
    check: PeerCheck,
    inbox: mpsc::UnboundedSender<Inbound>,
    received: Arc<AtomicU64>,
) {
    let remote = conn.remote_address();
    let hello = tokio::time::timeout(check.hello_timeout, recv(&conn, CONTROL_FRAME_LIMIT)).await;
    let from = match hello {
        Ok(Ok(Some(Message::PeerHello {
            worker,
            layout_hash,
        }))) if peer_has_role(&conn, Role::Worker)
            && layout_hash == check.layout_hash
            && (worker as usize) < check.workers =>
        {
            worker as usize
        }
        Ok(Ok(Some(Message::PeerHello {
            worker,
            layout_hash,
        }))) => {
            tracing::warn!(
                "peer {remote} refused: worker {worker} with layout {layout_hash:016x} (this run: \
                 {} slots, layout {:016x}, worker certificates only)",
                check.workers,
                check.layout_hash
            );
            conn.close(2u32.into(), b"refused");
            return;
        }
        other => {
            tracing::warn!("peer {remote} refused: no valid PeerHello in time ({other:?})");
            conn.close(2u32.into(), b"refused");
            return;
        }
    };
    let limit = frame_limit(check.params_len);
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
                    tracing::warn!(
                        "peer {remote}: gossip claims worker {claimed} on worker {from}'s connection; dropping it"
                    );
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
                if inbox.send(Inbound { lateness, message }).is_err() {
                    return;
                }
            }
            Ok(Some((other, _))) => {
                tracing::warn!("peer {from}: unexpected {}; ignored", other.kind());
            }
            Ok(None) => return,
            Err(e) => {
                tracing::debug!("peer {from}: {e:#}; connection closed");
                return;
            }
        }
    }
}

/// The outgoing side: one queue and task per out-peer, created on first use.
pub struct PeerLinks {
    me: usize,
    endpoint: Endpoint,
    layout_hash: u64,
    addresses: Arc<Mutex<Vec<Option<SocketAddr>>>>,
    queues: Vec<Option<mpsc::UnboundedSender<Message>>>,
    sent: Arc<AtomicU64>,
    retry_for: Duration,
}

impl PeerLinks {
    /// Links of worker `me` over `endpoint`; frame bytes queued are added to `sent`; a peer that
    /// cannot be reached is retried for `retry_for` before a message to it is dropped.
    pub fn new(
        me: usize,
        workers: usize,
        endpoint: Endpoint,
        layout_hash: u64,
        sent: Arc<AtomicU64>,
        retry_for: Duration,
    ) -> Self {
        PeerLinks {
            me,
            endpoint,
            layout_hash,
            addresses: Arc::new(Mutex::new(vec![None; workers])),
            queues: (0..workers).map(|_| None).collect(),
            sent,
            retry_for,
        }
    }

    /// Sets the peers' addresses (`None`: not present). Unparsable ones count as absent.
    pub fn set_addresses(&self, peers: &[Option<String>]) {
        let parsed: Vec<Option<SocketAddr>> = peers
            .iter()
            .map(|p| p.as_deref().and_then(|s| s.parse().ok()))
            .collect();
        if let Ok(mut a) = self.addresses.lock() {
            *a = parsed;
        }
    }

    /// Queues `message` for worker `to`; its frame counts as sent now.
    pub fn send(&mut self, to: usize, mut message: Message) {
        let Some(slot) = self.queues.get_mut(to) else {
            return;
        };
        if let Ok(bytes) = frame_size(&mut message) {
            self.sent.fetch_add(bytes as u64, Ordering::Relaxed);
        }
        let queue = slot.get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            actix::spawn(peer_sender(
                self.me,
                to,
                self.endpoint.clone(),
                self.layout_hash,
                self.addresses.clone(),
                rx,
                self.retry_for,
            ));
            tx
        });
        let _ = queue.send(message);
    }
}

/// Dials worker `to` and says who this is.
async fn dial(
    me: usize,
    endpoint: &Endpoint,
    addr: SocketAddr,
    layout_hash: u64,
) -> anyhow::Result<Connection> {
    let conn = connect_to(endpoint, addr, Role::Worker).await?;
    send(
        &conn,
        Message::PeerHello {
            worker: me as u32,
            layout_hash,
        },
    )
    .await?;
    Ok(conn)
}

#[allow(clippy::too_many_arguments)]
async fn peer_sender(
    me: usize,
    to: usize,
    endpoint: Endpoint,
    layout_hash: u64,
    addresses: Arc<Mutex<Vec<Option<SocketAddr>>>>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    retry_for: Duration,
) {
    let mut conn: Option<Connection> = None;
    while let Some(message) = rx.recv().await {
        let give_up_at = tokio::time::Instant::now() + retry_for;
        let mut backoff = Duration::from_millis(50);
        loop {
            if conn.as_ref().is_none_or(|c| c.close_reason().is_some()) {
                let addr = addresses
                    .lock()
                    .ok()
                    .and_then(|a| a.get(to).copied().flatten());
                conn = match addr {
                    Some(addr) => match dial(me, &endpoint, addr, layout_hash).await {
                        Ok(c) => Some(c),
                        Err(e) => {
                            tracing::debug!("worker {me}: cannot reach peer {to}: {e:#}");
                            None
                        }
                    },
                    None => None,
                };
            }
            if let Some(c) = &conn {
                match send(c, message.clone()).await {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::debug!("worker {me}: sending to peer {to} failed: {e:#}");
                        conn = None;
                    }
                }
            }
            if tokio::time::Instant::now() >= give_up_at {
                tracing::warn!(
                    "worker {me}: peer {to} unreachable for {retry_for:?}; a {} is lost",
                    message.kind()
                );
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}
