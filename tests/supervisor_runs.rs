//! The supervisor with real child processes: it gives up on a worker that always crashes after
//! its restart budget, does not restart one whose configuration is unusable, refuses
//! `cpu-quota` where cgroup v2 cannot be used, and under `[chaos]` kills and pauses it restarts
//! every killed worker while an asynchronous run completes and still learns.

use std::path::Path;
use std::time::Duration;

mod cli_support;
use cli_support::{
    events, fashion_mnist_present, lagom, spawn_lagom, stderr, summary, wait_for, TestCluster,
};

fn of_kind<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

#[test]
fn a_worker_that_always_crashes_at_start_up_makes_the_supervisor_give_up_after_its_budget() {
    // The data folder does not exist: the worker fails at start-up with exit code 1, every time.
    let cluster = TestCluster::with(
        1,
        "fashion-mnist",
        "asgd",
        &[
            "--set",
            "data.dir=\"/nonexistent/fashion-mnist\"",
            "--set",
            "supervisor.restart_backoff_s=0.05",
            "--set",
            "supervisor.restart_backoff_max_s=0.4",
            "--set",
            "supervisor.restart_budget=3",
            "--set",
            "supervisor.restart_window_s=60",
        ],
    );
    let args = cluster.supervisor_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lagom(&args, &[("RUST_LOG", "warn")]);
    let run = &cluster.run;
    let err = stderr(&out);
    // 4: gave up, so a service manager does not start it again (RestartPreventExitStatus).
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("restarted 3 times"), "{err}");
    assert!(err.contains("giving up on it"), "{err}");
    assert!(err.contains("gave up on worker(s) [0]"), "{err}");
    let ev = events(&run.path().join("supervisor/metrics.jsonl"));
    assert_eq!(of_kind(&ev, "start").len(), 4, "first start + 3 restarts");
    assert_eq!(of_kind(&ev, "exit").len(), 4);
    assert!(of_kind(&ev, "exit").iter().all(|e| e["code"] == 1));
    let waits: Vec<f64> = of_kind(&ev, "restart")
        .iter()
        .map(|e| e["after_s"].as_f64().expect("after_s"))
        .collect();
    // Exponential backoff, not a spin: 0.05, 0.1, 0.2.
    assert_eq!(waits, vec![0.05, 0.1, 0.2]);
    let give_up = of_kind(&ev, "give_up");
    assert_eq!(give_up.len(), 1);
    assert_eq!(give_up[0]["restarts"], 3);
    assert_eq!(ev.last().expect("events")["event"], "end");
}

