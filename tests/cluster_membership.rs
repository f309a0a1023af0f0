//! Membership by heartbeat and by delivery: a worker that joined and then falls silent while its
//! QUIC connection stays alive (keep-alives still flow) is declared gone after
//! `net.heartbeat_timeout_s`; a worker that keeps sending heartbeats but never delivers a gradient
//! (its compute hangs) is dropped after `net.round_timeout_s`. Either way the synchronous run
//! completes with the live worker instead of waiting forever.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lagom::net::{client_endpoint, connect, load_identity, recv, send, TransportSettings};
use lagom::proto::{frame_limit, Message, Role};

mod cli_support;
use cli_support::{stderr, synthetic_mlp_layout, wait_for, TestCluster};

/// A hand-made worker's connection and when it was welcomed and got the round's parameters.
struct Held {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    welcomed: Instant,
    params: Option<Instant>,
}

/// Joins as slot 1 with w1's certificate and waits for the round's parameters (or the end of
/// the connection); with `heartbeat_every`, sends heartbeats on a task of its own.
async fn join_and_hold(cluster: &TestCluster, heartbeat_every: Option<Duration>) -> Held {
    let addr: SocketAddr = ([127, 0, 0, 1], cluster.port).into();
    let (hash, len) = synthetic_mlp_layout();
    let identity = load_identity(cluster.certs.path(), "w1").expect("w1 identity");
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
    let hello = Message::Hello {
        role: Role::Worker,
        worker: 1,
        incarnation: lagom::server::NEW_PROCESS,
        layout_hash: hash,
        params_len: len as u64,
        device: "stuck".into(),
        peer_port: 0,
        wire_dtype: lagom::proto::WireDtype::F32,
    };
    send(&conn, hello).await.expect("hello");
    if let Some(every) = heartbeat_every {
        let beating = conn.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if send(&beating, Message::Heartbeat { at_ms: 0 })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
    let mut welcomed = None;
    loop {
        let got = recv(&conn, frame_limit(len)).await;
        let params = match got {
            Ok(Some(Message::Welcome { .. })) => {
                welcomed = Some(Instant::now());
                continue;
            }
            Ok(Some(Message::Params { .. })) => Some(Instant::now()),
            Ok(None) | Err(_) => None,
            Ok(Some(other)) => panic!("expected Welcome and Params, got {other:?}"),
        };
        return Held {
            _endpoint: endpoint,
            conn,
            welcomed: welcomed.expect("no Welcome"),
            params,
        };
    }
}

/// Runs an SSGD cluster of 2 for 200 updates in which slot 1 is the hand-made client; returns
/// how the server closed that client's connection and when, and checks that the run completed
/// with worker 0's gradients only and `server_says` in the server's log.
fn run_with_stuck_worker(
    extra: &[&str],
    heartbeat_every: Option<Duration>,
    server_says: &str,
) -> (quinn::ConnectionError, Held, Instant) {
    let cluster = TestCluster::new("ssgd", extra);
    let server = cluster.spawn_server(&[
        "--set",
        "server.updates=200",
        "--set",
        "server.eval_every=0",
    ]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The stuck worker joins first, so the run's first round waits for it.
    let worker = std::cell::Cell::new(None);
    let (closed, held, at) = runtime.block_on(async {
        let joining = join_and_hold(&cluster, heartbeat_every);
        let spawn_live = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            worker.set(Some(cluster.spawn_worker(0, &[])));
        };
        let (held, ()) = tokio::join!(joining, spawn_live);
        let closed = tokio::time::timeout(Duration::from_secs(60), held.conn.closed())
            .await
            .expect("the server never dropped the stuck worker");
        (closed, held, Instant::now())
    });
    let out = wait_for(server, Duration::from_secs(120), "the server");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(server_says), "{}", stderr(&out));
    let live = worker.take().expect("live worker");
    let out = wait_for(live, Duration::from_secs(30), "the live worker");
    assert!(out.status.success(), "{}", stderr(&out));
    let s = cluster.summary();
    assert_eq!(s["updates"], 200);
    let per_worker = s["per_worker"].as_array().expect("per_worker");
    assert_eq!(per_worker[0]["gradients"], 200, "{s}");
    assert_eq!(per_worker[1]["gradients"], 0, "{s}");
    (closed, held, at)
}

#[test]
fn a_silent_worker_is_dropped_after_the_heartbeat_timeout_and_the_sync_run_completes() {
    let extra = [
        "--set",
        "net.heartbeat_s=0.3",
        "--set",
        "net.heartbeat_timeout_s=2",
    ];
    let (closed, held, at) = run_with_stuck_worker(&extra, None, "it is gone");
    let after = at - held.welcomed;
    assert!(
        matches!(&closed, quinn::ConnectionError::ApplicationClosed(c) if c.reason.as_ref() == b"heartbeat timeout"),
        "{closed:?}"
    );
    assert!(
        after >= Duration::from_millis(1900),
        "dropped after {after:?}, before the 2 s timeout"
    );
}

#[test]
fn a_worker_that_heartbeats_but_never_delivers_is_dropped_after_the_round_timeout() {
    let extra = [
        "--set",
        "net.heartbeat_s=0.3",
        "--set",
        "net.heartbeat_timeout_s=30",
        "--set",
        "net.round_timeout_s=2",
    ];
    let beat = Some(Duration::from_millis(300));
    let (closed, held, at) = run_with_stuck_worker(&extra, beat, "net.round_timeout_s");
    let after = at - held.params.expect("the round's parameters came");
    assert!(
        matches!(&closed, quinn::ConnectionError::ApplicationClosed(c) if c.reason.as_ref() == b"superseded"),
        "{closed:?}"
    );
    assert!(
        after >= Duration::from_millis(1900) && after < Duration::from_secs(20),
        "dropped after {after:?}: the round timeout is 2 s, the heartbeat timeout 30 s"
    );
}
