//! Durability: the server is killed with SIGKILL mid-run and restarted with `--resume`; it
//! continues from its last checkpoint, the workers reconnect by themselves, and the run
//! completes with consistent counts.

use std::process::Child;
use std::time::Duration;

mod cli_support;
use cli_support::{
    last_event_updates, spawn_lagom, stderr, strings, summary, wait_for, wait_for_event,
    TestCluster,
};

#[test]
fn a_killed_server_resumes_from_its_checkpoint_and_the_run_completes() {
    kill_and_restart_server(&[], &["--resume"]);
}

/// What a service manager does: the same command line before and after the crash, with
/// `server.auto_resume` (a fresh start the first time, a resume the second).
#[test]
fn with_auto_resume_the_same_command_starts_fresh_then_resumes() {
    kill_and_restart_server(&["--set", "server.auto_resume=true"], &[]);
}

/// Starts a server (with `first` added) and two workers, kills the server mid-run, restarts it
/// with `restart` added, and checks the run completes from the checkpoint.
fn kill_and_restart_server(first: &[&str], restart: &[&str]) {
    let total = 6000u64;
    let cluster = TestCluster::new(
        "ormo",
        &[
            "--lr",
            "0.02",
            "--set",
            "net.keep_alive_s=0.5",
            "--set",
            "net.idle_timeout_s=2",
            "--set",
            "net.reconnect_max_s=0.3",
        ],
    );
    let updates = format!("server.updates={total}");
    let mut server_args = cluster.server_args(&[
        "--set",
        &updates,
        "--set",
        "server.eval_every=0",
        "--set",
        "server.checkpoint_every=250",
        "--set",
        "server.checkpoint_every_s=0",
    ]);
    server_args.extend(strings(first));
    let server = spawn_lagom(&server_args);
    let workers: Vec<Child> = (0..2).map(|w| cluster.spawn_worker(w, &[])).collect();
    let run = &cluster.run;

    // Kill the server (SIGKILL) once it has checkpointed at least twice.
    let mut server = server;
    wait_for_event(
        run.path(),
        "checkpoint",
        500,
        &mut server,
        Duration::from_secs(60),
    );
    server.kill().expect("SIGKILL");
    let _ = server.wait();
    let checkpointed = last_event_updates(run.path(), "checkpoint").expect("a checkpoint");
    assert!(checkpointed < total, "killed mid-run");

    let mut resume_args = server_args.clone();
    resume_args.extend(strings(restart));
    let server = spawn_lagom(&resume_args);
    let server = wait_for(server, Duration::from_secs(120), "the resumed server");
    assert!(server.status.success(), "{}", stderr(&server));
    for (i, w) in workers.into_iter().enumerate() {
        let out = wait_for(w, Duration::from_secs(30), "a worker");
        assert!(out.status.success(), "worker {i}: {}", stderr(&out));
    }

    let s = summary(run.path());
    assert_eq!(s["updates"], total);
    let received = s["gradients_received"].as_u64().expect("received");
    let rejected = s["gradients_rejected_total"].as_u64().expect("rejected");
    assert_eq!(received, total + rejected, "{s}");
    let per_worker: u64 = s["per_worker"]
        .as_array()
        .expect("per_worker")
        .iter()
        .map(|w| w["gradients"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(per_worker, total);
    let metrics = std::fs::read_to_string(run.path().join("metrics.jsonl")).expect("metrics");
    let resume: Vec<serde_json::Value> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "resume")
        .collect();
    assert_eq!(resume.len(), 1);
    let resumed_at = resume[0]["updates"].as_u64().expect("updates");
    // What the restarted process applied, by incarnation, plus what it resumed with.
    assert_eq!(s["applied_before_start"], resumed_at);
    let since: u64 = s["applied_by_incarnation"]
        .as_array()
        .expect("by incarnation")
        .iter()
        .map(|e| e["applied"].as_u64().expect("applied"))
        .sum();
    assert_eq!(resumed_at + since, total);
    assert!(
        resumed_at >= checkpointed && resumed_at % 250 == 0,
        "resumed at {resumed_at}, last seen checkpoint {checkpointed}"
    );
    assert!(
        s["final_test_accuracy"].as_f64().is_some_and(|a| a > 0.5),
        "{s}"
    );
}

/// The updates of every `checkpoint` event in `metrics.jsonl`, in order.
fn checkpoints(run: &std::path::Path) -> Vec<u64> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "checkpoint")
        .filter_map(|v| v["updates"].as_u64())
        .collect()
}

/// Flips one bit in the middle of `path`.
fn damage(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(path, bytes).expect("write");
}

/// A damaged newest checkpoint: `--resume` falls back to the previous generation (saying so) and
/// the run completes from there; with both generations damaged it refuses, naming both files.
#[test]
fn a_damaged_checkpoint_resumes_from_the_previous_generation() {
    let cluster = TestCluster::new("ormo", &["--lr", "0.02"]);
    let first = [
        "--set",
        "server.updates=600",
        "--set",
        "server.eval_every=0",
        "--set",
        "server.checkpoint_every=200",
        "--set",
        "server.checkpoint_every_s=0",
    ];
    let run_cluster = |server_extra: &[&str]| {
        let server = cluster.spawn_server(server_extra);
        let workers: Vec<Child> = (0..2).map(|w| cluster.spawn_worker(w, &[])).collect();
        let out = wait_for(server, Duration::from_secs(120), "the server");
        for w in workers {
            let _ = wait_for(w, Duration::from_secs(30), "a worker");
        }
        out
    };
    let out = run_cluster(&first);
    assert!(out.status.success(), "{}", stderr(&out));
    let written = checkpoints(cluster.run_dir());
    let (previous, newest) = (written[written.len() - 2], written[written.len() - 1]);
    assert_eq!(newest, 600);
    let path = cluster.run_dir().join("checkpoint.msgpack");
    assert!(cluster.run_dir().join("checkpoint.msgpack.prev").is_file());
    damage(&path);

    let mut resumed = first.to_vec();
    resumed.extend(["--set", "server.updates=800", "--resume"]);
    let out = run_cluster(&resumed);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("checksum mismatch") && err.contains("resuming from the previous one"),
        "{err}"
    );
    let s = summary(cluster.run_dir());
    assert_eq!(s["updates"], 800);
    assert_eq!(s["applied_before_start"], previous, "{s}");

    damage(&path);
    damage(&cluster.run_dir().join("checkpoint.msgpack.prev"));
    let out = cluster.spawn_server(&resumed);
    let out = wait_for(
        out,
        Duration::from_secs(60),
        "a server with no usable checkpoint",
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("no usable checkpoint")
            && err.contains("checkpoint.msgpack:")
            && err.contains("checkpoint.msgpack.prev:"),
        "{err}"
    );
}