/// Runs a 1-worker supervisor with `extra` flags; the worker must exit 2 once, with `message`
/// in the log, and never be restarted.
fn expect_configuration_error_not_restarted(extra: &[&str], message: &str) {
    let run = tempfile::tempdir().expect("run");
    let mut args = vec![
        "--role",
        "supervisor",
        "--run-dir",
        run.path().to_str().expect("utf-8"),
        "--workers",
        "1",
    ];
    args.extend_from_slice(extra);
    let out = lagom(&args, &[("RUST_LOG", "warn")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "gave up on the worker: {err}");
    assert!(err.contains("restarting cannot help"), "{err}");
    assert!(err.contains(message), "{err}");
    let ev = events(&run.path().join("supervisor/metrics.jsonl"));
    assert_eq!(of_kind(&ev, "start").len(), 1, "never restarted");
    assert_eq!(of_kind(&ev, "exit")[0]["code"], 2);
}

#[test]
fn a_worker_with_an_unusable_configuration_is_not_restarted() {
    expect_configuration_error_not_restarted(
        &[
            "--set",
            "supervisor.workers=[{ worker = 0, device = \"tpu:0\" }]",
        ],
        "tpu:0",
    );
    expect_configuration_error_not_restarted(&["--server", "127.0.0.1:9"], "net.certs is not set");
}

#[test]
fn chaos_kills_are_survived_every_killed_worker_restarts_and_the_run_learns() {
    if !fashion_mnist_present("supervisor chaos") {
        return;
    }
    let updates = 4000u64;
    let budget = format!("server.updates={updates}");
    let cluster = TestCluster::with(
        4,
        "fashion-mnist",
        "ormo",
        &[
            "--lr",
            "0.05",
            "--set",
            "algorithm.lr_decay_at=[3000]",
            "--set",
            &budget,
            "--set",
            "server.eval_every=0",
            "--set",
            "net.keep_alive_s=0.5",
            "--set",
            "net.idle_timeout_s=2",
            "--set",
            "net.reconnect_max_s=0.3",
            "--set",
            "compute.threads=1",
        ],
    );
    let server = cluster.spawn_server(&[]);
    let supervisor = cluster.spawn_supervisor(&[
        "--set",
        "chaos.kill_mtbf_s=1.5",
        "--set",
        "chaos.start_after_s=2",
        "--set",
        "chaos.seed=11",
        "--set",
        "chaos.pause_mtbf_s=4",
        "--set",
        "chaos.pause_s=1",
        "--set",
        "supervisor.restart_backoff_s=0.1",
    ]);
    let run = &cluster.run;
    let server_out = wait_for(server, Duration::from_secs(600), "the server");
    assert!(server_out.status.success(), "{}", stderr(&server_out));
    let sup_out = wait_for(supervisor, Duration::from_secs(120), "the supervisor");
    assert!(sup_out.status.success(), "{}", stderr(&sup_out));

    let ev = events(&run.path().join("supervisor/metrics.jsonl"));
    let kills = of_kind(&ev, "chaos_kill");
    assert!(kills.len() >= 2, "only {} kills: {ev:?}", kills.len());
    // The first worker to finish ends the run for the supervisor: no faults or restarts after.
    let run_over = of_kind(&ev, "run_over");
    assert_eq!(run_over.len(), 1, "{ev:?}");
    let over_t = run_over[0]["t_s"].as_f64().expect("t_s");
    assert!(
        kills.iter().all(|k| k["t_s"].as_f64() < Some(over_t)),
        "{ev:?}"
    );
    // Every kill is followed by an exit by SIGKILL and a new start of that worker (unless the
    // run ended before the restart was due: 0.1 s backoff plus the exit's latency).
    for kill in &kills {
        let (worker, t) = (&kill["worker"], kill["t_s"].as_f64().expect("t_s"));
        if t > over_t - 1.0 {
            continue;
        }
        let restarted = ev.iter().any(|e| {
            e["event"] == "start"
                && &e["worker"] == worker
                && e["t_s"].as_f64().is_some_and(|s| s > t)
        });
        assert!(
            restarted,
            "worker {worker} killed at {t} s was not restarted"
        );
    }
    let by_sigkill = of_kind(&ev, "exit")
        .iter()
        .filter(|e| e["signal"] == 9)
        .count();
    assert_eq!(by_sigkill, kills.len());
    assert!(of_kind(&ev, "give_up").is_empty(), "{ev:?}");
    // Every pause (SIGSTOP) was followed by its SIGCONT.
    let pauses = of_kind(&ev, "chaos_pause");
    assert!(!pauses.is_empty(), "no pause was injected: {ev:?}");
    assert_eq!(pauses.len(), of_kind(&ev, "chaos_resume").len(), "{ev:?}");

    let s = summary(run.path());
    assert_eq!(s["updates"], updates);
    let received = s["gradients_received"].as_u64().expect("received");
    let applied = s["gradients_applied"].as_u64().expect("applied");
    let rejected = s["gradients_rejected_total"].as_u64().expect("rejected");
    assert_eq!(received, applied + rejected, "{s}");
    assert_eq!(applied, updates);
    // gradients_applied is the sum over every incarnation of what it had accepted.
    let by_incarnation = s["applied_by_incarnation"]
        .as_array()
        .expect("by incarnation");
    let sum: u64 = by_incarnation
        .iter()
        .map(|e| e["applied"].as_u64().expect("applied"))
        .sum();
    assert_eq!(s["applied_before_start"], 0);
    assert_eq!(sum, applied, "{s}");
    assert!(
        by_incarnation.len() > 4,
        "restarted incarnations contributed: {s}"
    );
    // Each start is a new process, so a new incarnation joins the server.
    let server_ev = events(&run.path().join("metrics.jsonl"));
    let joins = of_kind(&server_ev, "join");
    let incarnations: std::collections::BTreeSet<(u64, u64)> = joins
        .iter()
        .filter_map(|j| Some((j["worker"].as_u64()?, j["incarnation"].as_u64()?)))
        .collect();
    assert!(
        incarnations.len() >= 4 + kills.len() / 2,
        "{} incarnations joined for {} kills",
        incarnations.len(),
        kills.len()
    );
    let acc = s["final_test_accuracy"].as_f64().expect("accuracy");
    eprintln!(
        "chaos: {} kills, {} pauses, {} incarnations, {received} received, test accuracy {:.2} %",
        kills.len(),
        pauses.len(),
        incarnations.len(),
        100.0 * acc
    );
    assert!(acc >= 0.80, "test accuracy {acc}");
}

#[test]
fn cpu_quota_is_refused_with_a_clear_error_where_cgroup_v2_cannot_be_used() {
    let run = tempfile::tempdir().expect("run");
    let out = lagom(
        &[
            "--role",
            "supervisor",
            "--run-dir",
            run.path().to_str().expect("utf-8"),
            "--workers",
            "1",
            "--server",
            "127.0.0.1:9",
            "--set",
            "heterogeneity.mechanism=\"cpu-quota\"",
            "--set",
            "heterogeneity.slow_fraction=1",
            "--set",
            "heterogeneity.slowdown=4",
            "--set",
            "supervisor.restart_budget=0",
        ],
        &[("RUST_LOG", "warn")],
    );
    let err = stderr(&out);
    let metrics = run.path().join("supervisor/metrics.jsonl");
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").is_file() {
        // cgroup v1 or hybrid (this development machine): refused before any worker starts.
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("needs cgroup v2"), "{err}");
        assert!(err.contains("mechanism = \"delay\""), "{err}");
        let started = std::fs::read_to_string(&metrics).unwrap_or_default();
        assert!(!started.contains("\"start\""), "{started}");
        return;
    }
    // cgroup v2: either the worker was placed under cpu.max (then it failed for want of
    // certificates and was given up on), or the refusal names what is missing.
    let events = std::fs::read_to_string(&metrics).unwrap_or_default();
    assert!(
        events.contains("\"cpu_quota\"")
            || err.contains("cpu controller")
            || err.contains("cannot write")
            || err.contains("cannot create the cgroup"),
        "{err}\n{events}"
    );
    if events.contains("\"cpu_quota\"") {
        // A quarter of the cores the worker would use (all of them: compute.threads is 0).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let line = format!("{} 100000", 25_000 * cores);
        assert!(events.contains(&line), "expected cpu.max {line}: {events}");
    }
}

#[test]
fn sigterm_is_passed_on_to_the_workers_and_the_supervisor_exits_cleanly() {
    // Two workers that keep dialing a server that is not there: alive until told to stop.
    let cluster = TestCluster::new("asgd", &["--set", "supervisor.grace_s=5"]);
    let args = cluster.supervisor_args(&[]);
    let run = &cluster.run;
    let child = spawn_lagom(&args);
    let metrics = run.path().join("supervisor/metrics.jsonl");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&metrics)
        .map(|t| t.matches("\"start\"").count())
        .unwrap_or(0)
        < 2
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "workers never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = wait_for(child, Duration::from_secs(30), "the supervisor");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stopped by SIGTERM"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ev = events(&metrics);
    assert_eq!(of_kind(&ev, "shutdown").len(), 1);
    let exits = of_kind(&ev, "exit");
    assert_eq!(exits.len(), 2, "{ev:?}");
    assert!(exits.iter().all(|e| e["shutdown"] == true), "{ev:?}");
    assert!(
        of_kind(&ev, "restart").is_empty(),
        "nothing restarted: {ev:?}"
    );
}
