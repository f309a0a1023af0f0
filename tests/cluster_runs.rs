//! Cluster runs with real processes and sockets on loopback: `--role local`, and a server with
//! worker processes holding certificates from `lagom certs`; peers with the wrong model are
//! refused while the others train.

use std::time::Duration;

mod cli_support;
use cli_support::{
    fashion_mnist_present, free_port, lagom, spawn_lagom, stderr, strings, summary, wait_for,
    write_certs,
};

fn counts_add_up(s: &serde_json::Value) {
    let received = s["gradients_received"].as_u64().expect("received");
    let applied = s["gradients_applied"].as_u64().expect("applied");
    let rejected = s["gradients_rejected_total"].as_u64().expect("rejected");
    assert_eq!(received, applied + rejected, "{s}");
    assert_eq!(applied, s["updates"].as_u64().expect("updates"));
    let per_worker: u64 = s["per_worker"]
        .as_array()
        .expect("per_worker")
        .iter()
        .map(|w| w["gradients"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        per_worker, applied,
        "per-worker counts sum to the applied updates"
    );
}

/// `--role local`: asynchronous OrMo, 3 workers, the `mlp`, 1 200 updates (learning rate 0.05,
/// decayed at 900), with `extra` flags, run into `dir`.
fn local_ormo_mlp(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "--role",
        "local",
        "--run-dir",
        dir.to_str().expect("utf-8"),
        "--algorithm",
        "ormo",
        "--workers",
        "3",
        "--lr",
        "0.05",
        "--set",
        "model.name=\"mlp\"",
        "--set",
        "server.updates=1200",
        "--set",
        "algorithm.lr_decay_at=[900]",
    ];
    args.extend_from_slice(extra);
    lagom(&args, &[("RAYON_NUM_THREADS", "2")])
}

