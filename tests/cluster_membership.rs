//! Membership by heartbeat: a worker that joined and then falls silent while its QUIC connection
//! stays alive (keep-alives still flow, as when its compute hangs) is declared gone after
//! `net.heartbeat_timeout_s`; the synchronous run then completes with the live worker instead of
//! waiting for it forever.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lagom::net::{client_endpoint, connect, load_identity, recv, send, TransportSettings};
use lagom::proto::{Message, Role, CONTROL_FRAME_LIMIT};

mod cli_support;
use cli_support::{stderr, synthetic_mlp_layout, wait_for, TestCluster};

#[test]
fn a_silent_worker_is_dropped_after_the_heartbeat_timeout_and_the_sync_run_completes() {
    let cluster = TestCluster::new(
        "ssgd",
        &[
            "--set",
            "net.heartbeat_s=0.3",
            "--set",
            "net.heartbeat_timeout_s=2",
        ],
    );
    let addr: SocketAddr = ([127, 0, 0, 1], cluster.port).into();
    let server = cluster.spawn_server(&[
        "--set",
        "server.updates=200",
        "--set",
        "server.eval_every=0",
    ]);

    // The silent worker joins first, as slot 1, so the first round waits for it.
    let (hash, len) = synthetic_mlp_layout();
    let identity = load_identity(cluster.certs.path(), "w1").expect("w1 identity");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let silent_since = runtime.block_on(async {
        let endpoint =
            client_endpoint(&identity, &TransportSettings::for_params(len)).expect("endpoint");
        let mut conn = None;
        for _ in 0..100 {
            if let Ok(c) = connect(&endpoint, addr).await {
                conn = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let conn = conn.expect("the server never answered");
        send(
            &conn,
            Message::Hello {
                role: Role::Worker,
                worker: 1,
                incarnation: lagom::server::NEW_PROCESS,
                layout_hash: hash,
                params_len: len as u64,
                device: "silent".into(),
                peer_port: 0,
            },
        )
        .await
        .expect("hello");
        match recv(&conn, CONTROL_FRAME_LIMIT).await {
            Ok(Some(Message::Welcome { .. })) => {}
            other => panic!("expected Welcome, got {other:?}"),
        }
        (endpoint, conn, Instant::now())
    });

    let worker = cluster.spawn_worker(0, &[]);

    // The silent client keeps its connection (QUIC keep-alives) but never sends a heartbeat.
    let (_endpoint, conn, joined) = silent_since;
    let closed = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), conn.closed())
            .await
            .expect("the server never dropped the silent worker")
    });
    let dropped_after = joined.elapsed();
    assert!(
        matches!(&closed, quinn::ConnectionError::ApplicationClosed(c) if c.reason.as_ref() == b"heartbeat timeout"),
        "{closed:?}"
    );
    assert!(
        dropped_after >= Duration::from_millis(1900),
        "dropped after {dropped_after:?}, before the 2 s timeout"
    );

    let out = wait_for(server, Duration::from_secs(120), "the server");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("it is gone"), "{}", stderr(&out));
    let out = wait_for(worker, Duration::from_secs(30), "the live worker");
    assert!(out.status.success(), "{}", stderr(&out));
    let s = cluster.summary();
    assert_eq!(s["updates"], 200);
    let per_worker = s["per_worker"].as_array().expect("per_worker");
    assert_eq!(per_worker[0]["gradients"], 200, "{s}");
    assert_eq!(per_worker[1]["gradients"], 0, "{s}");
}
