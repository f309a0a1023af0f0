//! A hostile peer with a valid worker certificate against a decentralized run (the rendezvous
//! and two honest SGP workers on loopback): it floods the rendezvous with connections that never
//! say `Hello`, joins as the third slot and sends an average's part for a far-future iteration,
//! dials an honest worker claiming a slot its certificate does not allow, and gossips from the
//! future and replays. Every case is refused (and the rendezvous's are counted as `rejected`
//! events), the rendezvous's resident memory stays within a bound, and the honest workers
//! finish the run.

use std::net::SocketAddr;
use std::time::Duration;

use lagom::decen::ReduceKind;
use lagom::net::{
    client_endpoint, connect, connect_to, load_identity, peer_endpoint, recv, send, NodeIdentity,
    TransportSettings,
};
use lagom::proto::{frame_limit, Message, Role};

mod cli_support;
use cli_support::{events, stderr, synthetic_mlp_layout, wait_for, TestCluster};

/// The rendezvous's resident memory, kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Joins the rendezvous as `slot` with `identity`; returns the connection and the peers'
/// addresses from `Start`.
async fn join(
    identity: &NodeIdentity,
    addr: SocketAddr,
    slot: u32,
    peer_port: u16,
) -> (quinn::Endpoint, quinn::Connection, Vec<Option<SocketAddr>>) {
    let (hash, len) = synthetic_mlp_layout();
    let endpoint = client_endpoint(identity, &TransportSettings::for_params(len)).expect("ep");
    let conn = connect(&endpoint, addr).await.expect("connect");
    let hello = Message::Hello {
        role: Role::Worker,
        worker: slot,
        incarnation: lagom::server::NEW_PROCESS,
        layout_hash: hash,
        params_len: len as u64,
        device: "hostile".into(),
        peer_port,
        wire_dtype: lagom::proto::WireDtype::F32,
    };
    send(&conn, hello).await.expect("hello");
    loop {
        match recv(&conn, frame_limit(2 * len)).await.expect("recv") {
            Some(Message::Welcome { .. }) | Some(Message::Heartbeat { .. }) => {}
            Some(Message::Start { peers, .. }) => {
                let peers = peers
                    .iter()
                    .map(|p| p.as_ref().and_then(|p| p.addr.parse().ok()))
                    .collect();
                return (endpoint, conn, peers);
            }
            other => panic!("expected Welcome and Start, got {other:?}"),
        }
    }
}

