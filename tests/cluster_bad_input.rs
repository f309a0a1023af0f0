//! A running server facing bad peers: a wrong protocol version, an oversized length prefix, a
//! worker certificate claiming the server role, a gradient full of NaN, a gradient of the wrong
//! length, a flood of NaN losses from one worker, and a garbage frame. Each is refused, dropped or
//! outvoted, counted, and the server keeps training with the good worker to the end of the run.

use std::net::SocketAddr;
use std::time::Duration;

use lagom::net::{client_endpoint, connect, load_identity, recv, send, TransportSettings};
use lagom::proto::{
    frame_limit, Message, RefusalCode, Role, CONTROL_FRAME_LIMIT, PROTOCOL_VERSION,
};

mod cli_support;
use cli_support::{stderr, synthetic_mlp_layout, wait_for, write_certs, TestCluster};

/// Sends raw bytes as one message stream.
async fn send_raw(conn: &quinn::Connection, bytes: &[u8]) {
    if let Ok(mut s) = conn.open_uni().await {
        let _ = s.write_all(bytes).await;
        let _ = s.finish();
        let _ = s.stopped().await;
    }
}

async fn expect_refusal(conn: &quinn::Connection, code: RefusalCode) -> String {
    match tokio::time::timeout(Duration::from_secs(10), recv(conn, CONTROL_FRAME_LIMIT)).await {
        Ok(Ok(Some(Message::Refuse { code: got, detail }))) => {
            assert_eq!(got, code, "{detail}");
            detail
        }
        other => panic!("expected a {code:?} refusal, got {other:?}"),
    }
}

#[test]
fn the_server_refuses_bad_peers_and_bad_gradients_and_keeps_training() {
    let cluster = TestCluster::new("asgd", &[]);
    let addr: SocketAddr = ([127, 0, 0, 1], cluster.port).into();
    let server = cluster.spawn_server(&[
        "--set",
        "server.updates=300",
        "--set",
        "server.eval_every=0",
    ]);

    let (hash, len) = synthetic_mlp_layout();
    let identity = load_identity(cluster.certs.path(), "w1").expect("w1 identity");
    // w1's certificate allows slot 1 only. It claims a huge incarnation: the server issues its
    // own.
    let hello_as = |role, worker| Message::Hello {
        role,
        worker,
        incarnation: u64::MAX,
        layout_hash: hash,
        params_len: len as u64,
        device: "test".into(),
        peer_port: 0,
        wire_dtype: lagom::proto::WireDtype::F32,
    };
    let hello = |role| hello_as(role, 1);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let endpoint =
            client_endpoint(&identity, &TransportSettings::for_params(len)).expect("endpoint");
        let dial = || async {
            for _ in 0..100 {
                if let Ok(c) = connect(&endpoint, addr).await {
                    return c;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("the server never answered");
        };

        // 1. Another protocol version.
        let conn = dial().await;
        let mut frame = lagom::proto::encode(&hello(Role::Worker)).expect("encode");
        frame[4..6].copy_from_slice(&(PROTOCOL_VERSION + 7).to_le_bytes());
        send_raw(&conn, &frame).await;
        let detail = expect_refusal(&conn, RefusalCode::ProtocolVersion).await;
        let want = format!("version {}", PROTOCOL_VERSION + 7);
        assert!(detail.contains(&want), "{detail}");

        // 2. An oversized length prefix instead of a Hello.
        let conn = dial().await;
        send_raw(&conn, &u32::MAX.to_le_bytes()).await;
        let detail = expect_refusal(&conn, RefusalCode::Unexpected).await;
        assert!(detail.contains("exceeds the limit"), "{detail}");

        // 3. A worker certificate claiming the server role.
        let conn = dial().await;
        send(&conn, hello(Role::Server)).await.expect("send");
        expect_refusal(&conn, RefusalCode::Role).await;

        // 4. A valid worker certificate claiming a slot it does not allow.
        let conn = dial().await;
        send(&conn, hello_as(Role::Worker, 0)).await.expect("send");
        let detail = expect_refusal(&conn, RefusalCode::WorkerId).await;
        assert!(detail.contains("does not allow slot 0"), "{detail}");

        // 4b. A worker that sends tensors in another precision than the server's.
        let conn = dial().await;
        let mut bf16 = hello(Role::Worker);
        if let Message::Hello { wire_dtype, .. } = &mut bf16 {
            *wire_dtype = lagom::proto::WireDtype::Bf16;
        }
        send(&conn, bf16).await.expect("send");
        let detail = expect_refusal(&conn, RefusalCode::WireDtype).await;
        assert!(
            detail.contains("in bf16") && detail.contains("net.wire_dtype is f32"),
            "{detail}"
        );

        // 5. A proper worker that sends a NaN gradient, then one of the wrong length, then
        //    garbage. The first two are rejected with fresh parameters; the garbage drops it.
        let conn = dial().await;
        send(&conn, hello(Role::Worker)).await.expect("send");
        let issued = match recv(&conn, CONTROL_FRAME_LIMIT).await.expect("recv") {
            Some(Message::Welcome { incarnation, .. }) => incarnation,
            other => panic!("expected Welcome, got {other:?}"),
        };
        assert_eq!(
            issued, 1,
            "the first process of the slot, whatever it claimed"
        );
        let limit = frame_limit(len);
        let next_params = || async {
            match recv(&conn, limit).await.expect("recv") {
                Some(Message::Params { index, params }) => (index, params),
                other => panic!("expected params, got {other:?}"),
            }
        };
        let (index, params) = next_params().await;
        assert_eq!(params.len(), len);
        let mut nan = vec![0.0f32; len];
        nan[17] = f32::NAN;
        let gradient = |seq, ite, grad, loss| Message::Gradient {
            worker: 1,
            incarnation: issued,
            seq,
            ite,
            loss,
            samples: 8,
            grad,
        };
        send(&conn, gradient(1, index, nan, 1.0))
            .await
            .expect("send");
        let (index, _) = next_params().await;
        send(&conn, gradient(2, index, vec![0.0; len - 1], 1.0))
            .await
            .expect("send");
        let (mut index, _) = next_params().await;
        // 6. Ten times the divergence rule's patience (2K = 4) of NaN losses from this one worker,
        //    with finite gradients: one worker alone does not end the run.
        for seq in 3..43 {
            send(&conn, gradient(seq, index, vec![0.0; len], f32::NAN))
                .await
                .expect("send");
            index = next_params().await.0;
        }
        send_raw(
            &conn,
            &[9, 0, 0, 0, 1, 0, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1],
        )
        .await;
        let closed = tokio::time::timeout(Duration::from_secs(10), conn.closed())
            .await
            .expect("the server drops a peer that sends garbage");
        assert!(format!("{closed}").contains("protocol error"), "{closed}");
    });

    // The good worker trains the run to its end.
    let worker = cluster.spawn_worker(0, &[]);
    let server = wait_for(server, Duration::from_secs(120), "the server");
    assert!(server.status.success(), "{}", stderr(&server));
    let worker = wait_for(worker, Duration::from_secs(30), "the worker");
    assert!(worker.status.success(), "{}", stderr(&worker));
    let s = cluster.summary();
    assert_eq!(s["updates"], 300);
    assert_eq!(
        s["diverged"], false,
        "one worker's NaN losses ended the run: {s}"
    );
    assert_eq!(s["gradients_rejected"]["non-finite"], 1, "{s}");
    assert_eq!(s["gradients_rejected"]["wrong-size"], 1, "{s}");
    assert_eq!(
        s["gradients_received"].as_u64(),
        Some(300 + s["gradients_rejected_total"].as_u64().unwrap_or(0))
    );
}

