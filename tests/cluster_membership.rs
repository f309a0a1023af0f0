//! Membership by heartbeat: a worker that joined and then falls silent while its QUIC connection
//! stays alive (keep-alives still flow, as when its compute hangs) is declared gone after
//! `net.heartbeat_timeout_s`; the synchronous run then completes with the live worker instead of
//! waiting for it forever.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lagom::net::{client_endpoint, connect, load_identity, recv, send, TransportSettings};
use lagom::proto::{Message, Role, CONTROL_FRAME_LIMIT};

mod cli_support;
use cli_support::{
    free_port, spawn_lagom, stderr, strings, summary, synthetic_mlp_layout, wait_for, write_certs,
};

#[test]
fn a_silent_worker_is_dropped_after_the_heartbeat_timeout_and_the_sync_run_completes() {
    let certs = tempfile::tempdir().expect("certs");
    write_certs(certs.path());
    let certs_dir = certs.path().to_str().expect("utf-8").to_string();
    let run = tempfile::tempdir().expect("run");
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let common = strings(&[
        "--set",
        "data.name=\"synthetic\"",
        "--set",
        "model.name=\"mlp\"",
        "--workers",
        "2",
        "--algorithm",
        "ssgd",
        "--set",
        &format!("net.certs=\"{certs_dir}\""),
        "--set",
        "net.heartbeat_s=0.3",
        "--set",
        "net.heartbeat_timeout_s=2",
    ]);
    let mut server_args = strings(&[
        "--role",
        "server",
        "--run-dir",
        run.path().to_str().expect("utf-8"),
        "--set",
        "net.node=\"head\"",
        "--set",
        &format!("net.listen=\"{addr}\""),
        "--set",
        "server.updates=200",
        "--set",
        "server.eval_every=0",
    ]);
    server_args.extend(common.iter().cloned());
    let server = spawn_lagom(&server_args);

    // The silent worker joins first, as slot 1, so the first round waits for it.
    let (hash, len) = synthetic_mlp_layout();
    let identity = load_identity(certs.path(), "w1").expect("w1 identity");
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
                incarnation: 1,
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

    let mut worker_args = strings(&[
        "--role",
        "worker",
        "--server",
        &addr.to_string(),
        "--worker",
        "0",
        "--set",
        "net.node=\"w0\"",
    ]);
    worker_args.extend(common.iter().cloned());
    let worker = spawn_lagom(&worker_args);

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
    let s = summary(run.path());
    assert_eq!(s["updates"], 200);
    let per_worker = s["per_worker"].as_array().expect("per_worker");
    assert_eq!(per_worker[0]["gradients"], 200, "{s}");
    assert_eq!(per_worker[1]["gradients"], 0, "{s}");
}
