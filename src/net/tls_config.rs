//! The TLS 1.3 side of lagom's QUIC endpoints: the crypto provider (aws-lc-rs, AES-128-GCM
//! preferred), and the mutual-TLS client and server configurations built on the cluster CA.
//!
//! Why AES-128-GCM first: the 1-RTT packets of a megabyte tensor are encrypted and decrypted
//! whole, and AES-256 spends 14 rounds per block where AES-128 spends 10. The suite is the one
//! every TLS 1.3 implementation must have (RFC 8446 §9.1), and it matches the 128-bit security
//! level the rest of the handshake already sets (ECDSA P-256 certificates, an X25519 or P-256
//! key exchange), so AES-256 bought no security there (against a quantum computer the X25519
//! exchange falls first, whatever the cipher). Measured on the capacity bench
//! (`server_capacity --quic bf16`, 10 alternating rounds): server thread −5 % CPU per update,
//! +4.6 % updates/s. AES-256-GCM and ChaCha20-Poly1305 stay accepted for a peer that offers
//! only them; the server's preference decides between lagom nodes.

use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{CipherSuite, RootCertStore};

use super::certs::NodeIdentity;
use super::tls::ALPN;

/// The cipher suite lagom's endpoints prefer, and so the one two lagom nodes agree on.
pub const PREFERRED_CIPHER_SUITE: CipherSuite = CipherSuite::TLS13_AES_128_GCM_SHA256;

/// aws-lc-rs's provider with its TLS 1.3 suites ordered [`PREFERRED_CIPHER_SUITE`] first (the
/// others keep their order).
fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != PREFERRED_CIPHER_SUITE);
    Arc::new(provider)
}

fn roots(id: &NodeIdentity) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    roots
        .add(id.ca.clone())
        .context("the cluster CA certificate is not usable as a root")?;
    Ok(Arc::new(roots))
}

/// TLS 1.3 for an accepting endpoint: presents `id`, accepts only clients with a certificate
/// from the cluster CA (and not on its revocation lists), and picks the cipher suite itself.
pub(super) fn server_tls(id: &NodeIdentity) -> Result<rustls::ServerConfig> {
    let p = provider();
    let mut verifier = WebPkiClientVerifier::builder_with_provider(roots(id)?, p.clone());
    if !id.crls.is_empty() {
        verifier = verifier
            .with_crls(id.crls.iter().cloned())
            .only_check_end_entity_revocation()
            .allow_unknown_revocation_status();
    }
    let verifier = verifier
        .build()
        .context("cannot build the client-certificate verifier")?;
    let mut tls = rustls::ServerConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![id.cert.clone()], id.key.clone_key())
        .context("the node certificate and key do not match")?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.ignore_client_order = true;
    Ok(tls)
}

/// TLS 1.3 for a dialing endpoint: presents `id`, trusts only the cluster CA.
pub(super) fn client_tls(id: &NodeIdentity) -> Result<rustls::ClientConfig> {
    client_tls_on(id, provider())
}

/// [`client_tls`] offering the cipher suites of `provider`, in its order.
fn client_tls_on(id: &NodeIdentity, provider: Arc<CryptoProvider>) -> Result<rustls::ClientConfig> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(id)?)
        .with_client_auth_cert(vec![id.cert.clone()], id.key.clone_key())
        .context("the node certificate and key do not match")?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustls::{ClientConnection, Connection, ServerConnection};
    use rustls_pki_types::ServerName;

    use super::*;
    use crate::net::{ClusterCa, SlotGrant, SERVER_NAME};

    /// Hands everything `from` has to send to `to`, which must accept it.
    fn deliver(from: &mut Connection, to: &mut Connection) {
        let mut flight = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut flight).expect("write");
        }
        let mut reader = &flight[..];
        while !reader.is_empty() {
            to.read_tls(&mut reader).expect("read");
            to.process_new_packets()
                .expect("the peer accepts the flight");
        }
    }

    /// Runs a TLS handshake in memory between `client` and `server`; the suite they agreed on.
    fn negotiate(client: rustls::ClientConfig, server: rustls::ServerConfig) -> CipherSuite {
        let name = ServerName::try_from(SERVER_NAME).expect("server name");
        let mut c =
            Connection::from(ClientConnection::new(Arc::new(client), name).expect("client"));
        let mut s = Connection::from(ServerConnection::new(Arc::new(server)).expect("server"));
        for _ in 0..10 {
            if !c.is_handshaking() && !s.is_handshaking() {
                break;
            }
            deliver(&mut c, &mut s);
            deliver(&mut s, &mut c);
        }
        assert!(
            !c.is_handshaking() && !s.is_handshaking(),
            "handshake ended"
        );
        let agreed = s.negotiated_cipher_suite().expect("server suite").suite();
        assert_eq!(c.negotiated_cipher_suite().map(|s| s.suite()), Some(agreed));
        agreed
    }

    fn identities() -> (NodeIdentity, NodeIdentity) {
        let ca = ClusterCa::generate("suites", Duration::from_secs(86_400)).expect("ca");
        let server = ca.issue_server("head").expect("server").0;
        let worker = ca.issue_worker("w", &SlotGrant::Any).expect("worker").0;
        (server, worker)
    }

    /// lagom's client configuration for `worker`, offering only `suites`, in that order.
    fn client_offering(worker: &NodeIdentity, suites: &[CipherSuite]) -> rustls::ClientConfig {
        let mut p = rustls::crypto::aws_lc_rs::default_provider();
        p.cipher_suites = suites
            .iter()
            .map(|&want| {
                *p.cipher_suites
                    .iter()
                    .find(|s| s.suite() == want)
                    .expect("aws-lc-rs has the suite")
            })
            .collect();
        client_tls_on(worker, Arc::new(p)).expect("client")
    }

    #[test]
    fn lagom_nodes_agree_on_aes_128_gcm() {
        let (server, worker) = identities();
        let suite = negotiate(
            client_tls(&worker).expect("client"),
            server_tls(&server).expect("server"),
        );
        assert_eq!(suite, PREFERRED_CIPHER_SUITE);
    }

    #[test]
    fn the_server_picks_aes_128_gcm_over_a_client_preferring_aes_256() {
        let (server, worker) = identities();
        let client = client_offering(
            &worker,
            &[
                CipherSuite::TLS13_AES_256_GCM_SHA384,
                CipherSuite::TLS13_AES_128_GCM_SHA256,
            ],
        );
        let suite = negotiate(client, server_tls(&server).expect("server"));
        assert_eq!(suite, PREFERRED_CIPHER_SUITE);
    }

    #[test]
    fn a_peer_offering_only_aes_256_is_still_served_with_it() {
        let (server, worker) = identities();
        let client = client_offering(&worker, &[CipherSuite::TLS13_AES_256_GCM_SHA384]);
        let suite = negotiate(client, server_tls(&server).expect("server"));
        assert_eq!(suite, CipherSuite::TLS13_AES_256_GCM_SHA384);
    }
}