#[test]
fn a_hostile_worker_is_refused_everywhere_and_the_honest_ones_finish() {
    let cluster = TestCluster::with(
        3,
        "synthetic",
        "sgp",
        &[
            "--set",
            "net.heartbeat_s=0.3",
            "--set",
            "net.heartbeat_timeout_s=2",
            "--set",
            "net.hello_timeout_s=1",
            "--set",
            "net.peer_wait_s=0.5",
            "--set",
            "net.round_timeout_s=2",
        ],
    );
    let server = cluster.spawn_server(&["--set", "server.updates=1200"]);
    let addr: SocketAddr = ([127, 0, 0, 1], cluster.port).into();
    let any_slot = load_identity(cluster.certs.path(), "w0").expect("w0");
    let slot_one = load_identity(cluster.certs.path(), "w1").expect("w1");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (_, len) = synthetic_mlp_layout();

    // 1. A flood of 200 connections that never say Hello, while the rendezvous waits for the run.
    std::thread::sleep(Duration::from_millis(500));
    let before_kb = rss_kb(server.id());
    let refused_or_dropped = runtime.block_on(async {
        let endpoint = client_endpoint(&any_slot, &TransportSettings::for_params(len)).expect("ep");
        let mut conns = Vec::new();
        let mut refused = 0;
        for _ in 0..200 {
            match tokio::time::timeout(Duration::from_secs(2), connect(&endpoint, addr)).await {
                Ok(Ok(c)) => conns.push(c),
                _ => refused += 1,
            }
        }
        // Every connection that got through is dropped for saying nothing.
        for c in &conns {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.closed()).await;
        }
        let dropped = conns.iter().filter(|c| c.close_reason().is_some()).count();
        (refused, dropped, conns.len())
    });
    let after_kb = rss_kb(server.id());
    let (refused, dropped, through) = refused_or_dropped;
    eprintln!(
        "flood: {refused} refused before the handshake, {through} through and {dropped} of them \
         dropped; rendezvous RSS {} -> {} MB",
        before_kb / 1024,
        after_kb / 1024
    );
    assert!(refused > 0, "the connection limit refused some");
    assert_eq!(dropped, through, "every silent connection was dropped");
    assert!(
        after_kb < before_kb + 30 * 1024,
        "the flood cost {} MB",
        (after_kb - before_kb) / 1024
    );

    // 2. The honest workers join; the hostile one takes slot 2, as its certificate allows.
    let honest: Vec<_> = (0..2).map(|w| cluster.spawn_worker(w, &[])).collect();
    runtime.block_on(async {
        let peer_id = any_slot.clone();
        let t = TransportSettings::for_params(len);
        let own = peer_endpoint(([127, 0, 0, 1], 0).into(), &peer_id, &t).expect("peer ep");
        let port = own.local_addr().expect("port").port();
        let (_ep, conn, peers) = join(&any_slot, addr, 2, port).await;
        let worker0 = peers[0].expect("worker 0 is present");

        // 3. A PeerHello claiming slot 2 with a certificate that allows only slot 1.
        let wrong = peer_endpoint(([127, 0, 0, 1], 0).into(), &slot_one, &t).expect("ep");
        let c = connect_to(&wrong, worker0, Role::Worker)
            .await
            .expect("dial");
        let hello = Message::PeerHello {
            worker: 2,
            incarnation: 1,
            to: 0,
            layout_hash: synthetic_mlp_layout().0,
        };
        let _ = send(&c, hello).await;
        // Closed by worker 0 (as `refused`, or reset when the close raced the PeerHello).
        let closed = tokio::time::timeout(Duration::from_secs(5), c.closed())
            .await
            .expect("worker 0 closes it");
        eprintln!("wrong-slot PeerHello: {closed}");

        // 4. As the real slot 2: gossip from far in the future, then the same message again.
        let c = connect_to(&own, worker0, Role::Worker).await.expect("dial");
        let issued = 1;
        let hello = Message::PeerHello {
            worker: 2,
            incarnation: issued,
            to: 0,
            layout_hash: synthetic_mlp_layout().0,
        };
        send(&c, hello).await.expect("peer hello");
        let future = Message::Gossip {
            from: 2,
            iteration: 1 << 40,
            lateness: 0,
            weight: 0.5,
            x: vec![0.0; len],
        };
        for _ in 0..2 {
            let _ = send(&c, future.clone()).await;
        }

        // 5. An average's part for a far-future iteration: refused, counted, connection dropped.
        let part = Message::Reduce {
            worker: 2,
            iteration: 1 << 40,
            kind: ReduceKind::Params,
            values: vec![0.0; len],
        };
        let _ = send(&conn, part).await;
        let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed())
            .await
            .expect("the rendezvous drops it");
        assert!(format!("{closed}").contains("refused"), "{closed}");
    });

    // The honest workers finish the run without slot 2.
    for (w, child) in honest.into_iter().enumerate() {
        let out = wait_for(child, Duration::from_secs(180), "an honest worker");
        assert!(out.status.success(), "worker {w}: {}", stderr(&out));
        if w == 0 {
            let log = stderr(&out);
            assert!(
                log.contains("message from peer 2 refused"),
                "worker 0 refused the future gossip: {log}"
            );
        }
    }
    let out = wait_for(server, Duration::from_secs(30), "the rendezvous");
    assert!(out.status.success(), "{}", stderr(&out));
    let s = cluster.summary();
    let per_worker = s["per_worker"].as_array().expect("per_worker");
    let updates = s["updates"].as_u64().expect("updates");
    for (w, record) in per_worker.iter().take(2).enumerate() {
        let done = record["gradients"].as_u64().expect("gradients");
        assert!(done >= updates, "honest worker {w} did the run: {s}");
    }
    assert_eq!(
        per_worker[2]["gradients"], 0,
        "the hostile slot did nothing: {s}"
    );
    // Worker 0's refusals of the future gossip reach the run's record.
    let refused = s["messages_refused"].as_u64().expect("messages_refused");
    assert!(refused >= 1, "refused gossip counted: {s}");
    let ev = events(&cluster.run.path().join("metrics.jsonl"));
    let rejected: Vec<_> = ev.iter().filter(|e| e["event"] == "rejected").collect();
    assert!(
        rejected
            .iter()
            .any(|e| e["reason"] == "out-of-window" && e["worker"] == 2),
        "{rejected:?}"
    );
}
