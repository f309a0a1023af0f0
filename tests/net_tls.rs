//! Mutual TLS between cluster nodes: peers from the cluster CA talk; a client from another CA, a
//! client without a certificate, an expired certificate, and a server with a worker's certificate
//! do not; certificates prove roles and the worker slots they allow; `lagom certs` refuses
//! reserved names and never writes through an existing file or link.

use std::net::SocketAddr;
use std::time::Duration;

use lagom::net::{
    client_endpoint, connect, load_identity, peer_has_role, peer_may_take_slot, recv, send,
    server_endpoint, write_cluster, ClusterCa, NodeIdentity, SlotGrant, TransportSettings,
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

const DAY: Duration = Duration::from_secs(86_400);

fn cluster() -> Cluster {
    let ca = ClusterCa::generate("test", DAY).expect("ca");
    Cluster {
        server: ca.issue_server("head").expect("server").0,
        worker: ca
            .issue_worker("cpu-1", &SlotGrant::Slots(vec![1, 3]))
            .expect("worker")
            .0,
    }
}

/// What the server saw of its one client.
#[derive(Debug)]
struct Seen {
    is_worker: bool,
    is_server: bool,
    /// Which of slots 0..4 the client's certificate allows.
    slots: Vec<bool>,
    msg: Message,
}

/// Accepts one connection and answers one message; returns what the server saw.
async fn serve_once(endpoint: quinn::Endpoint) -> anyhow::Result<Seen> {
    let incoming = endpoint
        .accept()
        .await
        .ok_or_else(|| anyhow::anyhow!("endpoint closed"))?;
    let conn = incoming.await?;
    let is_worker = peer_has_role(&conn, Role::Worker);
    let is_server = peer_has_role(&conn, Role::Server);
    let slots = (0..4).map(|s| peer_may_take_slot(&conn, s)).collect();
    let msg = recv(&conn, CONTROL_FRAME_LIMIT)
        .await?
        .ok_or_else(|| anyhow::anyhow!("closed"))?;
    send(&conn, Message::Heartbeat { at_ms: 42 }).await?;
    Ok(Seen {
        is_worker,
        is_server,
        slots,
        msg,
    })
}

/// Connects `client` to a server of `server` and returns what the server saw.
async fn seen_by_server(server: &NodeIdentity, client: &NodeIdentity) -> anyhow::Result<Seen> {
    let endpoint = server_endpoint(local(), server, &settings())?;
    let addr = endpoint.local_addr()?;
    let serving = tokio::spawn(serve_once(endpoint));
    let client = client_endpoint(client, &settings())?;
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        let conn = connect(&client, addr).await?;
        send(&conn, Message::Heartbeat { at_ms: 1 }).await?;
        recv(&conn, CONTROL_FRAME_LIMIT).await
    })
    .await;
    let seen = serving.await?;
    if seen.is_ok() {
        assert!(matches!(outcome, Ok(Ok(Some(_)))), "{outcome:?}");
    }
    seen
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
    let seen = serving.await.expect("join").expect("serve");
    assert!(
        seen.is_worker,
        "a worker certificate proves the worker role"
    );
    assert!(!seen.is_server, "…and not the server role");
    assert_eq!(
        seen.slots,
        vec![false, true, false, true],
        "the slots it names"
    );
    assert_eq!(
        seen.msg,
        Message::Stop {
            reason: "hi".into()
        }
    );
}

#[tokio::test]
async fn a_certificate_for_any_slot_allows_every_slot_and_the_servers_allows_none() {
    let ca = ClusterCa::generate("test", DAY).expect("ca");
    let server = ca.issue_server("head").expect("server").0;
    let spare = ca.issue_worker("spare", &SlotGrant::Any).expect("any").0;
    let seen = seen_by_server(&server, &spare).await.expect("served");
    assert_eq!(seen.slots, vec![true; 4]);
    let other_server = ca.issue_server("head-2").expect("server").0;
    let seen = seen_by_server(&server, &other_server)
        .await
        .expect("served");
    assert!(seen.is_server && !seen.is_worker);
    assert_eq!(
        seen.slots,
        vec![false; 4],
        "a server certificate takes no slot"
    );
}