#[test]
fn local_async_ormo_with_three_workers_learns_fashion_mnist() {
    if !fashion_mnist_present("cluster learning") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = local_ormo_mlp(dir.path(), &["--set", "server.eval_every=600"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(dir.path());
    assert_eq!(s["kind"], "server");
    assert_eq!(s["algorithm"], "ormo");
    assert_eq!(s["updates"], 1200);
    counts_add_up(&s);
    let acc = s["final_test_accuracy"].as_f64().expect("accuracy");
    eprintln!("async OrMo, 3 workers, mlp: {:.2} %", 100.0 * acc);
    assert!(acc >= 0.80, "test accuracy {acc}");
    assert!(
        s["staleness"]["mean"].as_f64().is_some_and(|m| m > 0.5),
        "asynchrony shows"
    );
}

#[test]
fn local_run_with_bf16_tensors_and_top_k_gradients_learns_fashion_mnist() {
    if !fashion_mnist_present("compressed cluster learning") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = local_ormo_mlp(
        dir.path(),
        &[
            "--set",
            "net.wire_dtype=\"bf16\"",
            "--set",
            "net.compress=\"topk\"",
            "--set",
            "net.topk_fraction=0.05",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(dir.path());
    assert_eq!(s["updates"], 1200);
    counts_add_up(&s);
    // Only gradients that arrived after the last update may be turned away.
    let rejected = s["gradients_rejected"]
        .as_object()
        .expect("rejections by reason");
    assert!(
        rejected.keys().all(|reason| reason == "stopped"),
        "every sparse bf16 gradient is applied: {rejected:?}"
    );
    let acc = s["final_test_accuracy"].as_f64().expect("accuracy");
    eprintln!(
        "async OrMo, 3 workers, mlp, bf16 + top-5 %: {:.2} %",
        100.0 * acc
    );
    assert!(acc >= 0.78, "test accuracy {acc}");
}

#[test]
fn a_server_and_worker_processes_train_and_a_mismatched_worker_is_refused() {
    let certs = tempfile::tempdir().expect("certs");
    write_certs(certs.path());
    let certs_dir = certs.path().to_str().expect("utf-8");
    let run = tempfile::tempdir().expect("run");
    let port = free_port();
    let listen = format!("net.listen=\"127.0.0.1:{port}\"");
    let server_addr = format!("127.0.0.1:{port}");
    let certs_set = format!("net.certs=\"{certs_dir}\"");
    let common = [
        "--set",
        "data.name=\"synthetic\"",
        "--set",
        "model.name=\"mlp\"",
        "--workers",
        "2",
        "--algorithm",
        "asgd",
        "--lr",
        "0.05",
        "--set",
        certs_set.as_str(),
    ];
    let mut server_args = vec![
        "--role",
        "server",
        "--run-dir",
        run.path().to_str().expect("utf-8"),
        "--set",
        "net.node=\"head\"",
        "--set",
        listen.as_str(),
        "--set",
        "server.updates=200",
        "--set",
        "server.eval_every=100",
    ];
    server_args.extend_from_slice(&common);
    let server = spawn_lagom(&strings(&server_args));

    let worker = |slot: &'static str, node: &'static str, extra: &[&'static str]| {
        let node_set = format!("net.node=\"{node}\"");
        let mut args = vec![
            "--role",
            "worker",
            "--server",
            server_addr.as_str(),
            "--worker",
            slot,
            "--set",
            node_set.as_str(),
        ];
        args.extend_from_slice(&common);
        args.extend_from_slice(extra);
        spawn_lagom(&strings(&args))
    };
    // A worker whose model differs from the server's: refused, and it says why — with exit code
    // 3, which tells a supervisor or systemd that restarting cannot help.
    let wrong = worker("1", "w1", &["--set", "model.name=\"cnn\""]);
    let wrong = wait_for(wrong, Duration::from_secs(60), "the mismatched worker");
    assert_eq!(
        wrong.status.code(),
        Some(lagom::supervisor::EXIT_REFUSED),
        "{}",
        stderr(&wrong)
    );
    assert!(stderr(&wrong).contains("LayoutHash"), "{}", stderr(&wrong));
    // A worker that would send bf16 tensors to an f32 server: refused the same way.
    let half = worker("1", "w1", &["--set", "net.wire_dtype=\"bf16\""]);
    let half = wait_for(half, Duration::from_secs(60), "the bf16 worker");
    assert_eq!(
        half.status.code(),
        Some(lagom::supervisor::EXIT_REFUSED),
        "{}",
        stderr(&half)
    );
    assert!(
        stderr(&half).contains("WireDtype") && stderr(&half).contains("net.wire_dtype"),
        "{}",
        stderr(&half)
    );

    let w0 = worker("0", "w0", &[]);
    let w1 = worker("1", "w1", &[]);
    let server = wait_for(server, Duration::from_secs(120), "the server");
    assert!(server.status.success(), "{}", stderr(&server));
    for (w, name) in [(w0, "worker 0"), (w1, "worker 1")] {
        let out = wait_for(w, Duration::from_secs(30), name);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("stopped by the server"),
            "{name}"
        );
    }
    let s = summary(run.path());
    assert_eq!(s["updates"], 200);
    counts_add_up(&s);
    assert!(
        s["final_test_accuracy"].as_f64().is_some_and(|a| a > 0.5),
        "the synthetic set is learned: {s}"
    );
    let metrics = std::fs::read_to_string(run.path().join("metrics.jsonl")).expect("metrics");
    assert_eq!(
        metrics.matches("\"event\":\"join\"").count(),
        2,
        "only the two matching workers joined"
    );
}

#[test]
fn a_diverging_cluster_run_stops_early_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lagom(
        &[
            "--role",
            "local",
            "--run-dir",
            dir.path().to_str().expect("utf-8"),
            "--workers",
            "2",
            "--algorithm",
            "naive-asgdm",
            "--lr",
            "50",
            "--set",
            "data.name=\"synthetic\"",
            "--set",
            "model.name=\"mlp\"",
            "--set",
            "server.updates=5000",
            "--set",
            "server.eval_every=0",
        ],
        &[("RAYON_NUM_THREADS", "1")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(dir.path());
    assert_eq!(s["diverged"], true, "{s}");
    assert!(s["updates"].as_u64().is_some_and(|u| u < 5000), "{s}");
    let metrics = std::fs::read_to_string(dir.path().join("metrics.jsonl")).expect("metrics");
    assert!(metrics.contains("\"event\":\"diverged\""));
}
