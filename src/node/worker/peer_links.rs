//! The sending side of worker-to-worker gossip: one bounded queue and task per out-peer, created
//! on first use, dialling the address the rendezvous announced and checking that the peer's
//! certificate allows the slot it is dialled as. A full queue hands the message back (the node
//! takes it back as for an absent peer); every send is bounded in time, and a message a peer
//! cannot take within the retry period is dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::{Connection, Endpoint};
use tokio::sync::mpsc;

use crate::decen::PeerEntry;
use crate::net::{connect_to, peer_may_take_slot, send, send_as};
use crate::proto::{frame_size, Message, Role, WireDtype};

/// Messages that may wait for one out-peer before a new one is handed back.
pub const PEER_QUEUE_CAPACITY: usize = 8;

/// What the rendezvous last announced: every slot's address and incarnation (`None`: absent),
/// shared by the links and the listener.
#[derive(Debug, Clone, Default)]
pub struct PeerDirectory(Arc<Mutex<Vec<Option<PeerAt>>>>);

/// A present peer's address and incarnation.
type PeerAt = (SocketAddr, u64);

impl PeerDirectory {
    /// An empty directory of `workers` slots.
    pub fn new(workers: usize) -> Self {
        PeerDirectory(Arc::new(Mutex::new(vec![None; workers])))
    }

    /// Takes the rendezvous' announcement; an unparsable address counts as absent.
    pub fn set(&self, peers: &[Option<PeerEntry>]) {
        let parsed = peers
            .iter()
            .map(|p| {
                p.as_ref()
                    .and_then(|p| Some((p.addr.parse().ok()?, p.incarnation)))
            })
            .collect();
        if let Ok(mut d) = self.0.lock() {
            *d = parsed;
        }
    }

    /// Slot `slot`'s announced address.
    pub fn address(&self, slot: usize) -> Option<SocketAddr> {
        self.entry(slot).map(|(a, _)| a)
    }

    /// Slot `slot`'s announced incarnation.
    pub fn incarnation(&self, slot: usize) -> Option<u64> {
        self.entry(slot).map(|(_, i)| i)
    }

    fn entry(&self, slot: usize) -> Option<(SocketAddr, u64)> {
        self.0
            .lock()
            .ok()
            .and_then(|d| d.get(slot).copied().flatten())
    }
}

/// Who this worker is to its peers.
#[derive(Debug, Clone, Copy)]
pub struct Dialler {
    /// Its slot.
    pub me: usize,
    /// Its incarnation, as the rendezvous issued it.
    pub incarnation: u64,
    /// The model's layout hash.
    pub layout_hash: u64,
    /// The precision of the tensors it sends.
    pub wire_dtype: WireDtype,
}

/// The outgoing side: one queue and task per out-peer, created on first use.
pub struct PeerLinks {
    dialler: Dialler,
    endpoint: Endpoint,
    directory: PeerDirectory,
    queues: Vec<Option<mpsc::Sender<Message>>>,
    sent: Arc<AtomicU64>,
    retry_for: Duration,
}

impl PeerLinks {
    /// Links of `dialler` over `endpoint` to the peers of `directory`; frame bytes queued are
    /// added to `sent`; a peer that cannot take a message within `retry_for` loses it.
    pub fn new(
        dialler: Dialler,
        endpoint: Endpoint,
        directory: PeerDirectory,
        sent: Arc<AtomicU64>,
        retry_for: Duration,
    ) -> Self {
        let workers = directory.0.lock().map_or(0, |d| d.len());
        PeerLinks {
            dialler,
            endpoint,
            directory,
            queues: (0..workers).map(|_| None).collect(),
            sent,
            retry_for,
        }
    }

    /// What the rendezvous last announced.
    pub fn directory(&self) -> &PeerDirectory {
        &self.directory
    }

    /// Queues `message` for worker `to`; its frame counts as sent now. A full queue (the peer
    /// takes messages more slowly than this worker makes them) gives the message back.
    pub fn send(&mut self, to: usize, mut message: Message) -> Result<(), Box<Message>> {
        let Some(slot) = self.queues.get_mut(to) else {
            return Err(Box::new(message));
        };
        let queue = slot.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel(PEER_QUEUE_CAPACITY);
            actix::spawn(peer_sender(
                self.dialler,
                to,
                self.endpoint.clone(),
                self.directory.clone(),
                rx,
                self.retry_for,
            ));
            tx
        });
        let bytes = frame_size(&mut message, self.dialler.wire_dtype).unwrap_or(0);
        match queue.try_send(message) {
            Ok(()) => {
                self.sent.fetch_add(bytes as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m)) => {
                Err(Box::new(m))
            }
        }
    }
}

/// Dials worker `to`, checks its certificate allows that slot, and says who this is.
async fn dial(
    dialler: Dialler,
    to: usize,
    endpoint: &Endpoint,
    addr: SocketAddr,
    timeout: Duration,
) -> anyhow::Result<Connection> {
    let conn = tokio::time::timeout(timeout, connect_to(endpoint, addr, Role::Worker))
        .await
        .map_err(|_| anyhow::anyhow!("no handshake with {addr} within {timeout:?}"))??;
    if !peer_may_take_slot(&conn, to) {
        conn.close(2u32.into(), b"wrong slot");
        anyhow::bail!("the peer at {addr} has no certificate for slot {to}");
    }
    let hello = Message::PeerHello {
        worker: dialler.me as u32,
        incarnation: dialler.incarnation,
        to: to as u32,
        layout_hash: dialler.layout_hash,
    };
    tokio::time::timeout(timeout, send(&conn, hello))
        .await
        .map_err(|_| anyhow::anyhow!("PeerHello to {addr} not taken within {timeout:?}"))??;
    Ok(conn)
}

async fn peer_sender(
    dialler: Dialler,
    to: usize,
    endpoint: Endpoint,
    directory: PeerDirectory,
    mut rx: mpsc::Receiver<Message>,
    retry_for: Duration,
) {
    let me = dialler.me;
    let mut conn: Option<Connection> = None;
    while let Some(message) = rx.recv().await {
        let give_up_at = tokio::time::Instant::now() + retry_for;
        let mut backoff = Duration::from_millis(50);
        loop {
            let left = give_up_at.saturating_duration_since(tokio::time::Instant::now());
            if conn.as_ref().is_none_or(|c| c.close_reason().is_some()) {
                conn = match directory.address(to) {
                    Some(addr) => match dial(dialler, to, &endpoint, addr, left).await {
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
                let left = give_up_at.saturating_duration_since(tokio::time::Instant::now());
                match tokio::time::timeout(left, send_as(c, message.clone(), dialler.wire_dtype))
                    .await
                {
                    Ok(Ok(_)) => break,
                    Ok(Err(e)) => {
                        tracing::debug!("worker {me}: sending to peer {to} failed: {e:#}");
                        conn = None;
                    }
                    Err(_) => {
                        // The peer does not read (stalled): its stream stays blocked, so start
                        // afresh with the next message.
                        if let Some(c) = conn.take() {
                            c.close(6u32.into(), b"send timed out");
                        }
                    }
                }
            }
            if tokio::time::Instant::now() >= give_up_at {
                tracing::warn!(
                    "worker {me}: peer {to} took nothing for {retry_for:?}; a {} is lost",
                    message.kind()
                );
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}