#[tokio::test]
async fn an_expired_certificate_is_refused_and_the_error_says_so() {
    let short = ClusterCa::generate("test", Duration::from_secs(1)).expect("short-lived ca");
    let short_server = short.issue_server("head").expect("server").0;
    let short_worker = short
        .issue_worker("w", &SlotGrant::Slots(vec![0]))
        .expect("worker")
        .0;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let err = seen_by_server(&short_server, &short_worker)
        .await
        .expect_err("an expired certificate is refused");
    assert!(
        format!("{err:#}").to_lowercase().contains("expired"),
        "{err:#}"
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
        rustls::crypto::aws_lc_rs::default_provider(),
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

fn grant(name: &str, slots: &[usize]) -> (String, SlotGrant) {
    (name.to_string(), SlotGrant::Slots(slots.to_vec()))
}

#[test]
fn lagom_certs_files_load_back_and_are_never_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workers = [grant("gpu-1", &[0]), grant("cpu-1", &[1, 2])];
    let written = write_cluster(dir.path(), "head", &workers, DAY).expect("write");
    assert_eq!(written.len(), 2 + 3 * 2);
    let server = load_identity(dir.path(), "head").expect("server");
    let worker = load_identity(dir.path(), "cpu-1").expect("worker");
    assert_eq!(server.ca, worker.ca);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["cpu-1.key", "head.key", "ca.key"] {
            let mode = std::fs::metadata(dir.path().join(key))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key} is private");
        }
    }
    let err = write_cluster(dir.path(), "head", &[], DAY).expect_err("exists");
    assert!(err.to_string().contains("exists"), "{err}");
    let err = load_identity(dir.path(), "nobody").expect_err("missing");
    assert!(
        err.to_string().contains("nobody.pem") && err.to_string().contains("lagom certs"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn a_key_is_never_written_through_a_planted_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let elsewhere = dir.path().join("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, dir.path().join("w.key")).expect("link");
    let err = write_cluster(dir.path(), "head", &[grant("w", &[0])], DAY).expect_err("link");
    assert!(err.to_string().contains("w.key exists"), "{err}");
    assert!(!elsewhere.exists(), "nothing was written through the link");
}

#[test]
fn reserved_duplicate_and_malformed_node_names_are_refused() {
    for (server, worker, says) in [
        ("lagom-server", "w", "reserved"),
        ("head", "lagom-worker", "reserved"),
        ("head", "ca", "reserved"),
        ("head", "LAGOM-SERVER", "reserved"),
        ("head", "s1.slot.lagom-worker", "reserved"),
        ("head", "head", "twice"),
        ("head", "a/b", "cannot be a node name"),
        ("head", "", "cannot be a node name"),
        ("head", "-x", "cannot be a node name"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = write_cluster(dir.path(), server, &[grant(worker, &[0])], DAY)
            .expect_err(worker)
            .to_string();
        assert!(err.contains(says), "{server}/{worker}: {err}");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            0,
            "nothing written for a refused name"
        );
    }
}

#[tokio::test]
async fn a_revoked_node_is_refused_and_the_others_still_connect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workers = [grant("w0", &[0]), grant("w1", &[1])];
    write_cluster(dir.path(), "head", &workers, DAY).expect("write");
    let crl = lagom::net::revoke(dir.path(), &["w1".to_string()]).expect("revoke");
    assert!(crl.ends_with(lagom::net::CRL_FILE));
    // Revoking again (or another node later) keeps the list.
    lagom::net::revoke(dir.path(), &["w1".to_string()]).expect("revoke again");
    let listed = std::fs::read_to_string(dir.path().join(lagom::net::REVOKED_FILE)).expect("list");
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let server = load_identity(dir.path(), "head").expect("server");
    assert_eq!(server.crls.len(), 1, "the server reads crl.pem");
    let good = load_identity(dir.path(), "w0").expect("w0");
    let revoked = load_identity(dir.path(), "w1").expect("w1");
    let seen = seen_by_server(&server, &good).await.expect("w0 is served");
    assert!(seen.is_worker);
    let err = seen_by_server(&server, &revoked)
        .await
        .expect_err("w1 is refused");
    assert!(
        format!("{err:#}").to_lowercase().contains("revoked"),
        "{err:#}"
    );
    let err = lagom::net::revoke(dir.path(), &["nobody".to_string()]).expect_err("unknown");
    assert!(format!("{err:#}").contains("nobody.pem"), "{err:#}");
}

/// The largest UDP payload this machine lets a lagom endpoint take over loopback: what a receive
/// buffer of `net.core.rmem_max` (doubled by the kernel) holds 64 of, within loopback's MTU.
fn loopback_payload_expected() -> Option<u16> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()?
            .trim()
            .parse::<usize>()
            .ok()
    };
    let rmem_max = read("/proc/sys/net/core/rmem_max")?;
    let lo_mtu = read("/sys/class/net/lo/mtu")?;
    let fits = (2 * rmem_max.min(16 << 20) / 64).clamp(1_200, 65_507);
    Some(fits.min(lo_mtu - 28) as u16)
}

#[tokio::test]
async fn megabyte_tensors_go_in_packets_as_large_as_the_path_and_buffers_allow() {
    let c = cluster();
    let len = 272_186;
    let t = TransportSettings::for_params(len);
    let server = server_endpoint(local(), &c.server, &t).expect("server");
    let addr = server.local_addr().expect("addr");
    let limit = lagom::proto::frame_limit(len);
    let serving = tokio::spawn(async move {
        let conn = server
            .accept()
            .await
            .expect("incoming")
            .await
            .expect("conn");
        let mut received = Vec::new();
        while let Ok(Some(msg)) = recv(&conn, limit).await {
            received.push(msg);
        }
        received
    });
    let client = client_endpoint(&c.worker, &t).expect("client");
    let conn = connect(&client, addr).await.expect("connect");
    let params: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 7.0).collect();
    let expected = loopback_payload_expected();
    // Path-MTU discovery raises the packet size while tensors flow; give it up to 40 tensors.
    let mut sent = 0;
    while sent < 40 && Some(conn.stats().path.current_mtu) != expected {
        let msg = Message::Params {
            index: sent,
            params: params.clone(),
        };
        send(&conn, msg).await.expect("send");
        sent += 1;
    }
    let path = conn.stats().path;
    eprintln!(
        "{sent} tensors: packets of {} bytes, {} lost",
        path.current_mtu, path.lost_packets
    );
    conn.close(0u32.into(), b"done");
    let received = serving.await.expect("join");
    assert_eq!(received.len() as u64, sent, "every tensor arrived");
    for (i, msg) in received.into_iter().enumerate() {
        assert_eq!(
            msg,
            Message::Params {
                index: i as u64,
                params: params.clone()
            }
        );
    }
    match expected {
        Some(expected) => assert_eq!(
            path.current_mtu, expected,
            "packet size after {sent} tensors ({} packets lost)",
            path.lost_packets
        ),
        None => eprintln!("no /proc/sys/net/core/rmem_max or lo MTU here: packet size not checked"),
    }
}
