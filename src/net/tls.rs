//! QUIC endpoints with mutual TLS 1.3 against the cluster CA, transport settings sized for
//! MB-scale tensors, and the check of which role a peer's certificate gives it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{
    ClientConfig, Connection, Endpoint, EndpointConfig, IdleTimeout, MtuDiscoveryConfig,
    ServerConfig, TransportConfig, VarInt,
};
use rustls_pki_types::{CertificateDer, ServerName};

use super::certs::{role_name, NodeIdentity};
use super::slot_grant::slot_name;
use super::tls_config::{client_tls, server_tls};
use super::udp_socket::bind_endpoint_socket;
use crate::proto::{Role, WireDtype};

/// ALPN protocol id: peers that speak something else fail the handshake.
pub const ALPN: &[u8] = b"lagom/1";

/// Transport timing, windows, packet size, and the precision this node sends tensors in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransportSettings {
    /// Keep-alive interval; must be below the idle timeout.
    pub keep_alive: Duration,
    /// A connection silent this long is dead.
    pub idle_timeout: Duration,
    /// Bytes one stream may have in flight (≥ the largest frame, so a tensor never waits for a
    /// window update).
    pub stream_window: u64,
    /// A known path MTU (UDP payload bytes) to start at and never fall below (`net.mtu`); `None`
    /// lets path-MTU discovery find it, from QUIC's 1 200-byte minimum.
    pub mtu: Option<u16>,
    /// How this node sends tensors (`net.wire_dtype`); it decodes whatever arrives.
    pub wire_dtype: WireDtype,
}

impl TransportSettings {
    /// Defaults for a model of `params_len` values: keep-alive 2 s, idle timeout 10 s, and a
    /// stream window of at least one frame (8 MiB minimum).
    pub fn for_params(params_len: usize) -> Self {
        let frame = crate::proto::frame_limit(params_len) as u64;
        TransportSettings {
            keep_alive: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            stream_window: frame.max(8 << 20),
            mtu: None,
            wire_dtype: WireDtype::F32,
        }
    }

    /// What an accepting endpoint allows a peer before it has introduced itself: one control
    /// frame's worth of data on two streams. [`open_windows`] raises both once it has.
    fn quinn_until_hello(&self) -> Result<TransportConfig> {
        let mut t = self.quinn()?;
        t.receive_window(VarInt::from_u32(UNTIL_HELLO_WINDOW))
            .max_concurrent_uni_streams(VarInt::from_u32(2));
        Ok(t)
    }

    fn connection_window(&self) -> Result<VarInt> {
        VarInt::from_u64(self.stream_window.saturating_mul(4))
            .map_err(|_| anyhow!("connection window is too large"))
    }

    fn quinn(&self) -> Result<TransportConfig> {
        let mut t = TransportConfig::default();
        let window = VarInt::from_u64(self.stream_window)
            .map_err(|_| anyhow!("stream window {} is too large", self.stream_window))?;
        let connection = self.connection_window()?;
        t.stream_receive_window(window)
            .receive_window(connection)
            .send_window(self.stream_window.saturating_mul(4))
            .max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS))
            // lagom opens no bidirectional streams and sends no datagrams: a peer may not either.
            .max_concurrent_bidi_streams(VarInt::from_u32(0))
            .datagram_receive_buffer_size(None)
            .keep_alive_interval(Some(self.keep_alive))
            .max_idle_timeout(Some(
                IdleTimeout::try_from(self.idle_timeout).context("idle timeout out of range")?,
            ));
        // Let path-MTU discovery grow packets as far as the path allows (jumbo frames, loopback):
        // far fewer packets, and far less per-packet work, for megabyte tensors.
        let mut discovery = MtuDiscoveryConfig::default();
        discovery.upper_bound(MAX_UDP_PAYLOAD);
        t.mtu_discovery_config(Some(discovery));
        if let Some(mtu) = self.mtu {
            // A configured MTU is a floor: black-hole detection cannot take packets below it.
            let mtu = mtu.clamp(MIN_MTU, MAX_UDP_PAYLOAD);
            t.initial_mtu(mtu).min_mtu(mtu);
        }
        Ok(t)
    }
}

/// Bytes a peer may send before its `Hello` (or `PeerHello`) was accepted: two control frames.
const UNTIL_HELLO_WINDOW: u32 = 2 * crate::proto::CONTROL_FRAME_LIMIT as u32;

/// Opens an accepted connection's windows to what `t` allows, once its peer has introduced
/// itself (until then it may send `UNTIL_HELLO_WINDOW` bytes (two control frames) on two streams).
pub fn open_windows(conn: &Connection, t: &TransportSettings) {
    if let Ok(window) = t.connection_window() {
        conn.set_receive_window(window);
    }
    conn.set_max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS));
}

/// Unidirectional streams a peer may have open at once on a connection. Every message is one
/// stream and a sender waits for each to be read, so a node has at most a few open (a tensor, a
/// heartbeat, a control message). quinn keeps the receive state of each stream slot, with its
/// buffers' capacity, for reuse: this bounds that memory per connection (measured in the soak
/// benchmark: with 256 slots a server's resident memory grew by ~1.5 MB/s for minutes).
pub const MAX_UNI_STREAMS: u32 = 16;

