//! The network: cluster certificates, QUIC endpoints with mutual TLS, and message streams.

mod certs;
mod config;
mod link;
mod refusal;
mod revocation;
mod slot_grant;
mod tls;
mod tls_config;
mod udp_socket;

pub use certs::{
    check_node_name, load_identity, node_files, role_name, write_cluster, ClusterCa, NodeIdentity,
    DEFAULT_VALIDITY_DAYS, RESERVED_NAMES, SERVER_NAME, WORKER_NAME,
};
pub use config::{Compression, NetConfig};
pub use link::{recv, recv_sized, send, send_as, send_encoded};
pub use refusal::{closed_by_refusal, handshake_refusal};
pub use revocation::{load_crls, revoke, CRL_FILE, REVOKED_FILE};
pub use slot_grant::{parse_worker_host, slot_name, SlotGrant, MAX_GRANTED_SLOTS};
pub use tls::{
    client_endpoint, connect, connect_to, open_windows, peer_endpoint, peer_has_role,
    peer_may_take_slot, server_endpoint, TransportSettings, ALPN, MAX_UDP_PAYLOAD, MAX_UNI_STREAMS,
    MIN_MTU,
};
pub use tls_config::PREFERRED_CIPHER_SUITE;