/// A worker whose certificate the server does not accept, or which does not accept the server's,
/// says why and exits with a configuration error (2, not restarted) instead of redialling in
/// silence; the server keeps serving the good worker.
#[test]
fn a_worker_of_another_cluster_ca_says_why_and_exits_2() {
    let cluster = TestCluster::new("asgd", &[]);
    let server = cluster.spawn_server(&[
        "--set",
        "server.updates=200",
        "--set",
        "server.eval_every=0",
    ]);
    // Another cluster's certificates, and a mix: the right CA but a worker key from the other.
    let other = tempfile::tempdir().expect("other CA");
    write_certs(other.path());
    let mixed = tempfile::tempdir().expect("mixed");
    std::fs::copy(
        cluster.certs.path().join("ca.pem"),
        mixed.path().join("ca.pem"),
    )
    .expect("ca");
    for f in ["w1.pem", "w1.key"] {
        std::fs::copy(other.path().join(f), mixed.path().join(f)).expect("w1");
    }
    for (dir, who) in [
        (other.path(), "this node refused the peer's certificate"),
        (mixed.path(), "the peer refused this node's certificate"),
    ] {
        let certs = format!("net.certs=\"{}\"", dir.display());
        let worker = cluster.spawn_worker(1, &["--set", &certs]);
        let out = wait_for(worker, Duration::from_secs(30), "an untrusted worker");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(who) && err.contains("TLS alert"), "{err}");
        assert!(err.contains("net.certs"), "{err}");
    }
    let worker = cluster.spawn_worker(0, &[]);
    let server = wait_for(server, Duration::from_secs(60), "the server");
    assert!(server.status.success(), "{}", stderr(&server));
    let worker = wait_for(worker, Duration::from_secs(30), "the worker");
    assert!(worker.status.success(), "{}", stderr(&worker));
    assert_eq!(cluster.summary()["updates"], 200);
}
