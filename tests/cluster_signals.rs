//! What `systemctl stop` and Ctrl-C do to a run: SIGTERM to a parameter server, or to
//! `--role local` running a decentralized algorithm, ends the run early but completely — the
//! workers are told, a final checkpoint and `summary.json` (with `stopped_by`) are written, and
//! the process exits 0.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

mod cli_support;
use cli_support::{
    events, last_event_updates, spawn_lagom, stderr, strings, summary, wait_for, wait_for_event,
    TestCluster,
};

fn sigterm(child: &Child) {
    // SAFETY: plain kill(2) on a child this test started and has not reaped.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill failed");
}

/// Checks what a signalled run leaves behind: `shutdown` before `end`, the final checkpoint at the
/// summary's update count, and a summary that says what stopped it.
fn check_stopped_run(dir: &Path, total: u64) -> serde_json::Value {
    let s = summary(dir);
    assert_eq!(s["stopped_by"], "SIGTERM", "{s}");
    let updates = s["updates"].as_u64().expect("updates");
    assert!(
        updates > 0 && updates < total,
        "updates {updates} of {total}"
    );
    let kinds: Vec<String> = events(&dir.join("metrics.jsonl"))
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("?").to_string())
        .collect();
    let shutdown = kinds
        .iter()
        .position(|k| k == "shutdown")
        .expect("a shutdown event");
    assert_eq!(kinds.last().map(String::as_str), Some("end"), "{kinds:?}");
    assert!(shutdown < kinds.len() - 1);
    assert_eq!(
        last_event_updates(dir, "checkpoint"),
        Some(updates),
        "the last checkpoint holds the final state"
    );
    s
}

#[test]
fn sigterm_to_a_parameter_server_writes_the_final_checkpoint_and_summary_and_exits_0() {
    let total = 1_000_000u64;
    let cluster = TestCluster::new("asgd", &["--lr", "0.02"]);
    let updates = format!("server.updates={total}");
    let mut server = cluster.spawn_server(&[
        "--set",
        &updates,
        "--set",
        "server.eval_every=0",
        "--set",
        "server.checkpoint_every=0",
        "--set",
        "server.checkpoint_every_s=0",
    ]);
    let workers: Vec<Child> = (0..2).map(|w| cluster.spawn_worker(w, &[])).collect();
    // `progress` comes every 100 updates.
    wait_for_event(
        cluster.run_dir(),
        "progress",
        300,
        &mut server,
        Duration::from_secs(90),
    );
    sigterm(&server);
    let out = wait_for(server, Duration::from_secs(60), "the signalled server");
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        stderr(&out)
    );
    for (w, worker) in workers.into_iter().enumerate() {
        let out = wait_for(worker, Duration::from_secs(30), "a worker of a stopped run");
        assert!(out.status.success(), "worker {w}: {}", stderr(&out));
    }
    let s = check_stopped_run(cluster.run_dir(), total);
    assert!(
        s["final_test_accuracy"].as_f64().is_some(),
        "evaluated once more: {s}"
    );
    assert!(cluster.run_dir().join("checkpoint.msgpack").is_file());
}

#[test]
fn sigterm_to_a_local_decentralized_run_ends_it_with_a_summary_and_exit_0() {
    let total = 1_000_000u64;
    let dir = tempfile::tempdir().expect("run dir");
    let updates = format!("server.updates={total}");
    let mut local = spawn_lagom(&strings(&[
        "--role",
        "local",
        "--run-dir",
        dir.path().to_str().expect("utf-8"),
        "--algorithm",
        "sgp",
        "--workers",
        "2",
        "--set",
        "data.name=\"synthetic\"",
        "--set",
        "model.name=\"mlp\"",
        "--set",
        "server.eval_every=20",
        "--set",
        &updates,
    ]));
    wait_for_event(
        dir.path(),
        "checkpoint",
        40,
        &mut local,
        Duration::from_secs(90),
    );
    sigterm(&local);
    let out = wait_for(local, Duration::from_secs(60), "the signalled local run");
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        stderr(&out)
    );
    check_stopped_run(dir.path(), total);
    assert!(dir.path().join("decen-checkpoint.msgpack").is_file());
}