/// Largest UDP payload an endpoint may accept (it accepts what its receive buffer has room for,
/// up to this) and path-MTU discovery may probe for: the largest IPv4 UDP datagram, which
/// loopback carries whole (jumbo-frame networks stop discovery at
/// 8 972, ordinary ones at 1 472). Per-packet work is most of quinn's cost for megabyte tensors:
/// 64 KB packets instead of 6 550-byte ones took the capacity bench from ~550 to ~750 updates/s in
/// f32. quinn's segmentation-offload batches of such packets are cut to fit the kernel by
/// `FittedBatches` (`src/net/udp_socket.rs`).
pub const MAX_UDP_PAYLOAD: u16 = super::udp_socket::MAX_DATAGRAM as u16;

/// QUIC's smallest UDP payload (RFC 9000 §14): the floor of a configured `net.mtu`.
pub const MIN_MTU: u16 = 1_200;

/// An endpoint on a socket bound to `bind`, accepting datagrams as large as its receive buffer
/// has room for (at least a configured `mtu`).
fn endpoint(bind: SocketAddr, server: Option<ServerConfig>, mtu: Option<u16>) -> Result<Endpoint> {
    let runtime = quinn::default_runtime().ok_or_else(|| anyhow!("no async runtime found"))?;
    let bound = bind_endpoint_socket(bind, runtime.as_ref(), mtu)?;
    let mut config = EndpointConfig::default();
    config
        .max_udp_payload_size(bound.max_payload)
        .map_err(|e| anyhow!("max UDP payload {}: {e}", bound.max_payload))?;
    Endpoint::new_with_abstract_socket(config, server, bound.socket, runtime)
        .with_context(|| format!("UDP socket {bind}"))
}

/// A server endpoint on `bind` that accepts only clients with a certificate from the cluster CA.
pub fn server_endpoint(
    bind: SocketAddr,
    id: &NodeIdentity,
    t: &TransportSettings,
) -> Result<Endpoint> {
    let tls = server_tls(id)?;
    let mut config = ServerConfig::with_crypto(Arc::new(
        QuicServerConfig::try_from(tls).context("TLS configuration unusable for QUIC")?,
    ));
    config.transport_config(Arc::new(t.quinn_until_hello()?));
    endpoint(bind, Some(config), t.mtu).with_context(|| format!("cannot listen on {bind}"))
}

/// The client side of mutual TLS: presents `id`, trusts only the cluster CA.
fn client_config(id: &NodeIdentity, t: &TransportSettings) -> Result<ClientConfig> {
    let tls = client_tls(id)?;
    let mut config = ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(tls).context("TLS configuration unusable for QUIC")?,
    ));
    config.transport_config(Arc::new(t.quinn()?));
    Ok(config)
}

/// A client endpoint (ephemeral local port) that presents `id` and trusts only the cluster CA.
pub fn client_endpoint(id: &NodeIdentity, t: &TransportSettings) -> Result<Endpoint> {
    let unspecified: SocketAddr = ([0, 0, 0, 0], 0).into();
    let mut endpoint =
        endpoint(unspecified, None, t.mtu).context("cannot open a UDP socket for the client")?;
    endpoint.set_default_client_config(client_config(id, t)?);
    Ok(endpoint)
}

/// An endpoint on `bind` that accepts cluster peers and dials them, both with mutual TLS (a
/// decentralized worker: its peers connect to it, it connects to its peers and the server).
pub fn peer_endpoint(
    bind: SocketAddr,
    id: &NodeIdentity,
    t: &TransportSettings,
) -> Result<Endpoint> {
    let mut endpoint = server_endpoint(bind, id, t)?;
    endpoint.set_default_client_config(client_config(id, t)?);
    Ok(endpoint)
}

/// Dials the server at `addr` (TLS server name [`SERVER_NAME`](super::SERVER_NAME)). A
/// completed handshake does not prove the server accepted this client's certificate: wait for
/// its `Welcome`.
pub async fn connect(endpoint: &Endpoint, addr: SocketAddr) -> Result<Connection> {
    connect_to(endpoint, addr, Role::Server).await
}

/// Dials the node at `addr`, which must present a certificate for `role`.
pub async fn connect_to(endpoint: &Endpoint, addr: SocketAddr, role: Role) -> Result<Connection> {
    endpoint
        .connect(addr, role_name(role))
        .with_context(|| format!("cannot dial {addr}"))?
        .await
        .with_context(|| format!("TLS/QUIC handshake with {addr} failed"))
}

/// True when the peer's certificate (already verified against the cluster CA) names `role`.
pub fn peer_has_role(conn: &Connection, role: Role) -> bool {
    peer_certificate_names(conn, role_name(role))
}

/// True when the peer's certificate (already verified against the cluster CA) is a worker
/// certificate that may take worker slot `slot` (see [`SlotGrant`](super::SlotGrant)).
pub fn peer_may_take_slot(conn: &Connection, slot: usize) -> bool {
    peer_has_role(conn, Role::Worker) && peer_certificate_names(conn, &slot_name(slot))
}

fn peer_certificate_names(conn: &Connection, dns_name: &str) -> bool {
    let Some(identity) = conn.peer_identity() else {
        return false;
    };
    let Ok(chain) = identity.downcast::<Vec<CertificateDer<'static>>>() else {
        return false;
    };
    let Some(leaf) = chain.first() else {
        return false;
    };
    let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
        return false;
    };
    let Ok(name) = ServerName::try_from(dns_name) else {
        return false;
    };
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}
