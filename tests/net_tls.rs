//! Mutual TLS between cluster nodes: peers from the cluster CA talk; a client from another CA, a
//! client without a certificate, and a server with a worker's certificate do not; certificates
//! prove roles.

use std::net::SocketAddr;
use std::time::Duration;

use lagom::net::{
    client_endpoint, connect, load_identity, peer_has_role, recv, send, server_endpoint,
    write_cluster, ClusterCa, NodeIdentity, TransportSettings,
};
use lagom::proto::{Message, Role, CONTROL_FRAME_LIMIT};

fn settings() -> TransportSettings {
    TransportSettings::for_params(1000)
}

fn local() -> SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

struct Cluster {
    server: NodeIdentity,
    worker: NodeIdentity,
}

fn cluster() -> Cluster {
    let ca = ClusterCa::generate("test").expect("ca");
    Cluster {
        server: ca.issue("head", Role::Server).expect("server").0,
        worker: ca.issue("cpu-1", Role::Worker).expect("worker").0,
    }
}

/// Accepts one connection and answers one message; returns what the server saw.
async fn serve_once(endpoint: quinn::Endpoint) -> anyhow::Result<(bool, bool, Message)> {
    let incoming = endpoint
        .accept()
        .await
        .ok_or_else(|| anyhow::anyhow!("endpoint closed"))?;
    let conn = incoming.await?;
    let is_worker = peer_has_role(&conn, Role::Worker);
    let is_server = peer_has_role(&conn, Role::Server);
    let msg = recv(&conn, CONTROL_FRAME_LIMIT)
        .await?
        .ok_or_else(|| anyhow::anyhow!("closed"))?;
    send(&conn, Message::Heartbeat { at_ms: 42 }).await?;
    Ok((is_worker, is_server, msg))
}

#[tokio::test]
async fn peers_of_one_cluster_exchange_messages_and_certificates_prove_roles() {
    let c = cluster();
    let server = server_endpoint(local(), &c.server, &settings()).expect("server");
    let addr = server.local_addr().expect("addr");
    let serving = tokio::spawn(serve_once(server));
    let client = client_endpoint(&c.worker, &settings()).expect("client");
    let conn = connect(&client, addr).await.expect("connect");
    assert!(peer_has_role(&conn, Role::Server));
    assert!(!peer_has_role(&conn, Role::Worker));
    send(
        &conn,
        Message::Stop {
            reason: "hi".into(),
        },
    )
    .await
    .expect("send");
    let reply = recv(&conn, CONTROL_FRAME_LIMIT).await.expect("recv");
    assert_eq!(reply, Some(Message::Heartbeat { at_ms: 42 }));
    let (is_worker, is_server, msg) = serving.await.expect("join").expect("serve");
    assert!(is_worker, "a worker certificate proves the worker role");
    assert!(!is_server, "…and not the server role");
    assert_eq!(
        msg,
        Message::Stop {
            reason: "hi".into()
        }
    );
}

#[tokio::test]
async fn a_client_from_another_ca_is_refused() {
    let c = cluster();
    let stranger = cluster().worker;
    let server = server_endpoint(local(), &c.server, &settings()).expect("server");
    let addr = server.local_addr().expect("addr");
    let serving = tokio::spawn(serve_once(server));
    // The stranger trusts our CA (so it would accept our server) but its own cert is foreign.
    let stranger = NodeIdentity {
        ca: c.server.ca.clone(),
        ..stranger
    };
    let client = client_endpoint(&stranger, &settings()).expect("client");
    // TLS 1.3 checks the client certificate after the client's handshake completes, so the
    // client may think it connected; no message gets through.
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        let conn = connect(&client, addr).await?;
        send(&conn, Message::Heartbeat { at_ms: 1 }).await?;
        recv(&conn, CONTROL_FRAME_LIMIT).await
    })
    .await
    .expect("no hang");
    assert!(
        !matches!(outcome, Ok(Some(_))),
        "a foreign client got an answer: {outcome:?}"
    );
    let served = serving.await.expect("join");
    let err = served
        .expect_err("the server refuses the handshake")
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let c = cluster();
    let server = server_endpoint(local(), &c.server, &settings()).expect("server");
    let addr = server.local_addr().expect("addr");
    let serving = tokio::spawn(serve_once(server));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(c.server.ca.clone()).expect("root");
    let mut tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("tls13")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![lagom::net::ALPN.to_vec()];
    let config = quinn::ClientConfig::new(std::sync::Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic"),
    ));
    let mut client = quinn::Endpoint::client(local()).expect("client");
    client.set_default_client_config(config);
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        let conn = client.connect(addr, lagom::net::SERVER_NAME)?.await?;
        send(&conn, Message::Heartbeat { at_ms: 1 }).await?;
        recv(&conn, CONTROL_FRAME_LIMIT).await
    })
    .await
    .expect("no hang");
    assert!(!matches!(outcome, Ok(Some(_))), "{outcome:?}");
    assert!(serving.await.expect("join").is_err());
}

#[tokio::test]
async fn a_server_presenting_a_worker_certificate_is_not_trusted() {
    let c = cluster();
    // A worker's certificate does not carry the server name, so clients refuse it.
    let server = server_endpoint(local(), &c.worker, &settings()).expect("server");
    let addr = server.local_addr().expect("addr");
    let _serving = tokio::spawn(serve_once(server));
    let client = client_endpoint(&c.server, &settings()).expect("client");
    let err = tokio::time::timeout(Duration::from_secs(5), connect(&client, addr))
        .await
        .expect("no hang")
        .expect_err("refused");
    assert!(format!("{err:#}").contains("certificate"), "{err:#}");
}

#[test]
fn lagom_certs_files_load_back_and_are_never_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written =
        write_cluster(dir.path(), "head", &["gpu-1".into(), "cpu-1".into()]).expect("write");
    assert_eq!(written.len(), 2 + 3 * 2);
    let server = load_identity(dir.path(), "head").expect("server");
    let worker = load_identity(dir.path(), "cpu-1").expect("worker");
    assert_eq!(server.ca, worker.ca);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("cpu-1.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "keys are private");
    }
    let err = write_cluster(dir.path(), "head", &[]).expect_err("exists");
    assert!(err.to_string().contains("exists"), "{err}");
    let err = load_identity(dir.path(), "nobody").expect_err("missing");
    assert!(
        err.to_string().contains("nobody.pem") && err.to_string().contains("lagom certs"),
        "{err}"
    );
}
