//! Faults in decentralized runs, acted out on real processes (`--role local`, 4 workers, the
//! `mlp` on Fashion-MNIST): once the run is under way, one worker is paused (SIGSTOP) beyond the
//! heartbeat timeout and continued, then two others are killed at once; the supervisor restarts
//! them and they rejoin. For each family — push-sum (SGP), symmetric gossip (D-PSGD), exact
//! averages (SlowMo over Local SGD) and PC-ASGD — the run completes, every reported value is
//! finite, the rendezvous saw the members leave and come back, a returning worker started from a
//! live peer's state, and the test accuracy is within 3 points of the same run (same seed)
//! undisturbed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

mod cli_support;
use cli_support::{
    events, fashion_mnist_present, spawn_lagom, stderr, strings, summary, wait_for, wait_for_event,
};

/// Iterations of every run: long enough that the faults happen well before the end.
const ITERATIONS: u64 = 600;
/// The heartbeat timeout of these runs, seconds.
const HEARTBEAT_TIMEOUT_S: f64 = 2.0;

/// The worker processes of the local run `pid`, by slot (from their command lines).
fn workers_of(pid: u32) -> BTreeMap<usize, i32> {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let mut slots = BTreeMap::new();
    for child in children.split_whitespace() {
        let Ok(cmdline) = std::fs::read(format!("/proc/{child}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let slot = args
            .iter()
            .position(|a| a == "--worker")
            .and_then(|i| args.get(i + 1))
            .and_then(|s| s.parse().ok());
        if let (Some(slot), Ok(pid)) = (slot, child.parse()) {
            slots.insert(slot, pid);
        }
    }
    slots
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions; the pids are this test's grandchildren.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

/// Runs `algorithm` with `extra` flags; with `faults`, pauses slot 1 beyond the heartbeat
/// timeout, then kills slots 2 and 3 at once. Returns the summary and the run's log.
fn run(dir: &Path, algorithm: &str, extra: &[&str], faults: bool) -> (serde_json::Value, String) {
    let mut args = strings(&[
        "--log-level",
        "info",
        "--role",
        "local",
        "--run-dir",
        dir.to_str().expect("utf-8"),
        "--algorithm",
        algorithm,
        "--workers",
        "4",
        "--set",
        "model.name=\"mlp\"",
        "--set",
        "server.eval_every=100",
        "--set",
        "run.seed=5",
        "--set",
        "net.heartbeat_s=0.5",
        "--set",
        &format!("net.heartbeat_timeout_s={HEARTBEAT_TIMEOUT_S}"),
        "--set",
        "net.peer_wait_s=1",
        "--set",
        &format!("server.updates={ITERATIONS}"),
    ]);
    args.extend(strings(extra));
    let mut child = spawn_lagom(&args);
    if faults {
        wait_for_event(dir, "eval", 100, &mut child, Duration::from_secs(120));
        let before = workers_of(child.id());
        assert_eq!(before.len(), 4, "worker processes: {before:?}");
        signal(before[&1], libc::SIGSTOP);
        std::thread::sleep(Duration::from_secs_f64(HEARTBEAT_TIMEOUT_S + 1.5));
        signal(before[&1], libc::SIGCONT);
        signal(before[&2], libc::SIGKILL);
        signal(before[&3], libc::SIGKILL);
    }
    let out = wait_for(child, Duration::from_secs(240), algorithm);
    let log = stderr(&out);
    assert!(out.status.success(), "{algorithm}: {log}");
    (summary(dir), log)
}

/// The calm and the disturbed run of `algorithm`; checks what both must show.
fn compare(algorithm: &str, extra: &[&str]) {
    if !fashion_mnist_present(&format!("decentralized faults, {algorithm}")) {
        return;
    }
    let calm_dir = tempfile::tempdir().expect("tempdir");
    let (calm, _) = run(calm_dir.path(), algorithm, extra, false);
    let hit_dir = tempfile::tempdir().expect("tempdir");
    let (hit, log) = run(hit_dir.path(), algorithm, extra, true);
    let acc = |s: &serde_json::Value| s["final_test_accuracy"].as_f64().expect("accuracy");
    let (calm_acc, hit_acc) = (acc(&calm), acc(&hit));
    let ev = events(&hit_dir.path().join("metrics.jsonl"));
    let count = |kind: &str| ev.iter().filter(|e| e["event"] == kind).count();
    eprintln!(
        "{algorithm}: calm {:.2} %, paused + 2 killed {:.2} % ({} leaves, {} joins), consensus \
         distance {:.3e}",
        100.0 * calm_acc,
        100.0 * hit_acc,
        count("leave"),
        count("join"),
        hit["consensus_distance"].as_f64().unwrap_or(f64::NAN)
    );
    assert_eq!(hit["updates"], ITERATIONS, "{algorithm}: the run completed");
    // The paused worker is dropped at the heartbeat timeout; a killed one that is restarted
    // before its silence is noticed replaces its old self without a `leave`. Either way all
    // three come back as new processes.
    assert!(
        count("leave") >= 1,
        "{algorithm}: the paused worker was dropped"
    );
    assert!(
        count("join") >= 4 + 3,
        "{algorithm}: the paused and the two killed workers came back"
    );
    // A returning worker starts from a live peer's state, not from the last reported mean.
    let states = log.matches("its state after iteration").count();
    eprintln!("{algorithm}: {states} state(s) from a live peer for the rejoining workers");
    let fallbacks = log.matches("starts from the last combined model").count();
    assert!(
        log.contains("rejoins from worker") && states >= 1 && fallbacks == 0,
        "{algorithm}: {states} states from live peers, {fallbacks} waits for one timed out"
    );
    // SlowMo's outer point and slow momentum come with the state; no other family has any.
    let shared = log.matches("takes a live peer's shared state").count();
    if algorithm == "slowmo" {
        assert!(
            shared >= 1,
            "{algorithm}: no rejoining worker took SlowMo's state"
        );
    } else {
        assert_eq!(shared, 0, "{algorithm}: a shared state where there is none");
    }
    for e in ev.iter().filter(|e| e["event"] == "eval") {
        for key in ["test_accuracy", "consensus_distance", "weight_sum"] {
            if let Some(v) = e.get(key).filter(|v| !v.is_null()) {
                assert!(v.as_f64().is_some_and(f64::is_finite), "{algorithm}: {e}");
            }
        }
    }
    assert!(
        hit_acc >= calm_acc - 0.03,
        "{algorithm}: {hit_acc} after the faults against {calm_acc} undisturbed"
    );
}

#[test]
fn push_sum_sgp_survives_a_pause_and_two_kills() {
    compare("sgp", &["--lr", "0.1"]);
}

#[test]
fn symmetric_gossip_dpsgd_survives_a_pause_and_two_kills() {
    compare(
        "dpsgd",
        &["--lr", "0.1", "--set", "algorithm.gossip.topology=\"ring\""],
    );
}

#[test]
fn exact_averages_slowmo_survives_a_pause_and_two_kills() {
    compare(
        "slowmo",
        &[
            "--lr",
            "0.05",
            "--set",
            "algorithm.slowmo.base=\"local-sgd\"",
            "--set",
            "algorithm.slowmo.period=12",
            "--set",
            "algorithm.local_sgd.period=12",
            "--set",
            "algorithm.slowmo.beta=0.5",
        ],
    );
}

#[test]
fn pc_asgd_survives_a_pause_and_two_kills() {
    compare(
        "pc-asgd",
        &[
            "--lr",
            "0.1",
            "--set",
            "algorithm.momentum=0.0",
            "--set",
            "algorithm.pc_asgd.delayed_nodes=[3]",
            "--set",
            "algorithm.pc_asgd.delay=2",
        ],
    );
}
