//! The worker roles' shells: the parameter-server worker (parameters in, gradients out), the
//! decentralized worker (its node driver executed over QUIC: gossip with peers, averages through
//! the rendezvous) and the links between peers.

mod decentralized;
mod decentralized_loop;
mod decentralized_report;
mod parameter_server;
mod peer_links;
mod peer_listener;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quinn::Connection;

use crate::net::send;
use crate::proto::Message;

pub use decentralized::{run_decen_worker, DecenWorkerSpec};
pub use parameter_server::{run_worker, WorkerExit, WorkerSpec};

/// Stops the heartbeat task when dropped, however the session ends.
pub struct HeartbeatTask(tokio::task::JoinHandle<()>);

impl Drop for HeartbeatTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends a heartbeat on `conn` every `every` on a task of its own (so a long compute step never
/// makes the worker look gone), until the returned guard is dropped or a send fails.
pub fn spawn_heartbeats(conn: Connection, every: Duration) -> HeartbeatTask {
    HeartbeatTask(actix::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let at_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            if send(&conn, Message::Heartbeat { at_ms }).await.is_err() {
                return;
            }
        }
    }))
}

/// The configuration error of a worker whose TLS handshake with the server at `server` was
/// refused (`why`): retrying cannot help, so it exits (code 2) and the supervisor does not
/// restart it.
pub(super) fn untrusted(server: std::net::SocketAddr, why: &str) -> anyhow::Error {
    crate::config::ConfigError::Invalid(vec![format!(
        "net.certs, net.node: the TLS handshake with the server at {server} failed: {why}. A \
         node needs a certificate from the cluster's CA (lagom certs) and the CA's certificate \
         in net.certs"
    )])
    .into()
}
