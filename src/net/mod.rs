//! The network: cluster certificates, QUIC endpoints with mutual TLS, and message streams.

mod certs;
mod config;
mod link;
mod refusal;
mod tls;

pub use certs::{
    load_identity, node_files, role_name, write_cluster, ClusterCa, NodeIdentity, SERVER_NAME,
    WORKER_NAME,
};
pub use config::NetConfig;
pub use link::{recv, recv_sized, send};
pub use refusal::{closed_by_refusal, handshake_refusal};
pub use tls::{
    client_endpoint, connect, connect_to, peer_endpoint, peer_has_role, server_endpoint,
    TransportSettings, ALPN,
};
